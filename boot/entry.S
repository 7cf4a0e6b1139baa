/* The 32-bit Multiboot2 entry: from protected mode with paging off (Multiboot2 spec 3.3: EAX =
 * magic, EBX = info) to long mode in the higher half. Early page tables map the first 4 GiB
 * three times: identity (for this code), at the physmap base (boot information and ACPI tables
 * are read there) and at -2 GiB, where the hypervisor is linked. */

#define MB2_BOOT_MAGIC 0x36d76289
#define KERNEL_VIRT_OFFSET 0xffffffff80000000
#define PAGE_PRESENT_WRITABLE 0x3
#define PAGE_LARGE 0x80
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
#define COM1 0x3f8

    .section .boot.text, "ax"
    .code32
    .global multiboot2_entry
multiboot2_entry:
    cli
    cld
    movl $boot_stack32_top, %esp
    movl %eax, boot_magic
    movl %ebx, boot_info_phys
    /* Under icount the TSC counts instructions: this is where the boot figure starts. */
    rdtsc
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4

    cmpl $MB2_BOOT_MAGIC, boot_magic
    jne not_multiboot2

    /* Long mode (CPUID 8000_0001 EDX bit 29) and NX (bit 20) are required. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode
    btl $20, %edx
    jnc no_nx

    /* Four page directories of 2 MiB pages: physical 0..4 GiB. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $(PAGE_PRESENT_WRITABLE | PAGE_LARGE), %eax
    movl %eax, boot_pd(, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax                      /* bits 32+ of (index << 21) */
    movl %eax, boot_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $12, %eax
    addl $(boot_pd + PAGE_PRESENT_WRITABLE), %eax
    movl %eax, boot_pdpt_low(, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jne 2b
    /* -2 GiB .. 0 maps physical 0 .. 2 GiB. */
    movl $(boot_pd + PAGE_PRESENT_WRITABLE), boot_pdpt_high + 510 * 8
    movl $(boot_pd + 4096 + PAGE_PRESENT_WRITABLE), boot_pdpt_high + 511 * 8
    movl $(boot_pdpt_low + PAGE_PRESENT_WRITABLE), boot_pml4
    /* The same 4 GiB at the physmap base (PML4 slot 256, 0xffff800000000000), so boot
     * information read now stays valid once the hypervisor's own tables replace these. */
    movl $(boot_pdpt_low + PAGE_PRESENT_WRITABLE), boot_pml4 + 256 * 8
    movl $(boot_pdpt_high + PAGE_PRESENT_WRITABLE), boot_pml4 + 511 * 8

    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $(EFER_LME | EFER_NXE), %eax
    wrmsr
    /* Caching on (firmware may leave CD/NW set: Bochs' BIOS does), native FPU errors (VMX
     * requires NE), write protection honoured in ring 0. */
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW), %eax
    orl $(CR0_PE | CR0_NE | CR0_WP | CR0_PG), %eax
    movl %eax, %cr0

    lgdt boot_gdt_pointer
    ljmp $0x08, $long_mode_entry

not_multiboot2:
    movl $msg_not_multiboot2, %esi
    jmp boot_fail
no_long_mode:
    movl $msg_no_long_mode, %esi
    jmp boot_fail
no_nx:
    movl $msg_no_nx, %esi
    /* fall through */

/* Prints the NUL-terminated string at ESI on COM1 (the loader left it usable) and stops. */
boot_fail:
    movw $COM1, %dx
3:  lodsb
    testb %al, %al
    jz 5f
    movb %al, %bl
    movw $(COM1 + 5), %dx
4:  inb %dx, %al
    testb $0x20, %al                    /* transmitter holding register empty */
    jz 4b
    movw $COM1, %dx
    movb %bl, %al
    outb %al, %dx
    jmp 3b
5:  cli
    hlt
    jmp 5b

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $higher_half_entry, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .global boot_magic, boot_info_phys, boot_entry_tsc
    .balign 8
boot_entry_tsc:
    .quad 0
boot_magic:
    .long 0
boot_info_phys:
    .long 0

msg_not_multiboot2:
    .asciz "Lamina: not started by a Multiboot2 loader\r\n"
msg_no_long_mode:
    .asciz "Lamina: this CPU has no 64-bit long mode\r\n"
msg_no_nx:
    .asciz "Lamina: this CPU has no NX (execute-disable) bit\r\n"

    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
boot_pdpt_high:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_stack32:
    .skip 4096
boot_stack32_top:

/* The higher half: a proper stack, then C++. */
    .section .text, "ax"
higher_half_entry:
    movabsq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_magic, %edi
    movl boot_info_phys, %esi
    movq boot_entry_tsc, %rdx
    call boot_main
6:  cli
    hlt
    jmp 6b

    .section .bss
    .balign 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip 16384
boot_stack_top:
