/* VM entry and exit for the VMX backend (SDM Vol. 3C chapters 27 and 28).
 *
 *   u64 vmx_enter(u64* gprs, u64 launched)    (arch/x86_64/vmx/vmx_vcpu.cpp)
 *
 * gprs: the guest's 16 general-purpose registers in encoding order (the RSP slot is not used:
 * RSP lives in the VMCS). Saves the host's callee-saved registers, points HOST_RSP at this
 * frame, loads the guest's registers and enters with VMLAUNCH (launched == 0) or VMRESUME.
 * The VM exit lands at vmx_exit (HOST_RIP), which stores the guest's registers back.
 * Returns 0 after a VM exit (including a VM-entry failure exit, bit 31 of the exit reason),
 * 1 when the instruction failed with VMfailValid (ZF: the VM-instruction error field says why),
 * 2 with VMfailInvalid (CF: no current VMCS). Interrupts stay as the caller had them (off). */

#define GPR(n) (8 * (n))
#define RAX 0
#define RCX 1
#define RDX 2
#define RBX 3
#define RBP 5
#define RSI 6
#define RDI 7
#define R8 8
#define R9 9
#define R10 10
#define R11 11
#define R12 12
#define R13 13
#define R14 14
#define R15 15
#define VMCS_HOST_RSP 0x6c14

    .section .text
    .global vmx_enter
    .type vmx_enter, @function
vmx_enter:
    pushq %rbp
    movq %rsp, %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi                      /* the gprs pointer: at 0(%rsp) when the exit lands */

    movl $VMCS_HOST_RSP, %eax
    vmwrite %rsp, %rax
    jbe .Lfailed

    testq %rsi, %rsi                /* moves below leave the flags alone */
    movq GPR(RAX)(%rdi), %rax
    movq GPR(RCX)(%rdi), %rcx
    movq GPR(RDX)(%rdi), %rdx
    movq GPR(RBX)(%rdi), %rbx
    movq GPR(RBP)(%rdi), %rbp
    movq GPR(RSI)(%rdi), %rsi
    movq GPR(R8)(%rdi), %r8
    movq GPR(R9)(%rdi), %r9
    movq GPR(R10)(%rdi), %r10
    movq GPR(R11)(%rdi), %r11
    movq GPR(R12)(%rdi), %r12
    movq GPR(R13)(%rdi), %r13
    movq GPR(R14)(%rdi), %r14
    movq GPR(R15)(%rdi), %r15
    movq GPR(RDI)(%rdi), %rdi
    jnz .Lresume
    vmlaunch
    jmp .Lfailed
.Lresume:
    vmresume
.Lfailed:
    /* The instruction fell through: CF or ZF says how. The guest's registers in memory are
     * unchanged, so the host's only need restoring. */
    movl $1, %eax
    movl $2, %ecx
    cmovcl %ecx, %eax
    addq $8, %rsp
    jmp .Lreturn

    .global vmx_exit
vmx_exit:
    pushq %rdi
    movq 8(%rsp), %rdi
    movq %rax, GPR(RAX)(%rdi)
    movq %rcx, GPR(RCX)(%rdi)
    movq %rdx, GPR(RDX)(%rdi)
    movq %rbx, GPR(RBX)(%rdi)
    movq %rbp, GPR(RBP)(%rdi)
    movq %rsi, GPR(RSI)(%rdi)
    movq %r8, GPR(R8)(%rdi)
    movq %r9, GPR(R9)(%rdi)
    movq %r10, GPR(R10)(%rdi)
    movq %r11, GPR(R11)(%rdi)
    movq %r12, GPR(R12)(%rdi)
    movq %r13, GPR(R13)(%rdi)
    movq %r14, GPR(R14)(%rdi)
    movq %r15, GPR(R15)(%rdi)
    popq GPR(RDI)(%rdi)
    addq $8, %rsp
    xorl %eax, %eax
.Lreturn:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size vmx_enter, . - vmx_enter
