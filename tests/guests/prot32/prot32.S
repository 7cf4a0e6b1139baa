/* The 32-bit protected-mode test guest: a PVH kernel that stays where PVH enters it (32-bit,
 * paging off) and checks the sensitive instructions a 32-bit OS uses: CPUID, IN/OUT, RDMSR and
 * WRMSR (an unknown MSR must raise #GP), control-register reads and writes, HLT. Results are TAP
 * lines on the debug console (port 0xE9), like the 64-bit guest's. Assembly only: the shared C++
 * guest code is built for long mode. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CONSOLE 0xe9

    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_entry

/* check NAME, CONDITION-JUMP: prints "ok n - NAME" when the flags say pass (the jump taken). */
.macro CHECK name, pass_jump
    \pass_jump 1f
    movl $msg_not_ok, %esi
    call report
    jmp 2f
1:  movl $msg_ok, %esi
    call report
2:  movl $\name, %esi
    call print
    movl $msg_newline, %esi
    call print
.endm

    .section .pvh.entry, "ax"
    .code32
    .global pvh_entry
pvh_entry:
    cli
    /* PVH leaves the selectors unspecified and the GDT unusable: bring our own, as an OS does. */
    lgdt gdt_pointer
    ljmp $0x08, $1f
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $stack_top, %esp
    movl %ebx, start_info
    movl $gp_handler, %eax      /* the #GP gate's offset, split as the descriptor wants it */
    movw %ax, gp_gate
    shrl $16, %eax
    movw %ax, gp_gate + 6
    lidt idt_pointer

    /* 1: EBX carried the start info (nonzero, and its magic is PVH's). */
    movl start_info, %eax
    cmpl $0x336ec578, (%eax)
    CHECK name_start_info, je

    /* 2: the hypervisor signature. */
    movl $0x40000000, %eax
    cpuid
    cmpl $0x696d614c, %ebx      /* "Lami" */
    jne 3f
    cmpl $0x614c616e, %ecx      /* "naLa" */
    jne 3f
    cmpl $0x616e696d, %edx      /* "mina" */
3:  CHECK name_signature, je

    /* 3: VMX hidden, hypervisor bit set (CPUID 1 ECX bits 5 and 31). */
    movl $1, %eax
    cpuid
    andl $0x80000020, %ecx
    cmpl $0x80000000, %ecx
    CHECK name_cpuid_bits, je

    /* 4: an unclaimed port reads all ones. */
    movw $0x1234, %dx
    inb %dx, %al
    cmpb $0xff, %al
    CHECK name_in_byte, je

    /* 5: EFER reads without LME or LMA in 32-bit mode. */
    movl $0xc0000080, %ecx
    rdmsr
    testl $0x500, %eax
    CHECK name_efer, jz

    /* 6: an MSR the hypervisor does not allow raises #GP (the handler counts and skips). */
    movl $0, gp_count
    movl $0x12345678, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    cmpl $1, gp_count
    CHECK name_msr_gp, je

    /* 7: CR0 says protected mode without paging; CR4 takes OSFXSR and reads it back. */
    movl %cr0, %eax
    andl $0x80000001, %eax
    cmpl $1, %eax
    CHECK name_cr0, je
    movl %cr4, %eax
    orl $(1 << 9), %eax
    movl %eax, %cr4
    movl %cr4, %eax
    testl $(1 << 9), %eax
    CHECK name_cr4, jnz

    /* 9, 10: XSETBV with CR4.OSXSAVE (when CPUID offers XSAVE): x87|SSE is accepted and reads
     * back; XCR0 without x87 is refused with #GP (the handler skips the 3-byte XSETBV). */
    movl $1, %eax
    cpuid
    btl $26, %ecx
    jnc no_xsave
    movl %cr4, %eax
    orl $(1 << 18), %eax
    movl %eax, %cr4
    xorl %ecx, %ecx
    xorl %edx, %edx
    movl $3, %eax
    xsetbv
    xorl %ecx, %ecx
    xgetbv
    cmpl $3, %eax
    CHECK name_xsetbv, je
    movl $0, gp_count
    movl $3, gp_skip
    xorl %ecx, %ecx
    xorl %edx, %edx
    movl $2, %eax
    xsetbv
    cmpl $1, gp_count
    CHECK name_xsetbv_gp, je
no_xsave:

    movl $msg_plan, %esi
    call print
    movl test_number, %eax
    call print_number
    movl $msg_newline, %esi
    call print
    cli
    hlt

/* Prints the prefix at ESI ("ok " or "not ok "), then the test number and " - ". */
report:
    call print
    incl test_number
    movl test_number, %eax
    call print_number
    movl $msg_dash, %esi
    jmp print

/* Prints the NUL-terminated string at ESI. */
print:
    movw $CONSOLE, %dx
4:  lodsb
    testb %al, %al
    jz 5f
    outb %al, %dx
    jmp 4b
5:  ret

/* Prints EAX (below 100) in decimal. */
print_number:
    movw $CONSOLE, %dx
    xorl %ecx, %ecx
    movb $10, %cl
    xorb %ah, %ah
    divb %cl                    /* AL = tens, AH = ones */
    testb %al, %al
    jz 6f
    addb $'0', %al
    outb %al, %dx
6:  movb %ah, %al
    addb $'0', %al
    outb %al, %dx
    ret

/* #GP: count it and step over the instruction that raised it (gp_skip bytes). */
gp_handler:
    incl gp_count
    pushl %eax
    movl gp_skip, %eax
    addl %eax, 8(%esp)          /* the error code is at 4(%esp), EIP above it */
    popl %eax
    addl $4, %esp
    iret

    .section .rodata
name_start_info: .asciz "pvh: EBX points at the start info"
name_signature:  .asciz "cpuid: hypervisor signature at 0x40000000"
name_cpuid_bits: .asciz "cpuid: VMX hidden, hypervisor bit set"
name_in_byte:    .asciz "io: an unclaimed port reads all ones"
name_efer:       .asciz "msr: EFER has neither LME nor LMA"
name_msr_gp:     .asciz "msr: an unknown MSR raises #GP"
name_cr0:        .asciz "cr: CR0 has PE and not PG"
name_cr4:        .asciz "cr: CR4.OSFXSR sticks"
name_xsetbv:     .asciz "xsetbv: XCR0 = x87|SSE is accepted and reads back"
name_xsetbv_gp:  .asciz "xsetbv: XCR0 without x87 raises #GP"
msg_ok:          .asciz "ok "
msg_not_ok:      .asciz "not ok "
msg_dash:        .asciz " - "
msg_newline:     .asciz "\n"
msg_plan:        .asciz "1.."

    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9b000000ffff    /* 0x08: flat 32-bit code (accessed) */
    .quad 0x00cf93000000ffff    /* 0x10: flat data (accessed) */
gdt_end:
gdt_pointer:
    .short gdt_end - gdt - 1
    .long gdt
idt_pointer:
    .short idt_end - idt - 1
    .long idt

    .section .data
    .balign 8
idt:
    .skip 13 * 8
gp_gate:                        /* vector 13: 32-bit interrupt gate; the offset is filled at entry */
    .short 0, 0x08, 0x8e00, 0
    .skip (256 - 14) * 8
idt_end:

    .balign 4
start_info:  .long 0
test_number: .long 0
gp_count:    .long 0
gp_skip:     .long 2            /* WRMSR */

    .section .bss
    .balign 16
    .skip 8192
stack_top:
