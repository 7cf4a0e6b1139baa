/* Lamina hypercall ABI: domains, as the control domain builds, runs and inspects them. */
#ifndef LAMINA_ABI_DOMAIN_H
#define LAMINA_ABI_DOMAIN_H

#include <lamina/abi/base.h>
#include <lamina/abi/stats.h>
#include <lamina/abi/vcpu.h>

/* Domain ids are 0 (the control domain) to LAMINA_DOMID_MAX; the ids above are kept for names
 * with a special meaning, as Xen keeps DOMID_SELF. */
#define LAMINA_DOMID_CONTROL 0u
#define LAMINA_DOMID_MAX 0x7fefu
/* A domain's name: 1 to 31 characters of [A-Za-z0-9_.-], not all digits (consoles and shells
 * show it, and take a number for an id), unique, NUL-terminated within this many bytes; what
 * follows the NUL is ignored. */
#define LAMINA_DOMAIN_NAME_SIZE 32u
/* Records one domain_list call writes, at most. */
#define LAMINA_DOMAIN_LIST_MAX 64u
/* domain_populate_memory's step (256 MiB): one run of contiguous host memory, which a step takes
 * whole or not at all. */
#define LAMINA_DOMAIN_POPULATE_STEP_PAGES 65536u

enum lamina_domain_kind {
    LAMINA_DOMAIN_PVH = 0, /* a 64-bit ELF kernel that talks through hypercalls */
    LAMINA_DOMAIN_HVM = 1  /* an unmodified OS on emulated hardware */
};

/* building -> paused <-> running -> shutting down -> dying -> gone. A gone domain's id is free:
 * calls that name it fail with -ESRCH. */
enum lamina_domain_state {
    LAMINA_DOMAIN_BUILDING = 0,      /* created, never run: memory, vCPUs and contexts are set up */
    LAMINA_DOMAIN_PAUSED = 1,        /* its vCPUs are not scheduled */
    LAMINA_DOMAIN_RUNNING = 2,       /* its vCPUs are scheduled */
    LAMINA_DOMAIN_SHUTTING_DOWN = 3, /* it stopped with shutdown_reason; waits for domain_destroy */
    LAMINA_DOMAIN_DYING = 4          /* domain_destroy is releasing its resources */
};

enum lamina_shutdown_reason {
    LAMINA_SHUTDOWN_POWEROFF = 0,
    LAMINA_SHUTDOWN_REBOOT = 1,
    LAMINA_SHUTDOWN_CRASH = 2 /* the guest said so, or a fault ended it (LAMINA_DOMAIN_FAULTED) */
};

/* lamina_domain_info.flags */
#define LAMINA_DOMAIN_CONTROL (1u << 0) /* the control domain */
#define LAMINA_DOMAIN_FAULTED (1u << 1) /* a fault ended it: domain_get_fault_report says which */

/* domain_create's parameters. */
struct lamina_domain_create {
    char name[LAMINA_DOMAIN_NAME_SIZE];
    uint32_t kind;  /* enum lamina_domain_kind */
    uint32_t flags; /* 0 */
};
LAMINA_ABI_SIZE(struct lamina_domain_create, 40);

/* What domain_get_info and domain_list report of a domain. */
struct lamina_domain_info {
    uint16_t domid;
    uint16_t pad0;
    uint32_t flags;           /* LAMINA_DOMAIN_CONTROL, LAMINA_DOMAIN_FAULTED */
    uint32_t kind;            /* enum lamina_domain_kind */
    uint32_t state;           /* enum lamina_domain_state */
    uint32_t shutdown_reason; /* enum lamina_shutdown_reason, once SHUTTING_DOWN */
    uint32_t max_vcpus;
    uint32_t online_vcpus;    /* vCPUs up */
    uint32_t pad1;
    uint64_t max_pages;       /* the most 4 KiB pages it may own */
    uint64_t pages;           /* the 4 KiB pages it owns */
    uint64_t cpu_time_ns;     /* time its vCPUs ran, all together */
    char name[LAMINA_DOMAIN_NAME_SIZE];
};
LAMINA_ABI_SIZE(struct lamina_domain_info, 88);

/* Why a fault ended a domain: the exit the hypervisor could not handle and the vCPU's state at
 * that exit. */
struct lamina_fault_report {
    uint32_t vcpu;
    uint32_t exit_reason;    /* enum lamina_exit_reason */
    uint64_t hardware_code;  /* the raw VMX basic exit reason or SVM exit code */
    uint64_t qualification;  /* the raw exit qualification or SVM EXITINFO1 */
    uint64_t guest_physical; /* a stage-2 fault's address; else 0 */
    uint8_t vector;          /* an exception's vector; else 0 */
    uint8_t has_error_code;  /* 1 when error_code is the exception's */
    uint16_t pad0;
    uint32_t error_code;
    uint64_t cr0;
    uint64_t cr2;
    uint64_t cr3;
    uint64_t cr4;
    uint64_t efer;
    struct lamina_cpu_registers regs;
    char reason[64]; /* the hypervisor's one line, NUL-terminated: "triple fault", ... */
};
LAMINA_ABI_SIZE(struct lamina_fault_report, 288);

#endif
