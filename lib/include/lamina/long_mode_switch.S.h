/* The step from 32-bit protected mode (paging off) to 64-bit mode, shared by every entry of
 * Lamina's own small kernels (lib/src/pvh_entry.S, the conformance vcpu kernel's secondary
 * entries): PAE and SSE on, CR3 from `cr3_source`, EFER.LME, then paging, then a far jump through
 * the 64-bit code selector of `gdt_pointer` to `target`. Each step is one the hypervisor must let a
 * real kernel take (SDM Vol. 3A 10.8.5 "Initializing IA-32e Mode"). Clobbers EAX, ECX, EDX. */
#ifndef LAMINA_LONG_MODE_SWITCH_S_H
#define LAMINA_LONG_MODE_SWITCH_S_H

#define LONG_MODE_CODE_SELECTOR 0x08
#define LONG_MODE_DATA_SELECTOR 0x10

.macro enter_long_mode cr3_source, gdt_pointer, target
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax  /* PAE, OSFXSR, OSXMMEXCPT: SSE usable */
    movl %eax, %cr4
    movl \cr3_source, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax        /* PG | PE */
    movl %eax, %cr0
    lgdt \gdt_pointer
    ljmp $LONG_MODE_CODE_SELECTOR, $\target
.endm

/* First steps in 64-bit mode: flat data segments from the same GDT. */
.macro load_long_mode_data_segments
    movw $LONG_MODE_DATA_SELECTOR, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
.endm

#endif
