/* Where the vcpu kernel's second vCPU starts (tests/conformance/vcpu.cpp). vcpu_up starts a vCPU
 * in real mode or 32-bit protected mode, where hypercalls are -ENOSYS, so each entry first
 * records what it found (struct EntryRecord: how many times it ran, then EAX..EDI in the
 * encoding order); the real-mode one then halts with interrupts off (vCPU 0 takes it down), the
 * protected-mode one goes on to long mode on vCPU 0's page tables and calls secondary_main. */
#define CODE_SELECTOR 0x08
#define DATA_SELECTOR 0x10

/* Records the registers at `record` (an operand prefix included: %cs:offset in real mode). */
.macro record_registers seg, record
    movl %eax, \seg(\record + 4)
    movl %ecx, \seg(\record + 8)
    movl %edx, \seg(\record + 12)
    movl %ebx, \seg(\record + 16)
    movl %esp, \seg(\record + 20)
    movl %ebp, \seg(\record + 24)
    movl %esi, \seg(\record + 28)
    movl %edi, \seg(\record + 32)
    lock incl \seg(\record)
.endm

    .section .text

/* Real mode: copied below 1 MiB (a real-mode RIP is at most 0xfffff) and entered at its first
 * byte with CS = its address >> 4, so it addresses its record through CS. */
    .code16
    .global real_mode_blob, real_mode_blob_end, real_mode_record
real_mode_blob:
    record_registers %cs:, (real_mode_record - real_mode_blob)
1:  cli
    hlt
    jmp 1b
    .balign 4
real_mode_record:
    .skip 36
real_mode_blob_end:

/* 32-bit protected mode, paging off: the PVH entry's state. */
    .code32
    .global protected_entry
protected_entry:
    record_registers , protected_record
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax  /* PAE, OSFXSR, OSXMMEXCPT, as pvh_entry.S */
    movl %eax, %cr4
    movl secondary_cr3, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax        /* PG | PE */
    movl %eax, %cr0
    lgdt secondary_gdt_pointer
    ljmp $CODE_SELECTOR, $long_mode

/* 64-bit mode, as a LONG64 context starts it: its own GDT before any segment is reloaded. */
    .code64
    .global long64_entry
long64_entry:
    lgdt secondary_gdt_pointer
long_mode:
    movw $DATA_SELECTOR, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %esp, %esp              /* the upper half is undefined after the switch */
    call secondary_main
2:  cli                          /* secondary_main does not return */
    hlt
    jmp 2b

    .section .rodata
    .balign 8
secondary_gdt:
    .quad 0
    .quad 0x00af9a000000ffff     /* CODE_SELECTOR: 64-bit code */
    .quad 0x00cf92000000ffff     /* DATA_SELECTOR: data */
secondary_gdt_end:
/* A 32-bit LGDT reads the base's low half, a 64-bit one all of it: the kernel lies below 4 GiB. */
secondary_gdt_pointer:
    .short secondary_gdt_end - secondary_gdt - 1
    .quad secondary_gdt
