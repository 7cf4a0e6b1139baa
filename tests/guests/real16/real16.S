/* The real-mode test guest. PVH enters it in 32-bit protected mode; like a boot loader going
 * back to the BIOS, it copies its 16-bit part below 1 MiB, leaves protected mode (16-bit
 * protected mode, then CR0.PE = 0) and checks, in real mode: CPUID, an unclaimed port, RDMSR,
 * CR0 without PE, and a software interrupt through the real-mode IVT. TAP lines go to port 0xE9.
 * The hypervisor must run real mode natively (VMX unrestricted guest, or SVM). */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CONSOLE 0xe9
#define REAL_SEGMENT 0x0800     /* the 16-bit part runs at linear 0x8000 */
#define REAL_BASE (REAL_SEGMENT << 4)
#define TEST_VECTOR 0x40
#define OFFSET(symbol) ((symbol) - real_start)

    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_entry

    .section .pvh.entry, "ax"
    .code32
    .global pvh_entry
pvh_entry:
    cli
    movl $(real_end - real_start), %ecx
    movl $real_start, %esi
    movl $REAL_BASE, %edi
    cld
    rep movsb
    lgdt gdt_pointer
    ljmp $0x08, $(REAL_BASE + OFFSET(protected16))

/* Copied to REAL_BASE; every address below is relative to it. */
    .code16
real_start:
protected16:
    movw $0x10, %ax             /* 16-bit data segments with 64 KiB limits, as real mode wants */
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr0, %eax
    andl $~1, %eax
    movl %eax, %cr0
    ljmp $REAL_SEGMENT, $OFFSET(real_mode)

real_mode:
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $OFFSET(stack_top), %sp
    xorw %ax, %ax
    movw %ax, %es
    /* The IVT at linear 0: vector TEST_VECTOR -> int_handler. */
    movw $OFFSET(int_handler), %es:(TEST_VECTOR * 4)
    movw $REAL_SEGMENT, %es:(TEST_VECTOR * 4 + 2)
    lidt OFFSET(ivt_pointer)

    /* 1: the hypervisor signature through CPUID. */
    movl $0x40000000, %eax
    cpuid
    cmpl $0x696d614c, %ebx      /* "Lami" */
    jne 1f
    cmpl $0x614c616e, %ecx      /* "naLa" */
    jne 1f
    cmpl $0x616e696d, %edx      /* "mina" */
1:  movw $OFFSET(name_signature), %di
    call check_zf

    /* 2: an unclaimed port reads all ones. */
    movw $0x1234, %dx
    inb %dx, %al
    cmpb $0xff, %al
    movw $OFFSET(name_in), %di
    call check_zf

    /* 3: real mode: CR0.PE and CR0.PG clear. */
    movl %cr0, %eax
    testl $0x80000001, %eax
    movw $OFFSET(name_cr0), %di
    call check_zf

    /* 4: EFER reads back without LME. */
    movl $0xc0000080, %ecx
    rdmsr
    testl $0x500, %eax
    movw $OFFSET(name_efer), %di
    call check_zf

    /* 5: INT through the real-mode IVT reaches its handler and returns. */
    movb $0, OFFSET(int_taken)
    int $TEST_VECTOR
    cmpb $1, OFFSET(int_taken)
    movw $OFFSET(name_int), %di
    call check_zf

    movw $OFFSET(msg_plan), %si
    call print
    movb OFFSET(test_number), %al
    call print_digit
    movw $OFFSET(msg_newline), %si
    call print
    cli
    hlt

int_handler:
    movb $1, %cs:OFFSET(int_taken)
    iret

/* Prints "ok n - <name at DI>" when ZF is set, "not ok n - ..." otherwise. */
check_zf:
    movw $OFFSET(msg_ok), %si
    jz 2f
    movw $OFFSET(msg_not_ok), %si
2:  call print
    incb OFFSET(test_number)
    movb OFFSET(test_number), %al
    call print_digit
    movw $OFFSET(msg_dash), %si
    call print
    movw %di, %si
    call print
    movw $OFFSET(msg_newline), %si
    jmp print

print:
    movw $CONSOLE, %dx
3:  lodsb
    testb %al, %al
    jz 4f
    outb %al, %dx
    jmp 3b
4:  ret

print_digit:                    /* AL = 0..9 */
    movw $CONSOLE, %dx
    addb $'0', %al
    outb %al, %dx
    ret

name_signature: .asciz "cpuid: hypervisor signature at 0x40000000 (real mode)"
name_in:        .asciz "io: an unclaimed port reads all ones (real mode)"
name_cr0:       .asciz "cr: CR0 has neither PE nor PG"
name_efer:      .asciz "msr: EFER has no LME"
name_int:       .asciz "int: a software interrupt goes through the real-mode IVT"
msg_ok:         .asciz "ok "
msg_not_ok:     .asciz "not ok "
msg_dash:       .asciz " - "
msg_newline:    .asciz "\n"
msg_plan:       .asciz "1.."
test_number:    .byte 0
int_taken:      .byte 0
    .balign 2
ivt_pointer:
    .short 0x3ff
    .long 0
    .balign 16
    .skip 1024
stack_top:
real_end:

    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00009b000000ffff    /* 0x08: 16-bit code, base 0, limit 64 KiB */
    .quad 0x000093000000ffff    /* 0x10: 16-bit data, base 0, limit 64 KiB */
gdt_end:
gdt_pointer:
    .short gdt_end - gdt - 1
    .long gdt
