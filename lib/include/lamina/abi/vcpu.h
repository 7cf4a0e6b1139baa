/* Lamina hypercall ABI: vCPU state (domain_set_vcpu_context, vcpu_up, fault reports). */
#ifndef LAMINA_ABI_VCPU_H
#define LAMINA_ABI_VCPU_H

#include <lamina/abi/base.h>

/* vCPUs per domain, at most; the host may allow fewer (lamina_host_info.max_vcpus). */
#define LAMINA_MAX_VCPUS 128u

/* The general-purpose registers in the x86 encoding order (the ModRM reg field, SDM Vol. 2
 * table 2-2), then RIP and RFLAGS. */
struct lamina_cpu_registers {
    uint64_t rax;
    uint64_t rcx;
    uint64_t rdx;
    uint64_t rbx;
    uint64_t rsp;
    uint64_t rbp;
    uint64_t rsi;
    uint64_t rdi;
    uint64_t r8;
    uint64_t r9;
    uint64_t r10;
    uint64_t r11;
    uint64_t r12;
    uint64_t r13;
    uint64_t r14;
    uint64_t r15;
    uint64_t rip;
    uint64_t rflags;
};
LAMINA_ABI_SIZE(struct lamina_cpu_registers, 144);

/* The CPU mode a vCPU starts in. Segments are flat (base 0, limit 4 GiB, DPL 0) in every mode
 * but REAL; a guest loads its own GDT before it reloads a segment register. */
enum lamina_vcpu_mode {
    LAMINA_VCPU_MODE_REAL = 0,        /* CS:IP = rip >> 4 : rip & 0xf, paging and protection off */
    LAMINA_VCPU_MODE_PROTECTED32 = 1, /* 32-bit, paging off: the PVH entry (EBX = start info) */
    LAMINA_VCPU_MODE_LONG64 = 2       /* 64-bit code, paging on: cr0, cr3, cr4 and efer below */
};

/* What a vCPU holds when it first runs. Registers not named here start as after INIT. */
struct lamina_vcpu_context {
    uint32_t mode;  /* enum lamina_vcpu_mode */
    uint32_t flags; /* 0 */
    struct lamina_cpu_registers regs; /* RFLAGS bit 1 set; IF, TF, VM and IOPL 0 */
    uint64_t cr0;   /* LONG64: PE and PG set; other modes: 0 */
    uint64_t cr3;   /* LONG64: the page-table root; other modes: 0 */
    uint64_t cr4;   /* LONG64: PAE set; other modes: 0 */
    uint64_t efer;  /* LONG64: LME set (LMA follows); other modes: 0 */
};
LAMINA_ABI_SIZE(struct lamina_vcpu_context, 184);

#endif
