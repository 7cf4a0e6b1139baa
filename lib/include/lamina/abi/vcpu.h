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

/* What a vCPU holds when it first runs: every register of regs and, in LONG64, the paging state
 * below; registers not named here start as after INIT. domain_set_vcpu_context and vcpu_up
 * refuse with -EINVAL a context that breaks one of these rules:
 *
 * - flags: 0.
 * - regs.rflags: bit 1 set; IF, TF, VM, IOPL and the reserved bits (3, 5, 15, 63:22) 0. A
 * vCPU starts with interrupts off: it has no IDT yet.
 * - REAL: rip below 1 MiB; every register of regs below 2^32; cr0, cr3, cr4 and efer 0.
 * - PROTECTED32: every register of regs below 2^32; cr0, cr3, cr4 and efer 0.
 * - LONG64: rip canonical (bits 63:47 all equal).
 * - LONG64 cr0: PE and PG set; besides them only MP, EM, TS, ET, NE, WP, AM, NW and CD, NW only
 * with CD.
 * - LONG64 cr4: PAE set; besides it only TSD, DE, PSE, MCE, PGE, PCE, OSFXSR and OSXMMEXCPT,
 * which every x86-64 CPU has: a guest turns on the rest itself, once CPUID says they are there.
 * - LONG64 cr3: the 4-level root table's address, page-aligned and below 2^MAXPHYADDR (CPUID
 * 0x80000008 EAX[7:0]), with PWT and PCD if wanted.
 * - LONG64 efer: LME set; besides it only SCE, NXE and LMA, which follows LME and PG whatever
 * it says.
 *
 * A LONG64 vCPU starts in 64-bit mode, CS.L set, its segments flat as in the other modes. */
struct lamina_vcpu_context {
    uint32_t mode;  /* enum lamina_vcpu_mode */
    uint32_t flags; /* 0 */
    struct lamina_cpu_registers regs; /* RFLAGS bit 1 set; IF, TF, VM, IOPL and the reserved bits 0 */
    uint64_t cr0;   /* LONG64: PE and PG set (rules above); other modes: 0 */
    uint64_t cr3;   /* LONG64: the root table's address (rules above); other modes: 0 */
    uint64_t cr4;   /* LONG64: PAE set (rules above); other modes: 0 */
    uint64_t efer;  /* LONG64: LME set (LMA follows); other modes: 0 */
};
LAMINA_ABI_SIZE(struct lamina_vcpu_context, 184);

#endif
