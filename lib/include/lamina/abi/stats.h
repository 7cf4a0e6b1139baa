/* Lamina hypercall ABI: per-domain exit statistics (domain_exit_stats). */
#ifndef LAMINA_ABI_STATS_H
#define LAMINA_ABI_STATS_H

#include <lamina/abi/base.h>

/* Why a vCPU left the guest, in the core's vendor-neutral terms (ExitReason in
 * hypervisor/vcpu.h, which the hypervisor maps onto these numbers; the numbers never change). */
enum lamina_exit_reason {
    LAMINA_EXIT_CPUID = 0,
    LAMINA_EXIT_IO = 1,
    LAMINA_EXIT_MSR_READ = 2,
    LAMINA_EXIT_MSR_WRITE = 3,
    LAMINA_EXIT_HLT = 4,
    LAMINA_EXIT_HYPERCALL = 5,
    LAMINA_EXIT_CONTROL_REGISTER = 6,
    LAMINA_EXIT_XSETBV = 7,
    LAMINA_EXIT_INVLPG = 8,
    LAMINA_EXIT_STAGE2_FAULT = 9,        /* EPT violation or misconfiguration, NPT fault */
    LAMINA_EXIT_EXCEPTION = 10,          /* an intercepted guest exception */
    LAMINA_EXIT_EXTERNAL_INTERRUPT = 11, /* a host interrupt arrived while the guest ran */
    LAMINA_EXIT_INTERRUPT_WINDOW = 12,
    LAMINA_EXIT_TRIPLE_FAULT = 13,
    LAMINA_EXIT_INVALID_STATE = 14, /* VM entry failed */
    LAMINA_EXIT_OTHER = 15
};
/* Reasons this version defines. */
#define LAMINA_EXIT_REASON_COUNT 16u
/* Counters in lamina_exit_stats: room for the reasons later minor versions add. */
#define LAMINA_EXIT_REASON_SLOTS 32u

struct lamina_exit_stats {
    uint32_t reason_count; /* how many of exits[] this hypervisor counts; the rest read 0 */
    uint32_t pad0;
    uint64_t total;                             /* every exit of the domain's vCPUs */
    uint64_t exits[LAMINA_EXIT_REASON_SLOTS];   /* indexed by enum lamina_exit_reason */
};
LAMINA_ABI_SIZE(struct lamina_exit_stats, 272);

#endif
