/* Application processor start-up code. The boot CPU copies it to a page below 1 MiB, fills in
 * the parameter block at its end, and sends INIT-SIPI-SIPI; the AP starts here in real mode with
 * CS = page >> 4 and IP = 0 (SDM Vol. 3A 9.4.4). Real mode -> 32-bit protected mode -> long mode,
 * using the hypervisor's page tables (in which this page is identity-mapped for the duration),
 * then a jump to ap_entry in the higher half on the AP's own stack. */

#define CR0_PE (1 << 0)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR0_NE (1 << 5)
#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define EFER_NXE (1 << 11)
#define OFFSET(symbol) ((symbol) - ap_trampoline_start)

    .section .rodata
    .balign 16
    .global ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movl OFFSET(ap_cr3), %esi           /* carried in ESI into long mode */
    lgdtl OFFSET(ap_gdt_pointer)
    movl %cr0, %eax
    orl $CR0_PE, %eax
    movl %eax, %cr0
    ljmpl *OFFSET(ap_far_jump32)

    .code32
ap_protected_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %ss
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl %esi, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $(EFER_LME | EFER_NXE), %eax
    wrmsr
    /* INIT leaves CR0 = 60000010h (SDM Vol. 3A 9.1.1): caching disabled until CD/NW clear. */
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW), %eax
    orl $(CR0_PG | CR0_WP | CR0_NE), %eax
    movl %eax, %cr0
    /* Compatibility mode now; loading a 64-bit code segment enters 64-bit mode. The offset
     * is patched with the linear address of ap_long_mode. */
    ljmpl $0x08, $0
ap_far_jump64_patch = . - 6

    .code64
ap_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq ap_stack_top(%rip), %rsp
    movq ap_percpu(%rip), %rdi
    xorl %ebp, %ebp
    jmpq *ap_entry_address(%rip)

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00af9b000000ffff            /* 64-bit code, accessed bit preset: the page is RX */
    .quad 0x00cf93000000ffff            /* data, accessed */
    .quad 0x00cf9b000000ffff            /* 0x18: 32-bit code for the protected-mode leg */
ap_gdt_end:
ap_gdt_pointer:
    .short ap_gdt_end - ap_gdt - 1
    .long 0                             /* patched: linear address of ap_gdt */
ap_far_jump32:
    .long 0                             /* patched: linear address of ap_protected_mode */
    .short 0x18

    /* Parameter block, filled by the boot CPU for each AP. */
    .balign 8
    .global ap_cr3, ap_stack_top, ap_percpu, ap_entry_address
ap_cr3:
    .quad 0
ap_stack_top:
    .quad 0
ap_percpu:
    .quad 0
ap_entry_address:
    .quad 0
ap_trampoline_end:

    .global ap_offset_gdt, ap_offset_gdt_pointer, ap_offset_far_jump32, ap_offset_protected_mode
    .global ap_offset_far_jump64, ap_offset_long_mode
    .global ap_offset_cr3, ap_offset_stack_top, ap_offset_percpu, ap_offset_entry
    .balign 8
ap_offset_gdt:              .quad OFFSET(ap_gdt)
ap_offset_gdt_pointer:      .quad OFFSET(ap_gdt_pointer)
ap_offset_far_jump32:       .quad OFFSET(ap_far_jump32)
ap_offset_protected_mode:   .quad OFFSET(ap_protected_mode)
ap_offset_far_jump64:       .quad OFFSET(ap_far_jump64_patch)
ap_offset_long_mode:        .quad OFFSET(ap_long_mode)
ap_offset_cr3:              .quad OFFSET(ap_cr3)
ap_offset_stack_top:        .quad OFFSET(ap_stack_top)
ap_offset_percpu:           .quad OFFSET(ap_percpu)
ap_offset_entry:            .quad OFFSET(ap_entry_address)
