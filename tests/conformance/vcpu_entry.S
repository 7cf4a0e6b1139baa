/* Where the vcpu kernel's second vCPU starts (tests/conformance/vcpu.cpp). vcpu_up starts a vCPU
 * in real mode or 32-bit protected mode, where hypercalls are -ENOSYS, so each entry first
 * records what it found (struct EntryRecord: how many times it ran, then EAX..EDI in the
 * encoding order); the real-mode one then halts with interrupts off (vCPU 0 takes it down), the
 * protected-mode one goes on to long mode on vCPU 0's page tables and GDT (pvh_entry.S) and
 * calls secondary_main. */
#include <lamina/long_mode_switch.S.h>

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
    enter_long_mode secondary_cr3, pvh_gdt_pointer, long_mode

    .code64
long_mode:
    load_long_mode_data_segments
    movl %esp, %esp              /* the upper half is undefined after the switch */
    call secondary_main
2:  cli                          /* secondary_main does not return */
    hlt
    jmp 2b
