/* svm_run_guest(u64 vmcb_phys, u64 host_area_phys, u64 gprs[16]): runs the guest of the VMCB at
 * vmcb_phys until its next #VMEXIT (AMD APM Vol. 2 15.5). Called with interrupts disabled;
 * returns with them disabled and GIF set.
 *
 * VMRUN saves and restores only part of the host's state (the host save area at VM_HSAVE_PA).
 * The rest -- FS, GS (its base is this CPU's per-CPU pointer), TR, LDTR, KernelGSBase, STAR,
 * LSTAR, CSTAR, SFMASK and the SYSENTER MSRs -- is moved with VMLOAD/VMSAVE (15.5.2, 15.30.4):
 * the guest's is loaded from its VMCB before VMRUN and saved back after #VMEXIT, then the host's
 * is loaded from host_area_phys. The caller VMSAVEs the host's share there once per CPU (it never
 * changes on a CPU once that CPU is up), so there is no host VMSAVE here. Between the guest's
 * VMLOAD and the host's, %gs is the guest's: nothing here touches it. gprs[] is in the x86
 * encoding order; its RAX and RSP slots are unused (the VMCB holds the guest's RAX and RSP). */

    .set GPR_RCX, 1 * 8
    .set GPR_RDX, 2 * 8
    .set GPR_RBX, 3 * 8
    .set GPR_RBP, 5 * 8
    .set GPR_RSI, 6 * 8
    .set GPR_RDI, 7 * 8
    .set GPR_R8, 8 * 8
    .set GPR_R9, 9 * 8
    .set GPR_R10, 10 * 8
    .set GPR_R11, 11 * 8
    .set GPR_R12, 12 * 8
    .set GPR_R13, 13 * 8
    .set GPR_R14, 14 * 8
    .set GPR_R15, 15 * 8

    .section .text.svm_run_guest, "ax", @progbits
    .global svm_run_guest
    .type svm_run_guest, @function
svm_run_guest:
    pushq %rbp
    movq %rsp, %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdx              /* gprs: 8(%rsp) */
    pushq %rsi              /* host area: 0(%rsp) */

    /* GIF = 0 holds every interrupt, NMI and SMI until the guest runs. */
    clgi
    movq %rdi, %rax
    vmload %rax

    movq GPR_RCX(%rdx), %rcx
    movq GPR_RBX(%rdx), %rbx
    movq GPR_RBP(%rdx), %rbp
    movq GPR_RSI(%rdx), %rsi
    movq GPR_RDI(%rdx), %rdi
    movq GPR_R8(%rdx), %r8
    movq GPR_R9(%rdx), %r9
    movq GPR_R10(%rdx), %r10
    movq GPR_R11(%rdx), %r11
    movq GPR_R12(%rdx), %r12
    movq GPR_R13(%rdx), %r13
    movq GPR_R14(%rdx), %r14
    movq GPR_R15(%rdx), %r15
    movq GPR_RDX(%rdx), %rdx

    /* With V_INTR_MASKING the host's RFLAGS.IF at VMRUN decides whether host interrupts exit
     * the guest (15.21.1), so it must be set; GIF = 0 keeps them pending until VMRUN. */
    sti
    vmrun %rax
    /* #VMEXIT: RAX (the VMCB address), RSP and RFLAGS are the host's again, with IF set and
     * GIF = 0; every other GPR holds the guest's value. */
    cli

    pushq %rdx
    movq 16(%rsp), %rdx     /* gprs */
    movq %rcx, GPR_RCX(%rdx)
    movq %rbx, GPR_RBX(%rdx)
    movq %rbp, GPR_RBP(%rdx)
    movq %rsi, GPR_RSI(%rdx)
    movq %rdi, GPR_RDI(%rdx)
    movq %r8, GPR_R8(%rdx)
    movq %r9, GPR_R9(%rdx)
    movq %r10, GPR_R10(%rdx)
    movq %r11, GPR_R11(%rdx)
    movq %r12, GPR_R12(%rdx)
    movq %r13, GPR_R13(%rdx)
    movq %r14, GPR_R14(%rdx)
    movq %r15, GPR_R15(%rdx)
    popq GPR_RDX(%rdx)

    vmsave %rax
    popq %rax               /* host area */
    vmload %rax
    /* IF is clear: an interrupt that arrived meanwhile waits until the caller enables them. */
    stgi

    addq $8, %rsp           /* gprs */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size svm_run_guest, . - svm_run_guest
