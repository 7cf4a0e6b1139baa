/* The PVH entry shared by the test guests (Xen's PVH boot ABI: 32-bit protected mode, paging off,
 * flat segments, EBX = hvm_start_info). It switches to long mode with 2 MiB identity pages for
 * the first GiB and calls guest_main(start_info). Every step that touches CR0, CR4 or EFER is a
 * step the hypervisor must let a real kernel take. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                      /* name size */
    .long 4                      /* desc size */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_entry

    .section .pvh.entry, "ax"
    .code32
    .global pvh_entry
pvh_entry:
    cli
    movl $stack_top, %esp
    movl %ebx, %edi              /* start info, first argument of guest_main */

    /* pd: 512 x 2 MiB = 1 GiB identity; pdpt[0] -> pd; pml4[0] -> pdpt. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, pd(, %ecx, 8)
    incl %ecx
    cmpl $512, %ecx
    jne 1b
    movl $(pd + 3), pdpt
    movl $(pdpt + 3), pml4

    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax  /* PAE, OSFXSR, OSXMMEXCPT: SSE usable */
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax        /* PG | PE */
    movl %eax, %cr0
    lgdt gdt_pointer
    ljmp $0x08, $long_mode

    .code64
long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %edi, %edi
    call guest_main
2:  cli
    hlt
    jmp 2b

    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff     /* 64-bit code */
    .quad 0x00cf92000000ffff     /* data */
gdt_end:
gdt_pointer:
    .short gdt_end - gdt - 1
    .quad gdt

    .section .bss
    .balign 4096
pml4: .skip 4096
pdpt: .skip 4096
pd:   .skip 4096
    .skip 16384
stack_top:
