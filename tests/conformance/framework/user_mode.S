/* One hypercall made from CPL 3 (conformance.h, user_mode_hypercall): SYSRET into user mode at
 * a stub that calls the hypercall page's slot and comes back with SYSCALL. user_mode.cpp sets up
 * the GDT's user segments, STAR/LSTAR/SFMASK, EFER.SCE and user-accessible page tables first.
 * Interrupts stay off throughout, so no privilege-changing interrupt (and no TSS) is needed. */

    .section .text
    .code64

/* i64 user_mode_enter(u64 entry, const u64 args[5], u64 user_stack_top, u64 number) */
    .global user_mode_enter
user_mode_enter:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushfq
    movq %rsp, saved_kernel_rsp(%rip)
    movq %rdi, %r15              /* the entry: kept across SYSRET */
    movq %rdx, %r12              /* the user stack */
    movq %rcx, %rax              /* the number: the raw entry takes it in RAX */
    movq 0(%rsi), %rdi
    movq 16(%rsi), %rdx
    movq 24(%rsi), %r10
    movq 32(%rsi), %r8
    movq 8(%rsi), %rsi
    leaq user_stub(%rip), %rcx   /* SYSRET's RIP */
    movq $0x2, %r11              /* SYSRET's RFLAGS: IF off */
    cli
    movq %r12, %rsp
    sysretq

user_stub:
    call *%r15                   /* VMCALL/VMMCALL at CPL 3; RAX: the answer */
    syscall

    .global user_mode_return
user_mode_return:                /* LSTAR: CPL 0 again, still on the user stack */
    movq saved_kernel_rsp(%rip), %rsp
    popfq
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

/* i64 compat_mode_enter(u64 entry, u64 number): a far return to the 32-bit code segment 0x30,
 * the call there (the stack and the entry lie below 4 GiB), a far jump back to 64-bit code. */
    .global compat_mode_enter
compat_mode_enter:
    pushq %rbx
    movq %rsi, %rax
    movq %rdi, %rbx
    pushq $0x30
    leaq compat_code(%rip), %rcx
    pushq %rcx
    lretq
    .code32
compat_code:
    call *%ebx
    ljmp $0x08, $compat_back
    .code64
compat_back:
    popq %rbx
    ret

    .section .bss
    .balign 8
saved_kernel_rsp: .quad 0
