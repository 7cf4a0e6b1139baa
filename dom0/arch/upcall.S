/* Dom0's upcall entry, the one interrupt it takes (its PVH entry is lib/src/pvh_entry.S). */

/* The upcall vector's handler (events.cpp installs it): saves the registers a C function may
 * change and calls dom0_upcall(). The CPU aligned RSP to 16 before pushing its 5 words; the 9
 * pushes here leave it aligned again for the call (SysV ABI). */
    .text
    .global dom0_upcall_entry
dom0_upcall_entry:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    cld
    call dom0_upcall
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    iretq
