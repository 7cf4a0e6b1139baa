// The event channels of one domain: its ports, what each is bound to, and the delivery of events
// into the event page whose layout and guest-side protocol lib/include/lamina/abi/event_channel.h
// gives. Xen's 2-level event channels (xen/common/event_channel.c, event_2l.c) are the model.
// Where the ABI leaves room:
//   - Before init, every hypercall but init answers -ENOENT: there is no event page yet. Nothing
//     can be bound then, so there is nothing for raise() to deliver to (an event is dropped, as
//     Xen drops events to unbound ports).
//   - Ports 1 to kPorts - 1; port 0 is never bound, and 0 or kPorts and above is -EINVAL.
//   - Interdomain ports notify vCPU 0 (the ABI has no bind_vcpu); a VIRQ port notifies the vCPU it
//     was bound for. A global VIRQ (CONSOLE, DOMAIN_DIED) has one port per domain, whichever vCPU
//     it notifies (Xen binds it on vCPU 0 and moves it with bind_vcpu).
//   - alloc_unbound does not ask whether remote_domid exists (Xen neither); above
//     LAMINA_DOMID_MAX it is -EINVAL, since no domain could ever bind it.
//   - bind_interdomain marks the new port pending at once: sends to the unbound end were dropped,
//     so the binder conservatively gets one event for them (Xen does the same).
//   - send on an UNBOUND port is dropped and answers 0; on a VIRQ or closed port, -EINVAL (Xen).
//   - Closing one end of a channel turns the other end back to UNBOUND, offered to the closer's
//     domain, so that it may bind again; that end keeps its pending bit. A closed port's pending
//     bit is cleared, so a port used again starts with no stale event (Xen's evtchn_close/free).
//   - init clears the hypervisor's half of the page (pending[], the per-vCPU records) and leaves
//     mask[], which is the guest's.
//   - set_upcall_vector with a vector while the vCPU's upcall is pending raises it at once: the
//     guest clears upcall_pending only in its upcall, so an event that came while upcalls were off
//     would otherwise wait forever.
//
// Concurrency. Every method but raise, raise_virq and pending_for takes this object's lock, and
// when it reaches the other end of a channel that object's lock too: the lower domain id's first;
// a call that holds the higher one only try-locks the lower one and starts again if it fails. The
// caller need hold nothing, but must not call these from interrupt context.
// raise, raise_virq and pending_for take no lock, so interrupt handlers on any CPU may call them:
// raise enters a port through one atomic word per port (its route, its vCPU, and a count of the
// raises inside it), and close waits for the raises inside to leave before it clears the port's
// pending bit. The event page is changed only with locked read-modify-writes, since the guest
// clears its bits concurrently.
#pragma once

#include <lamina/abi/event_channel.h>
#include <lamina/atomic.h>
#include <lamina/spinlock.h>
#include <lamina/types.h>

namespace lamina::event {

class EventChannels;

// The other domains' event channels, as the domain table knows them.
class EventDomains {
public:
    // The event channels of domain `domid`, or null when there is no such domain. Called with no
    // event-channel lock held; the object must stay valid until the call that asked returns.
    virtual EventChannels* find(u16 domid) = 0;

protected:
    ~EventDomains() = default;
};

// The domain's vCPUs, as the event channels see them.
class UpcallSink {
public:
    // upcall_pending of `vcpu` has just gone from 0 to 1: wake the vCPU if it blocks, and raise
    // `vector` on it unless 0 (upcalls off). Called from interrupt handlers on any CPU and with
    // event-channel locks held: it must not call back into EventChannels.
    virtual void upcall(u32 vcpu, u8 vector) = 0;

protected:
    ~UpcallSink() = default;
};

class EventChannels {
public:
    static constexpr u32 kPorts = LAMINA_EVTCHN_PORTS;
    static constexpr u32 kVirqs = LAMINA_VIRQ_DOMAIN_DIED + 1;
    static constexpr u8 kFirstUpcallVector = 32;

    // vcpu_count: the domain's vCPUs, 1 to LAMINA_MAX_VCPUS.
    EventChannels(u16 domain_id, u32 vcpu_count, EventDomains& domains, UpcallSink& upcalls);
    EventChannels(const EventChannels&) = delete;
    EventChannels& operator=(const EventChannels&) = delete;

    u16 domain_id() const { return domain_id_; }
    // The domain has `count` vCPUs now (1 to LAMINA_MAX_VCPUS): VIRQs and upcall vectors name
    // only those. While the domain is built, before it could bind any.
    void set_vcpu_count(u32 count);

    // The hypercalls of this domain: each returns what the hypercall returns, a port or 0, or a
    // negative LAMINA_E*.
    // The event page, translated and checked by the caller (not null). -EEXIST: done already.
    i64 init(lamina_evtchn_shared* page);
    // -EINVAL: remote_domid above LAMINA_DOMID_MAX; -ENOSPC: no free port.
    i64 alloc_unbound(u16 remote_domid);
    // -ESRCH: no such domain; -EINVAL: remote_port is not an UNBOUND port offered to this domain;
    // -ENOSPC: no free port.
    i64 bind_interdomain(u16 remote_domid, u32 remote_port);
    // -EINVAL: no such VIRQ, or vcpu >= the vCPU count; -EPERM: a global VIRQ and the caller is
    // not the control domain; -EEXIST: bound already (on that vCPU, or for a global one at all);
    // -ENOSPC: no free port.
    i64 bind_virq(u32 virq, u32 vcpu, bool control_domain);
    // -EINVAL: not an interdomain or unbound port.
    i64 send(u32 port);
    // -EINVAL: a closed port.
    i64 close(u32 port);
    // Fills *out for any port in range, closed ones included.
    i64 status(u32 port, lamina_evtchn_status* out) const;
    // Clears the mask bit; raises the upcall if the port is pending (Xen's evtchn_2l_unmask).
    i64 unmask(u32 port);
    // vector 32 to 255, or 0 for no upcalls; -EINVAL otherwise, or when vcpu >= the vCPU count.
    i64 set_upcall_vector(u32 vcpu, u8 vector);

    // For the hypervisor's own sources; no lock, any context.
    // Marks `port` pending and notifies its vCPU (event_channel.h); false, and nothing changes,
    // when the port takes no events (closed, unbound, out of range).
    bool raise(u32 port);
    // Raises the port bound to `virq`: a per-vCPU VIRQ's for `vcpu`, a global one's whatever
    // `vcpu` is. False when none is bound.
    bool raise_virq(u32 virq, u32 vcpu);
    // The hypervisor takes the other end of UNBOUND `port`, offered to `remote_domid`, on that
    // domain's behalf (a device it emulates for the domain, such as its console): the port is
    // INTERDOMAIN with remote port 0 from now on, and raise_from_hypervisor() signals it.
    // -EINVAL: not such a port.
    i64 bind_to_hypervisor(u32 port, u16 remote_domid);
    // Raises `port` if it is still one bind_to_hypervisor() made; false otherwise.
    bool raise_from_hypervisor(u32 port);
    // Whether an event waits for `vcpu` (its upcall_pending): vcpu_block sleeps only when not.
    bool pending_for(u32 vcpu) const;

    // For domain destruction, once the domain's vCPUs have stopped: closes every port (the other
    // ends of its channels become unbound) and forgets the event page, as before init. When it
    // returns, nothing touches the page or the UpcallSink any more.
    void close_all();

private:
    // What raise() reads of a port without the lock, in one word: bits 15:0 count the raises
    // inside the port, 23:16 are the vCPU to notify, 31:24 the route (kRouteNone: the port takes
    // no events).
    static constexpr u32 kRaisesMask = 0xffff;
    static constexpr u32 kVcpuShift = 16;
    static constexpr u32 kRouteShift = 24;
    static constexpr u32 kRouteNone = 0;
    static constexpr u32 kRouteInterdomain = 1;
    static constexpr u32 kRouteVirq = 2;  // + the VIRQ
    static constexpr u32 kRouteHypervisor = 0xff;
    static constexpr u32 kAnyRoute = ~0u;
    static constexpr u32 kAnyVcpu = ~0u;

    struct Port {
        Atomic<u32> delivery;
        u8 state = LAMINA_EVTCHN_CLOSED;
        u8 vcpu = 0;
        u8 virq = 0;                    // VIRQ
        u16 remote_domid = 0;           // UNBOUND: who may bind it; INTERDOMAIN: the other end's
        u16 remote_port = 0;            // INTERDOMAIN
        EventChannels* peer = nullptr;  // INTERDOMAIN: valid while the channel is, since closing
                                        // either end takes both objects' locks; null when the
                                        // hypervisor is the other end
    };

    bool initialized() const { return page_.load(MemoryOrder::Acquire) != nullptr; }
    // 0, or -ENOENT before init, or -EINVAL for a port out of range.
    i64 check_port(u32 port) const;
    u32 free_port() const;
    Atomic<u16>& virq_slot(u32 virq, u32 vcpu);

    void link(u32 port, EventChannels& peer, u32 peer_port);
    void make_unbound(u32 port, u16 remote_domid);
    void release(u32 port);
    i64 connect(EventChannels& peer, u32 remote_port);
    i64 try_close(u32 port);

    void open_delivery(Port& port, u32 route);
    void shut_delivery(Port& port);
    bool enter_and_raise(u32 port, u32 route, u32 vcpu);
    void set_pending(u32 port, u32 vcpu);
    void notify(lamina_evtchn_shared& page, u32 vcpu, u32 word);

    void lock_with(EventChannels& peer);
    bool try_lock_peer(EventChannels& peer);
    void unlock_with(EventChannels& peer);

    const u16 domain_id_;
    Atomic<u32> vcpu_count_;  // read without the lock by raise_virq and pending_for
    EventDomains& domains_;
    UpcallSink& upcalls_;
    mutable SpinLock lock_;
    Atomic<lamina_evtchn_shared*> page_;
    Atomic<u8> upcall_vectors_[LAMINA_MAX_VCPUS];
    // The port bound to each VIRQ (virq_slot).
    Atomic<u16> virq_ports_[LAMINA_MAX_VCPUS][kVirqs];
    Port ports_[kPorts];
};

}  // namespace lamina::event
