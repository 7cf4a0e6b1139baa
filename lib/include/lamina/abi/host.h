/* Lamina hypercall ABI: the physical host, as the control domain sees it (host_info, log_read). */
#ifndef LAMINA_ABI_HOST_H
#define LAMINA_ABI_HOST_H

#include <lamina/abi/base.h>

/* Physical CPUs the ABI can name (CPU bitmaps hold this many bits). */
#define LAMINA_MAX_HOST_CPUS 256u
/* Bytes one log_read call copies, at most. */
#define LAMINA_LOG_READ_MAX 65536u
/* The sizes of lamina_host_info's text fields. */
#define LAMINA_HOST_VERSION_SIZE 32u
#define LAMINA_HOST_CPU_BRAND_SIZE 48u

enum lamina_host_virtualization {
    LAMINA_HOST_VMX = 0, /* Intel VT-x with EPT */
    LAMINA_HOST_SVM = 1  /* AMD-V with NPT */
};

/* lamina_host_info.features */
#define LAMINA_HOST_IOMMU (1u << 0)  /* devices' DMA is confined (VT-d, AMD-Vi) */
#define LAMINA_HOST_X2APIC (1u << 1) /* the local APICs run in x2APIC mode */

struct lamina_host_info {
    uint32_t abi_version;    /* LAMINA_ABI_VERSION of the running hypervisor */
    uint32_t virtualization; /* enum lamina_host_virtualization */
    uint32_t features;       /* LAMINA_HOST_IOMMU, LAMINA_HOST_X2APIC */
    uint32_t cpus;           /* physical CPUs online */
    uint32_t tsc_khz;        /* the TSC's frequency, measured at boot */
    uint32_t max_domains;    /* domains the host allows at once, the control domain included */
    uint32_t max_vcpus;      /* vCPUs per domain the host allows (<= LAMINA_MAX_VCPUS) */
    uint32_t pad0;
    uint64_t total_pages;    /* 4 KiB pages of RAM the hypervisor manages */
    uint64_t free_pages;     /* of which no one owns */
    uint64_t uptime_ns;      /* since the hypervisor started */
    char version[LAMINA_HOST_VERSION_SIZE];     /* the hypervisor's release, NUL-terminated */
    char cpu_brand[LAMINA_HOST_CPU_BRAND_SIZE]; /* CPUID 0x80000002-4, NUL-terminated */
};
LAMINA_ABI_SIZE(struct lamina_host_info, 136);

#endif
