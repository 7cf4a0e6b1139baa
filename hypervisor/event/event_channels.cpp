#include <hypervisor/event/event_channels.h>

#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>
#include <lamina/assert.h>

namespace lamina::event {
namespace {

constexpr i64 kNoEventPage = -static_cast<i64>(LAMINA_ENOENT);
constexpr i64 kNoSuchDomain = -static_cast<i64>(LAMINA_ESRCH);
constexpr i64 kExists = -static_cast<i64>(LAMINA_EEXIST);
constexpr i64 kInvalid = -static_cast<i64>(LAMINA_EINVAL);
constexpr i64 kNoFreePort = -static_cast<i64>(LAMINA_ENOSPC);
constexpr i64 kNotAllowed = -static_cast<i64>(LAMINA_EPERM);
// try_close could not take the other end's lock in order: it let go of its own, to start again.
// Never returned by a hypercall.
constexpr i64 kRetry = -1000;

static_assert(LAMINA_EVTCHN_PORTS / 64 <= 64, "pending_words has one bit per word of pending[]");
static_assert(LAMINA_EVTCHN_PORTS <= 0x10000, "ports fit a u16");
static_assert(LAMINA_MAX_VCPUS <= 0x100, "a vCPU fits the 8 bits of the delivery word and a u8");

bool per_vcpu(u32 virq) { return virq == LAMINA_VIRQ_TIMER; }

// The event page's bits, with locked instructions: the guest clears them concurrently
// (event_channel.h). Sequentially consistent, so that a raise and an unmask racing on one port
// cannot both miss the other (the ordering Xen's evtchn_2l_set_pending and _unmask rely on).
bool test_and_set(u64* words, u32 bit) {
    const u64 mask = u64{1} << (bit % 64);
    return __atomic_fetch_or(&words[bit / 64], mask, __ATOMIC_SEQ_CST) & mask;
}
bool test_and_clear(u64* words, u32 bit) {
    const u64 mask = u64{1} << (bit % 64);
    return __atomic_fetch_and(&words[bit / 64], ~mask, __ATOMIC_SEQ_CST) & mask;
}
bool test(const u64* words, u32 bit) {
    return (__atomic_load_n(&words[bit / 64], __ATOMIC_SEQ_CST) >> (bit % 64)) & 1;
}

}  // namespace

EventChannels::EventChannels(u16 domain_id, u32 vcpu_count, EventDomains& domains, UpcallSink& upcalls)
    : domain_id_(domain_id), vcpu_count_(vcpu_count), domains_(domains), upcalls_(upcalls) {
    LAMINA_ASSERT(vcpu_count >= 1 && vcpu_count <= LAMINA_MAX_VCPUS);
}

void EventChannels::set_vcpu_count(u32 count) {
    LAMINA_ASSERT(count >= 1 && count <= LAMINA_MAX_VCPUS);
    vcpu_count_.store(count, MemoryOrder::Release);
}

i64 EventChannels::check_port(u32 port) const {
    if (!initialized()) return kNoEventPage;
    return port == 0 || port >= kPorts ? kInvalid : 0;
}

// Per-vCPU VIRQs by vCPU, global ones in row 0 (as Xen keeps them).
Atomic<u16>& EventChannels::virq_slot(u32 virq, u32 vcpu) { return virq_ports_[per_vcpu(virq) ? vcpu : 0][virq]; }

// The lowest closed port, as Xen's get_free_port; 0 when there is none.
u32 EventChannels::free_port() const {
    for (u32 port = 1; port < kPorts; ++port) {
        if (ports_[port].state == LAMINA_EVTCHN_CLOSED) return port;
    }
    return 0;
}

i64 EventChannels::init(lamina_evtchn_shared* page) {
    LAMINA_ASSERT(page != nullptr);
    LockGuard guard(lock_);
    if (initialized()) return kExists;
    for (u64& word : page->pending) __atomic_store_n(&word, 0, __ATOMIC_RELAXED);
    for (lamina_evtchn_vcpu& vcpu : page->vcpu) {
        __atomic_store_n(&vcpu.pending_words, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&vcpu.upcall_pending, 0, __ATOMIC_RELAXED);
    }
    page_.store(page, MemoryOrder::Release);
    return 0;
}

i64 EventChannels::alloc_unbound(u16 remote_domid) {
    LockGuard guard(lock_);
    if (!initialized()) return kNoEventPage;
    if (remote_domid > LAMINA_DOMID_MAX) return kInvalid;
    const u32 port = free_port();
    if (!port) return kNoFreePort;
    make_unbound(port, remote_domid);
    return port;
}

i64 EventChannels::bind_interdomain(u16 remote_domid, u32 remote_port) {
    if (!initialized()) return kNoEventPage;
    EventChannels* peer = remote_domid == domain_id_ ? this : domains_.find(remote_domid);
    if (!peer) return kNoSuchDomain;
    LAMINA_ASSERT(peer->domain_id_ == remote_domid);  // the lock order relies on distinct ids
    lock_with(*peer);
    const i64 result = connect(*peer, remote_port);
    unlock_with(*peer);
    return result;
}

// bind_interdomain with both objects locked.
i64 EventChannels::connect(EventChannels& peer, u32 remote_port) {
    if (!initialized()) return kNoEventPage;  // close_all ran since bind_interdomain looked
    if (remote_port == 0 || remote_port >= kPorts) return kInvalid;
    const Port& remote = peer.ports_[remote_port];
    if (remote.state != LAMINA_EVTCHN_UNBOUND || remote.remote_domid != domain_id_) return kInvalid;
    const u32 port = free_port();
    if (!port) return kNoFreePort;
    link(port, peer, remote_port);
    peer.link(remote_port, *this, port);
    // Sends to the other end while it was unbound were dropped: this end gets one for them.
    set_pending(port, ports_[port].vcpu);
    return port;
}

i64 EventChannels::bind_virq(u32 virq, u32 vcpu, bool control_domain) {
    LockGuard guard(lock_);
    if (!initialized()) return kNoEventPage;
    if (virq >= kVirqs || vcpu >= vcpu_count_.load(MemoryOrder::Acquire)) return kInvalid;
    if (!per_vcpu(virq) && !control_domain) return kNotAllowed;
    Atomic<u16>& slot = virq_slot(virq, vcpu);
    if (slot.load(MemoryOrder::Relaxed)) return kExists;
    const u32 port = free_port();
    if (!port) return kNoFreePort;
    Port& bound = ports_[port];
    bound.state = LAMINA_EVTCHN_VIRQ;
    bound.vcpu = static_cast<u8>(vcpu);
    bound.virq = static_cast<u8>(virq);
    open_delivery(bound, kRouteVirq + virq);
    slot.store(static_cast<u16>(port), MemoryOrder::Release);
    return port;
}

i64 EventChannels::send(u32 port) {
    LockGuard guard(lock_);
    if (const i64 error = check_port(port)) return error;
    const Port& sender = ports_[port];
    switch (sender.state) {
        case LAMINA_EVTCHN_INTERDOMAIN:
            // The other end cannot close while this lock is held, so the peer stays. A device
            // the hypervisor emulates takes no events.
            if (sender.peer) sender.peer->raise(sender.remote_port);
            return 0;
        case LAMINA_EVTCHN_UNBOUND:
            return 0;  // nobody listens yet: dropped, as Xen does
        default:
            return kInvalid;
    }
}

i64 EventChannels::close(u32 port) {
    i64 result;
    while ((result = try_close(port)) == kRetry) cpu_relax();
    return result;
}

i64 EventChannels::try_close(u32 port) {
    LockGuard guard(lock_);
    if (const i64 error = check_port(port)) return error;
    const Port& closing = ports_[port];
    if (closing.state == LAMINA_EVTCHN_CLOSED) return kInvalid;
    if (closing.state == LAMINA_EVTCHN_INTERDOMAIN && closing.peer) {
        EventChannels& peer = *closing.peer;
        if (!try_lock_peer(peer)) return kRetry;
        peer.make_unbound(closing.remote_port, domain_id_);
        if (&peer != this) peer.lock_.unlock();
    }
    release(port);
    return 0;
}

i64 EventChannels::status(u32 port, lamina_evtchn_status* out) const {
    LockGuard guard(lock_);
    if (const i64 error = check_port(port)) return error;
    const Port& described = ports_[port];
    lamina_evtchn_status answer{};
    answer.port = port;
    answer.state = described.state;
    answer.vcpu = described.vcpu;
    if (described.state == LAMINA_EVTCHN_UNBOUND || described.state == LAMINA_EVTCHN_INTERDOMAIN) {
        answer.remote_domid = described.remote_domid;
    }
    if (described.state == LAMINA_EVTCHN_INTERDOMAIN) answer.remote_port = described.remote_port;
    if (described.state == LAMINA_EVTCHN_VIRQ) answer.virq = described.virq;
    *out = answer;
    return 0;
}

i64 EventChannels::unmask(u32 port) {
    LockGuard guard(lock_);
    if (const i64 error = check_port(port)) return error;
    lamina_evtchn_shared& page = *page_.load(MemoryOrder::Acquire);
    if (test_and_clear(page.mask, port) && test(page.pending, port)) notify(page, ports_[port].vcpu, port / 64);
    return 0;
}

i64 EventChannels::set_upcall_vector(u32 vcpu, u8 vector) {
    LockGuard guard(lock_);
    if (!initialized()) return kNoEventPage;
    if (vcpu >= vcpu_count_.load(MemoryOrder::Acquire) || (vector != 0 && vector < kFirstUpcallVector)) return kInvalid;
    upcall_vectors_[vcpu].store(vector, MemoryOrder::Release);
    const lamina_evtchn_shared& page = *page_.load(MemoryOrder::Acquire);
    if (vector && __atomic_load_n(&page.vcpu[vcpu].upcall_pending, __ATOMIC_SEQ_CST)) upcalls_.upcall(vcpu, vector);
    return 0;
}

bool EventChannels::raise(u32 port) {
    if (port == 0 || port >= kPorts) return false;
    return enter_and_raise(port, kAnyRoute, kAnyVcpu);
}

bool EventChannels::raise_virq(u32 virq, u32 vcpu) {
    if (virq >= kVirqs || (per_vcpu(virq) && vcpu >= vcpu_count_.load(MemoryOrder::Acquire))) return false;
    const u32 port = virq_slot(virq, vcpu).load(MemoryOrder::Acquire);
    if (!port) return false;
    // The port may have been closed and bound to something else since the load: the route (and
    // for a per-vCPU VIRQ the vCPU) must still say it is this VIRQ's.
    return enter_and_raise(port, kRouteVirq + virq, per_vcpu(virq) ? vcpu : kAnyVcpu);
}

i64 EventChannels::bind_to_hypervisor(u32 port, u16 remote_domid) {
    LockGuard guard(lock_);
    if (const i64 error = check_port(port)) return error;
    Port& bound = ports_[port];
    if (bound.state != LAMINA_EVTCHN_UNBOUND || bound.remote_domid != remote_domid) return kInvalid;
    bound.state = LAMINA_EVTCHN_INTERDOMAIN;
    bound.remote_port = 0;
    bound.peer = nullptr;
    open_delivery(bound, kRouteHypervisor);
    return 0;
}

bool EventChannels::raise_from_hypervisor(u32 port) {
    return port && port < kPorts && enter_and_raise(port, kRouteHypervisor, kAnyVcpu);
}

bool EventChannels::pending_for(u32 vcpu) const {
    const lamina_evtchn_shared* page = page_.load(MemoryOrder::Acquire);
    if (!page || vcpu >= vcpu_count_.load(MemoryOrder::Acquire)) return false;
    return __atomic_load_n(&page->vcpu[vcpu].upcall_pending, __ATOMIC_SEQ_CST) != 0;
}

void EventChannels::close_all() {
    for (u32 port = 1; port < kPorts; ++port) (void)close(port);  // -EINVAL for the closed ones
    LockGuard guard(lock_);
    for (Atomic<u8>& vector : upcall_vectors_) vector.store(0, MemoryOrder::Relaxed);
    page_.store(nullptr, MemoryOrder::Release);
}

void EventChannels::link(u32 port, EventChannels& peer, u32 peer_port) {
    Port& linked = ports_[port];
    // An unbound end keeps its vCPU; a new port notifies vCPU 0.
    linked.state = LAMINA_EVTCHN_INTERDOMAIN;
    linked.remote_domid = peer.domain_id_;
    linked.remote_port = static_cast<u16>(peer_port);
    linked.peer = &peer;
    open_delivery(linked, kRouteInterdomain);
}

void EventChannels::make_unbound(u32 port, u16 remote_domid) {
    Port& unbound = ports_[port];
    shut_delivery(unbound);
    unbound.state = LAMINA_EVTCHN_UNBOUND;
    unbound.remote_domid = remote_domid;
    unbound.remote_port = 0;
    unbound.peer = nullptr;
}

void EventChannels::release(u32 port) {
    Port& released = ports_[port];
    if (released.state == LAMINA_EVTCHN_VIRQ) {
        virq_slot(released.virq, released.vcpu).store(0, MemoryOrder::Release);
    }
    shut_delivery(released);
    // No raise is inside the port any more, so none can set the bit again after this.
    test_and_clear(page_.load(MemoryOrder::Acquire)->pending, port);
    released.state = LAMINA_EVTCHN_CLOSED;
    released.vcpu = 0;
    released.virq = 0;
    released.remote_domid = 0;
    released.remote_port = 0;
    released.peer = nullptr;
}

void EventChannels::open_delivery(Port& port, u32 route) {
    // A port that takes no events has no raise inside: the whole word is 0.
    LAMINA_ASSERT(port.delivery.load(MemoryOrder::Relaxed) == 0);
    port.delivery.store(route << kRouteShift | u32{port.vcpu} << kVcpuShift, MemoryOrder::Release);
}

// Stops new raises from entering the port, then waits for those inside to leave; they run with
// interrupts off and take no lock, so the wait is short.
void EventChannels::shut_delivery(Port& port) {
    port.delivery.fetch_and(kRaisesMask, MemoryOrder::AcqRel);
    while (port.delivery.load(MemoryOrder::Acquire) & kRaisesMask) cpu_relax();
}

// Enters the port when it takes events by `route` to `vcpu` (kAny*: whichever), raises it, and
// leaves. close and rebinding wait for it in shut_delivery, so the port cannot change under it.
bool EventChannels::enter_and_raise(u32 port, u32 route, u32 vcpu) {
    Atomic<u32>& delivery = ports_[port].delivery;
    u32 word = delivery.load(MemoryOrder::Acquire);
    u32 target;
    do {
        const u32 current_route = word >> kRouteShift;
        target = (word >> kVcpuShift) & 0xff;
        if (current_route == kRouteNone || (route != kAnyRoute && current_route != route)) return false;
        if (vcpu != kAnyVcpu && target != vcpu) return false;
    } while (!delivery.compare_exchange(word, word + 1, MemoryOrder::Acquire));
    set_pending(port, target);
    delivery.fetch_sub(1, MemoryOrder::Release);
    return true;
}

// Xen's evtchn_2l_set_pending: a port pending already, or masked, raises no new upcall.
void EventChannels::set_pending(u32 port, u32 vcpu) {
    lamina_evtchn_shared* page = page_.load(MemoryOrder::Acquire);
    if (test_and_set(page->pending, port)) return;
    if (test(page->mask, port)) return;
    notify(*page, vcpu, port / 64);
}

// The word's bit in pending_words, then upcall_pending: either set already means the guest has
// yet to take them, and an upcall for them is on its way.
void EventChannels::notify(lamina_evtchn_shared& page, u32 vcpu, u32 word) {
    lamina_evtchn_vcpu& record = page.vcpu[vcpu];
    if (test_and_set(&record.pending_words, word)) return;
    if (__atomic_exchange_n(&record.upcall_pending, u8{1}, __ATOMIC_SEQ_CST)) return;
    upcalls_.upcall(vcpu, upcall_vectors_[vcpu].load(MemoryOrder::Acquire));
}

// Both locks from none held: the lower domain id's first.
void EventChannels::lock_with(EventChannels& peer) {
    EventChannels& first = peer.domain_id_ < domain_id_ ? peer : *this;
    EventChannels& second = &first == this ? peer : *this;
    first.lock_.lock();
    if (&second != &first) second.lock_.lock();
}

// The peer's lock while this one is held: in order, wait for it; out of order, only try, so two
// closes of one channel from both ends cannot deadlock.
bool EventChannels::try_lock_peer(EventChannels& peer) {
    if (&peer == this) return true;
    if (peer.domain_id_ > domain_id_) {
        peer.lock_.lock();
        return true;
    }
    return peer.lock_.try_lock();
}

void EventChannels::unlock_with(EventChannels& peer) {
    if (&peer != this) peer.lock_.unlock();
    lock_.unlock();
}

}  // namespace lamina::event
