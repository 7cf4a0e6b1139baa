/* The PVH entry of Lamina's own small kernels, Dom0 and the test guests (Xen's PVH boot ABI:
 * 32-bit protected mode, paging off, flat segments, EBX = the start info's guest-physical
 * address). It switches to long mode with identity 2 MiB pages over the first 4 GiB (Dom0's RAM
 * is 1:1 with host memory, so its image, the start info and the devices of the low 4 GiB all lie
 * there; a test guest's RAM and its device regions do too), enables SSE, and calls
 * PVH_MAIN(start_info) on a 64 KiB stack; PVH_MAIN is the kernel's (its build defines it). Every
 * step that touches CR0, CR4 or EFER is one the hypervisor must let a real kernel take. */

#ifndef PVH_MAIN
#error "PVH_MAIN names the kernel's main function"
#endif
#include <lamina/long_mode_switch.S.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PAGE_PRESENT_WRITABLE 0x03
#define PAGE_LARGE 0x80
#define MAPPED_GIB 4

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
    movl $pvh_stack_top, %esp
    movl %ebx, %edi              /* start info, PVH_MAIN's argument */

    /* page_directories: MAPPED_GIB x 512 entries of 2 MiB, one after another; entry i maps
     * i << 21, which fits the low 32 bits below 4 GiB. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $(PAGE_LARGE | PAGE_PRESENT_WRITABLE), %eax
    movl %eax, page_directories(, %ecx, 8)
    incl %ecx
    cmpl $(MAPPED_GIB * 512), %ecx
    jne 1b
    /* pdpt[g] -> page directory g; pml4[0] -> pdpt. */
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $12, %eax
    addl $(page_directories + PAGE_PRESENT_WRITABLE), %eax
    movl %eax, pdpt(, %ecx, 8)
    incl %ecx
    cmpl $MAPPED_GIB, %ecx
    jne 2b
    movl $(pdpt + PAGE_PRESENT_WRITABLE), pml4

    enter_long_mode $pml4, pvh_gdt_pointer, long_mode

    .code64
long_mode:
    load_long_mode_data_segments
    movl %edi, %edi
    call PVH_MAIN
3:  cli                          /* PVH_MAIN does not return */
    hlt
    jmp 3b


    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff     /* LONG_MODE_CODE_SELECTOR: 64-bit code */
    .quad 0x00cf92000000ffff     /* LONG_MODE_DATA_SELECTOR: data */
gdt_end:
/* A 32-bit LGDT reads the base's low half, a 64-bit one all of it: kernels lie below 4 GiB. Other
 * entries of the kernel (secondary vCPUs) load it too. */
    .global pvh_gdt_pointer
pvh_gdt_pointer:
    .short gdt_end - gdt - 1
    .quad gdt

    /* The PVH loader zeroes the BSS (p_memsz past p_filesz), so the unused entries are 0. */
    .section .bss
    .balign 4096
pml4: .skip 4096
pdpt: .skip 4096
page_directories: .skip MAPPED_GIB * 4096
    .balign 16
pvh_stack: .skip 65536
pvh_stack_top:
