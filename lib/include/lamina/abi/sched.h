/* Lamina hypercall ABI: the credit scheduler's parameters (control domain only). */
#ifndef LAMINA_ABI_SCHED_H
#define LAMINA_ABI_SCHED_H

#include <lamina/abi/base.h>
#include <lamina/abi/host.h>

/* A domain's share of CPU time against the others: its weight over the sum of weights. */
#define LAMINA_SCHED_WEIGHT_MIN 1u
#define LAMINA_SCHED_WEIGHT_MAX 65535u
#define LAMINA_SCHED_WEIGHT_DEFAULT 256u
/* The pool's time slice. */
#define LAMINA_SCHED_TIMESLICE_MIN_MS 1u
#define LAMINA_SCHED_TIMESLICE_MAX_MS 1000u
/* The shortest rate limit the pool takes, 0 (off) aside: below it the timer that ends a slice
 * costs more than the slice (Xen's XEN_SYSCTL_SCHED_RATELIMIT_MIN). */
#define LAMINA_SCHED_RATELIMIT_MIN_US 100u

struct lamina_sched_domain {
    uint32_t weight; /* LAMINA_SCHED_WEIGHT_MIN to LAMINA_SCHED_WEIGHT_MAX */
    uint32_t cap;    /* the most CPU time it gets, in percent of one CPU (200: two); 0: no cap */
};
LAMINA_ABI_SIZE(struct lamina_sched_domain, 8);

struct lamina_sched_pool {
    uint32_t timeslice_ms; /* LAMINA_SCHED_TIMESLICE_MIN_MS to LAMINA_SCHED_TIMESLICE_MAX_MS */
    uint32_t ratelimit_us; /* a vCPU runs this long before another preempts it; 0: off */
};
LAMINA_ABI_SIZE(struct lamina_sched_pool, 8);

/* Bitmaps of physical CPUs: bit c of the array is CPU c. A vCPU runs only on its hard
 * affinity, and on its soft affinity when it can. */
struct lamina_sched_affinity {
    uint64_t hard[LAMINA_MAX_HOST_CPUS / 64];
    uint64_t soft[LAMINA_MAX_HOST_CPUS / 64];
};
LAMINA_ABI_SIZE(struct lamina_sched_affinity, 64);

#endif
