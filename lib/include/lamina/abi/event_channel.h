/* Lamina hypercall ABI: event channels, the doorbells between domains and from the hypervisor.
 *
 * A port is a domain's end of a channel. Sending on an interdomain port, or a virtual IRQ firing,
 * sets the port's bit in the receiving domain's pending bitmap; unless the port is masked or
 * was pending already, the hypervisor then sets the port's word in pending_words of the vCPU the
 * port notifies, and when that sets upcall_pending from 0 to 1 it raises the upcall vector on
 * that vCPU (one upcall per 0 -> 1 change). The guest clears upcall_pending, takes pending_words (atomic
 * exchange with 0), and for each word clears and handles the pending bits that are not masked.
 * The hypervisor sets bits with locked instructions; the guest must clear them likewise. */
#ifndef LAMINA_ABI_EVENT_CHANNEL_H
#define LAMINA_ABI_EVENT_CHANNEL_H

#include <lamina/abi/base.h>
#include <lamina/abi/vcpu.h>

/* Ports per domain: 1 to LAMINA_EVTCHN_PORTS - 1 (port 0 is never bound). */
#define LAMINA_EVTCHN_PORTS 4096u

enum lamina_evtchn_state {
    LAMINA_EVTCHN_CLOSED = 0,
    LAMINA_EVTCHN_UNBOUND = 1,     /* allocated; remote_domid may bind it */
    LAMINA_EVTCHN_INTERDOMAIN = 2, /* connected to remote_port of remote_domid */
    LAMINA_EVTCHN_VIRQ = 3         /* receives virtual IRQ virq */
};

/* Virtual IRQs: events from the hypervisor. TIMER is per vCPU; the others are global and only
 * the control domain may bind them. */
enum lamina_virq {
    LAMINA_VIRQ_TIMER = 0,       /* the vCPU's one-shot timer (vcpu_set_timer) expired */
    LAMINA_VIRQ_CONSOLE = 1,     /* input is waiting on the physical console (console_read) */
    LAMINA_VIRQ_DOMAIN_DIED = 2  /* a domain entered SHUTTING_DOWN */
};

/* What evtchn_status reports of a port. */
struct lamina_evtchn_status {
    uint32_t port;
    uint32_t state;        /* enum lamina_evtchn_state */
    uint32_t vcpu;         /* the vCPU it notifies */
    uint16_t remote_domid; /* UNBOUND: who may bind it; INTERDOMAIN: the other end's domain */
    uint16_t pad0;
    uint32_t remote_port;  /* INTERDOMAIN: the other end */
    uint32_t virq;         /* VIRQ: enum lamina_virq */
};
LAMINA_ABI_SIZE(struct lamina_evtchn_status, 24);

/* Per vCPU, in the shared page. */
struct lamina_evtchn_vcpu {
    uint64_t pending_words; /* bit w: pending[w] may hold bits for ports this vCPU handles */
    uint8_t upcall_pending; /* 1: the hypervisor raised the upcall; the guest writes 0 */
    uint8_t pad0[7];
};
LAMINA_ABI_SIZE(struct lamina_evtchn_vcpu, 16);

/* The page a domain gives evtchn_init; it stays shared until the domain ends. */
struct lamina_evtchn_shared {
    uint64_t pending[LAMINA_EVTCHN_PORTS / 64]; /* bit p of the array: port p is pending */
    uint64_t mask[LAMINA_EVTCHN_PORTS / 64];    /* bit p: port p raises no upcall */
    struct lamina_evtchn_vcpu vcpu[LAMINA_MAX_VCPUS];
    uint8_t pad0[1024];
};
LAMINA_ABI_SIZE(struct lamina_evtchn_shared, 4096);

#endif
