// Event channels as an unprivileged domain uses them (event_channel.h): before evtchn_init every
// call is ENOENT; ports are allocated, bound to the domain itself, to the timer's VIRQ on each
// vCPU, signalled, masked and unmasked, described and closed with the states, bits and upcalls
// the ABI gives; every refusal the table implies (ports, VIRQs, vCPUs, vectors out of range,
// other domains' ports, values wider than their types, bad buffers) and none of them leaves a
// port open. Most channels here connect the domain to itself; one connects it to another domain:
// Dom0, asked as the peer (ask_peer "port"), offers a port and echoes each event on it.
#include <tests/conformance/framework/conformance.h>

#include <lamina/string.h>
#include <tests/guests/traps.h>

CONFORMANCE_KERNEL("evtchn", Functional);

using namespace conformance;

namespace {

constexpr u8 kUpcall = 0x60;
constexpr u8 kOtherUpcall = 0x61;
constexpr u16 kNoDomain = LAMINA_DOMID_MAX;  // never created while the suite runs
constexpr u32 kSecondVcpu = 1;               // Dom0 gives test domains two
constexpr u32 kBadPorts[] = {0, LAMINA_EVTCHN_PORTS, 0xffffffff};

alignas(4096) lamina_evtchn_shared event_page;
alignas(4096) u8 spare_page[2][4096];  // a second event page, and buffers at awkward places
bool initialised = false;              // evtchn_init registered event_page

u64 bit(u32 port) { return u64{1} << (port % 64); }
bool pending(u32 port) { return __atomic_load_n(&event_page.pending[port / 64], __ATOMIC_SEQ_CST) & bit(port); }
bool any_pending() {
    for (const u64& word : event_page.pending) {
        if (__atomic_load_n(&word, __ATOMIC_SEQ_CST)) return true;
    }
    return false;
}
u8 upcall_pending() { return __atomic_load_n(&event_page.vcpu[0].upcall_pending, __ATOMIC_SEQ_CST); }
void set_mask(u32 port) { __atomic_fetch_or(&event_page.mask[port / 64], bit(port), __ATOMIC_SEQ_CST); }
bool masked(u32 port) { return __atomic_load_n(&event_page.mask[port / 64], __ATOMIC_SEQ_CST) & bit(port); }

// The guest's half of the protocol (event_channel.h), for every port and vCPU at once: afterwards
// the next event raises an upcall again. Upcalls raised while interrupts were off come in first.
void acknowledge_all() {
    asm volatile("sti; nop; nop; cli" ::: "memory");
    for (lamina_evtchn_vcpu& vcpu : event_page.vcpu) {
        __atomic_store_n(&vcpu.upcall_pending, 0, __ATOMIC_SEQ_CST);
        __atomic_exchange_n(&vcpu.pending_words, 0, __ATOMIC_SEQ_CST);
    }
    for (u64& word : event_page.pending) __atomic_exchange_n(&word, 0, __ATOMIC_SEQ_CST);
}

// A call made with interrupts on, so that an upcall it raises is taken before it returns.
template <typename Call>
i64 with_interrupts(Call call) {
    guest::enable_interrupts();
    const i64 result = call();
    guest::disable_interrupts();
    return result;
}

u32 upcalls(u8 vector = kUpcall) { return guest::interrupts_taken(vector); }

// evtchn_status into a buffer that held garbage before: every field must be written.
lamina_evtchn_status status_of(u32 port, i64* result = nullptr) {
    lamina_evtchn_status status;
    str::fill_bytes(&status, 0xee, sizeof(status));
    const i64 r = lamina_hc_evtchn_status(port, gpa_of(&status));
    if (result) *result = r;
    return status;
}

bool status_is(const lamina_evtchn_status& s, u32 port, u32 state, u32 vcpu, u16 remote_domid, u32 remote_port,
               u32 virq) {
    return s.port == port && s.state == state && s.vcpu == vcpu && s.remote_domid == remote_domid && s.pad0 == 0 &&
           s.remote_port == remote_port && s.virq == virq;
}

// How many ports are open (not CLOSED): every port, asked one by one.
u32 open_ports() {
    u32 open = 0;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; ++port) {
        i64 result;
        const lamina_evtchn_status s = status_of(port, &result);
        open += result != 0 || s.state != LAMINA_EVTCHN_CLOSED;
    }
    return open;
}

// The end of every case: it closed what it opened.
void check_no_port_open(Test& t, const char* call) {
    char what[96];
    format_to(what, sizeof(what), "{}: afterwards no port is open", call);
    const u32 open = open_ports();
    t.check(open == 0, what, "{} open", open);
}

bool closed(u32 port) { return lamina_hc_evtchn_close(port) == 0; }

// Waits (about 5 s at most) for `port` to become pending.
bool becomes_pending(u32 port) {
    for (u32 round = 0; round < 500 && !pending(port); ++round) {
        lamina_hc_vcpu_set_timer(10'000'000);
        lamina_hc_vcpu_block();
    }
    lamina_hc_vcpu_set_timer(0);
    return pending(port);
}

// The port Dom0 offers this domain when asked; 0 (having said why) when it offers none.
u32 dom0_port(Test& t) {
    char reply[32];
    u64 port = 0;
    if (ask_peer("port", reply, sizeof(reply)) < 0) {
        t.skip("Dom0 did not answer \"port\": it is no peer (run by an older Dom0?)");
    } else if (str::compare_bytes(reply, "port ", 5) != 0 || !str::parse_u64(reply + 5, str::length(reply + 5), &port) ||
               port == 0 || port >= LAMINA_EVTCHN_PORTS) {
        t.error("set-up: Dom0 offered no port: \"{}\"", reply);
        port = 0;
    }
    return static_cast<u32>(port);
}

// A channel from the domain to itself: `offered` (allocated first) and `bound`.
struct Channel {
    u32 offered = 0, bound = 0;
};
bool open_channel(Test& t, Channel* channel) {
    const u64 self = own_domid();
    const i64 offered = lamina_hc_evtchn_alloc_unbound(self);
    const i64 bound = offered > 0 ? lamina_hc_evtchn_bind_interdomain(self, static_cast<u64>(offered)) : -1;
    if (offered <= 0 || bound <= 0) {
        t.error("set-up: a channel to itself: evtchn_alloc_unbound {}, evtchn_bind_interdomain {}", offered, bound);
        if (offered > 0) lamina_hc_evtchn_close(static_cast<u64>(offered));
        return false;
    }
    *channel = {static_cast<u32>(offered), static_cast<u32>(bound)};
    acknowledge_all();  // bind_interdomain's event: the case starts with nothing pending
    return true;
}
bool close_channel(const Channel& channel) { return closed(channel.offered) && closed(channel.bound); }

bool ready(Test& t) {
    if (!initialised) t.error("set-up: evtchn_init did not run");
    return initialised;
}

// `call(port)` for each port out of range, and for one wider than its 32 bits (the wrappers pass
// all 64): all EINVAL.
template <typename Call>
void check_bad_ports(Test& t, const char* name, Call call) {
    for (u32 port : kBadPorts) {
        char what[96];
        format_to(what, sizeof(what), "{}: port {:#x} is EINVAL", name, port);
        t.returns(call(port), kEinval, what);
    }
    char what[96];
    format_to(what, sizeof(what), "{}: a port wider than 32 bits is EINVAL", name);
    t.returns(call((u64{1} << 32) | 1), kEinval, what);
}

}  // namespace

HYPERCALL_TEST(evtchn_init) {
    // Before: no event page, so nothing else works.
    lamina_evtchn_status status;
    const struct {
        const char* what;
        i64 result;
    } before[] = {
        {"evtchn_alloc_unbound before evtchn_init is ENOENT", lamina_hc_evtchn_alloc_unbound(0)},
        {"evtchn_bind_interdomain before evtchn_init is ENOENT", lamina_hc_evtchn_bind_interdomain(0, 1)},
        {"evtchn_bind_virq before evtchn_init is ENOENT", lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0)},
        {"evtchn_send before evtchn_init is ENOENT", lamina_hc_evtchn_send(1)},
        {"evtchn_close before evtchn_init is ENOENT", lamina_hc_evtchn_close(1)},
        {"evtchn_status before evtchn_init is ENOENT", lamina_hc_evtchn_status(1, gpa_of(&status))},
        {"evtchn_unmask before evtchn_init is ENOENT", lamina_hc_evtchn_unmask(1)},
        {"evtchn_set_upcall_vector before evtchn_init is ENOENT", lamina_hc_evtchn_set_upcall_vector(0, kUpcall)},
    };
    for (const auto& b : before) t.returns(b.result, kEnoent, b.what);

    t.returns(lamina_hc_evtchn_init(gpa_of(&event_page) + 8), kEinval, "evtchn_init: a page 8 bytes off is EINVAL");
    t.returns(lamina_hc_evtchn_init(gpa_of(&event_page) + 2048), kEinval, "evtchn_init: half a page off is EINVAL");
    // Page-aligned, but not a page of this domain's memory.
    const struct {
        const char* what;
        u64 gpa;
    } elsewhere[] = {
        {"evtchn_init: the page after the domain's memory is EFAULT", memory_end()},
        {"evtchn_init: a page beyond RAM is EFAULT", align_up(memory_end(), u64{1} << 30) + (u64{1} << 30)},
        {"evtchn_init: a page past the address width is EFAULT", u64{1} << 52},
        {"evtchn_init: the local APIC's page is EFAULT", 0xfee00000},
        {"evtchn_init: the last page of the address space is EFAULT", ~u64{0xfff}},
    };
    for (const auto& e : elsewhere) t.returns(lamina_hc_evtchn_init(e.gpa), kEfault, e.what);
    t.returns(lamina_hc_evtchn_alloc_unbound(0), kEnoent, "evtchn_init: the refusals registered nothing");

    if (!t.returns(lamina_hc_evtchn_init(gpa_of(&event_page)), 0, "evtchn_init: registers a page of RAM")) return;
    t.returns(lamina_hc_evtchn_init(gpa_of(&event_page)), kEexist, "evtchn_init: a second time is EEXIST");
    t.returns(lamina_hc_evtchn_init(gpa_of(spare_page[0])), kEexist, "evtchn_init: another page then is EEXIST");
    initialised = true;
    // CPUID's id is the one the hypervisor binds by: a port offered to it binds from here.
    const i64 offered = lamina_hc_evtchn_alloc_unbound(own_domid());
    const i64 bound = offered > 0 ? lamina_hc_evtchn_bind_interdomain(own_domid(), static_cast<u64>(offered)) : offered;
    t.check(own_domid() > 0 && bound > 0, "evtchn_init: the domain then binds a port it offered its own id (CPUID)",
            "id {}: {}", own_domid(), lamina_errno_name(bound));
    if (offered > 0) lamina_hc_evtchn_close(static_cast<u64>(offered));
    if (bound > 0) lamina_hc_evtchn_close(static_cast<u64>(bound));
    check_no_port_open(t, "evtchn_init");
}

HYPERCALL_TEST(evtchn_alloc_unbound) {
    if (!ready(t)) return;
    const i64 to_dom0 = lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_CONTROL);
    const i64 to_self = lamina_hc_evtchn_alloc_unbound(own_domid());
    t.check(to_dom0 > 0 && to_dom0 < LAMINA_EVTCHN_PORTS && to_self > 0 && to_self < LAMINA_EVTCHN_PORTS &&
                to_dom0 != to_self,
            "evtchn_alloc_unbound: returns a new port each time", "{}, {}", to_dom0, to_self);
    if (to_dom0 <= 0 || to_self <= 0) return;
    const u32 dom0_port = static_cast<u32>(to_dom0), own_port = static_cast<u32>(to_self);
    t.check(status_is(status_of(dom0_port), dom0_port, LAMINA_EVTCHN_UNBOUND, 0, LAMINA_DOMID_CONTROL, 0, 0),
            "evtchn_alloc_unbound: the port is UNBOUND, offered to Dom0");
    t.check(status_is(status_of(own_port), own_port, LAMINA_EVTCHN_UNBOUND, 0, own_domid(), 0, 0),
            "evtchn_alloc_unbound: a port offered to the domain itself is UNBOUND, offered to it");
    t.returns(lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_MAX + 1), kEinval,
              "evtchn_alloc_unbound: an id above LAMINA_DOMID_MAX is EINVAL");
    t.returns(lamina_hc_evtchn_alloc_unbound(0xffff), kEinval, "evtchn_alloc_unbound: id 0xffff is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_alloc_unbound, u64{1} << 16), kEinval,
              "evtchn_alloc_unbound: an id wider than 16 bits is EINVAL");

    // Every port there is, then ENOSPC, for every call that needs a new port; the last port
    // allocated is offered to the domain itself, for evtchn_bind_interdomain.
    u32 allocated = 2;
    i64 result = 0;
    while (allocated < LAMINA_EVTCHN_PORTS && (result = lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_CONTROL)) > 0)
        ++allocated;
    t.returns(result, kEnospc, "evtchn_alloc_unbound: with no free port it is ENOSPC");
    t.returns(allocated, LAMINA_EVTCHN_PORTS - 1, "evtchn_alloc_unbound: every port but 0 could be allocated");
    t.returns(lamina_hc_evtchn_bind_interdomain(own_domid(), own_port), kEnospc,
              "evtchn_bind_interdomain: with no free port it is ENOSPC");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0), kEnospc,
              "evtchn_bind_virq: with no free port it is ENOSPC");
    u32 closed_count = 0;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; ++port) closed_count += closed(port);
    t.returns(closed_count, allocated, "evtchn_close: every allocated port closes");
    check_no_port_open(t, "evtchn_alloc_unbound");
}

HYPERCALL_TEST(evtchn_bind_interdomain) {
    if (!ready(t)) return;
    const i64 offered = lamina_hc_evtchn_alloc_unbound(own_domid());
    if (offered <= 0) {
        t.error("set-up: evtchn_alloc_unbound: {}", offered);
        return;
    }
    const u32 first = static_cast<u32>(offered);
    acknowledge_all();
    const i64 bound = lamina_hc_evtchn_bind_interdomain(own_domid(), first);
    if (!t.check(bound > 0 && bound < LAMINA_EVTCHN_PORTS && bound != offered,
                 "evtchn_bind_interdomain: binds the port the domain offered itself, as a new port", "{}", bound)) {
        lamina_hc_evtchn_close(first);
        return;
    }
    const u32 second = static_cast<u32>(bound);
    const u16 self = own_domid();
    t.check(pending(second) && upcall_pending() == 1 && (event_page.vcpu[0].pending_words & (u64{1} << (second / 64))),
            "evtchn_bind_interdomain: the new port is pending at once, upcall_pending set");
    t.check(!pending(first), "evtchn_bind_interdomain: the offered end is not pending");
    t.check(status_is(status_of(second), second, LAMINA_EVTCHN_INTERDOMAIN, 0, self, first, 0),
            "evtchn_bind_interdomain: the new port is INTERDOMAIN to the offered one");
    t.check(status_is(status_of(first), first, LAMINA_EVTCHN_INTERDOMAIN, 0, self, second, 0),
            "evtchn_bind_interdomain: the offered port is INTERDOMAIN to the new one");
    acknowledge_all();

    // Refusals: ports that are not offered to this domain, domains that do not exist.
    t.returns(lamina_hc_evtchn_bind_interdomain(self, first), kEinval,
              "evtchn_bind_interdomain: a port bound already is EINVAL");
    const i64 to_dom0 = lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_CONTROL);
    t.returns(lamina_hc_evtchn_bind_interdomain(self, static_cast<u64>(to_dom0)), kEinval,
              "evtchn_bind_interdomain: an own port offered to Dom0 is EINVAL");
    if (to_dom0 > 0) lamina_hc_evtchn_close(static_cast<u64>(to_dom0));
    t.returns(lamina_hc_evtchn_bind_interdomain(self, static_cast<u64>(to_dom0)), kEinval,
              "evtchn_bind_interdomain: a closed port is EINVAL");
    t.returns(lamina_hc_evtchn_bind_interdomain(LAMINA_DOMID_CONTROL, 1), kEinval,
              "evtchn_bind_interdomain: a port of Dom0's that Dom0 did not offer is EINVAL");
    check_bad_ports(t, "evtchn_bind_interdomain",
                    [&](u64 port) { return lamina_hc_evtchn_bind_interdomain(self, port); });
    const u64 no_domains[] = {kNoDomain, LAMINA_DOMID_MAX + 1, 0xffff};
    for (u64 id : no_domains) {
        char what[96];
        format_to(what, sizeof(what), "evtchn_bind_interdomain: domain {:#x}, which does not exist, is ESRCH", id);
        t.returns(lamina_hc_evtchn_bind_interdomain(id, 1), kEsrch, what);
    }
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_bind_interdomain, (u64{1} << 16) | self, first), kEinval,
              "evtchn_bind_interdomain: an id wider than 16 bits is EINVAL");
    t.check(!any_pending(), "evtchn_bind_interdomain: no refusal raised an event");

    // Closed at one end, the other is offered back, and binds again.
    t.returns(lamina_hc_evtchn_close(second), 0, "evtchn_close: the bound end of the channel");
    const i64 again = lamina_hc_evtchn_bind_interdomain(self, first);
    t.check(again > 0, "evtchn_bind_interdomain: the end left behind binds again", "{}", again);
    t.check(again > 0 && closed(static_cast<u32>(again)) && closed(first), "evtchn_close: both ends of the channel");
    acknowledge_all();
    check_no_port_open(t, "evtchn_bind_interdomain");
}

HYPERCALL_TEST(evtchn_bind_virq) {
    if (!ready(t)) return;
    const i64 first = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0);
    const i64 second = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, kSecondVcpu);
    if (!t.check(first > 0 && second > 0 && first != second,
                 "evtchn_bind_virq: the timer's VIRQ binds on each vCPU, to a port of its own", "{}, {}", first,
                 second)) {
        if (first > 0) closed(static_cast<u32>(first));
        if (second > 0) closed(static_cast<u32>(second));
        return;
    }
    const u32 timer = static_cast<u32>(first), other = static_cast<u32>(second);
    t.check(status_is(status_of(timer), timer, LAMINA_EVTCHN_VIRQ, 0, 0, 0, LAMINA_VIRQ_TIMER),
            "evtchn_bind_virq: the port is VIRQ, the timer's, notifying vCPU 0");
    t.check(status_is(status_of(other), other, LAMINA_EVTCHN_VIRQ, kSecondVcpu, 0, 0, LAMINA_VIRQ_TIMER),
            "evtchn_bind_virq: the second vCPU's port notifies the second vCPU");

    // The VIRQ arrives on its port, for its vCPU.
    acknowledge_all();
    const bool slept = lamina_hc_vcpu_set_timer(1'000'000) == 0 && lamina_hc_vcpu_block() == 0;
    t.check(slept && pending(timer) && upcall_pending() == 1 && !pending(other),
            "evtchn_bind_virq: vCPU 0's timer sets its port pending, and vCPU 0's upcall_pending");
    acknowledge_all();

    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0), kEexist, "evtchn_bind_virq: bound already is EEXIST");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_CONSOLE, 0), kEperm,
              "evtchn_bind_virq: the console's VIRQ is the control domain's (EPERM)");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_DOMAIN_DIED, 0), kEperm,
              "evtchn_bind_virq: DOMAIN_DIED is the control domain's (EPERM)");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_DOMAIN_DIED + 1, 0), kEinval,
              "evtchn_bind_virq: a VIRQ past the last is EINVAL");
    t.returns(lamina_hc_evtchn_bind_virq(0xffffffff, 0), kEinval, "evtchn_bind_virq: VIRQ 0xffffffff is EINVAL");
    const u64 no_vcpus[] = {kSecondVcpu + 1, LAMINA_MAX_VCPUS, 0xffffffff};
    for (u64 vcpu : no_vcpus) {
        char what[96];
        format_to(what, sizeof(what), "evtchn_bind_virq: vCPU {:#x}, which the domain lacks, is EINVAL", vcpu);
        const i64 result = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, vcpu);
        t.returns(result, kEinval, what);
        if (result > 0) closed(static_cast<u32>(result));
    }
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_bind_virq, (u64{1} << 32) | LAMINA_VIRQ_TIMER, 0), kEinval,
              "evtchn_bind_virq: a VIRQ wider than 32 bits is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_bind_virq, LAMINA_VIRQ_TIMER, u64{1} << 32), kEinval,
              "evtchn_bind_virq: a vCPU wider than 32 bits is EINVAL");

    // Closed, the VIRQ is free to bind again.
    t.returns(lamina_hc_evtchn_close(timer), 0, "evtchn_close: the timer's port");
    const i64 rebound = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0);
    t.check(rebound > 0, "evtchn_bind_virq: the VIRQ binds again once its port closed", "{}", rebound);
    t.check(rebound > 0 && closed(static_cast<u32>(rebound)) && closed(other), "evtchn_close: both timer ports");
    check_no_port_open(t, "evtchn_bind_virq");
}

HYPERCALL_TEST(evtchn_send) {
    Channel c;
    if (!ready(t) || !open_channel(t, &c)) return;
    if (!t.returns(lamina_hc_evtchn_set_upcall_vector(0, kUpcall), 0, "evtchn_set_upcall_vector: vCPU 0's upcall")) {
        close_channel(c);
        return;
    }
    u32 taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); }), 0, "evtchn_send: on one end");
    t.check(pending(c.bound) && !pending(c.offered), "evtchn_send: the other end is pending, this one is not");
    t.check(upcalls() == taken + 1 && upcall_pending() == 1, "evtchn_send: the upcall comes, once");
    taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); }), 0, "evtchn_send: again");
    t.check(upcalls() == taken, "evtchn_send: no second upcall while the port is still pending");
    acknowledge_all();
    taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_send(c.bound); }), 0, "evtchn_send: on the other end");
    t.check(pending(c.offered) && !pending(c.bound) && upcalls() == taken + 1,
            "evtchn_send: works both ways, with an upcall");
    acknowledge_all();

    // An unbound port drops the event: nothing anywhere is pending, and no upcall comes; when
    // the port is bound, the binder's end is pending instead.
    t.returns(lamina_hc_evtchn_close(c.bound), 0, "evtchn_close: one end, leaving the other unbound");
    taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); }), 0,
              "evtchn_send: on an unbound port is 0");
    t.check(!any_pending() && upcalls() == taken, "evtchn_send: an unbound port's event is dropped");
    const i64 rebound = lamina_hc_evtchn_bind_interdomain(own_domid(), c.offered);
    t.check(rebound > 0 && pending(static_cast<u32>(rebound)) && !pending(c.offered),
            "evtchn_bind_interdomain: the binder's end is pending for what was dropped");
    if (rebound > 0) c.bound = static_cast<u32>(rebound);
    acknowledge_all();

    const i64 virq = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0);
    t.returns(lamina_hc_evtchn_send(static_cast<u64>(virq)), kEinval, "evtchn_send: on a VIRQ's port is EINVAL");
    if (virq > 0) closed(static_cast<u32>(virq));
    t.returns(lamina_hc_evtchn_send(static_cast<u64>(virq)), kEinval, "evtchn_send: on a closed port is EINVAL");
    check_bad_ports(t, "evtchn_send", [](u64 port) { return lamina_hc_evtchn_send(port); });
    t.check(!any_pending(), "evtchn_send: no refusal raised an event");
    t.check(close_channel(c), "evtchn_close: both ends of the channel");
    lamina_hc_evtchn_set_upcall_vector(0, 0);
    check_no_port_open(t, "evtchn_send");
}

HYPERCALL_TEST(evtchn_close) {
    Channel c;
    if (!ready(t) || !open_channel(t, &c)) return;
    const u16 self = own_domid();
    t.returns(lamina_hc_evtchn_close(c.bound), 0, "evtchn_close: one end of a channel");
    t.check(status_is(status_of(c.bound), c.bound, LAMINA_EVTCHN_CLOSED, 0, 0, 0, 0),
            "evtchn_close: the port is CLOSED");
    t.check(status_is(status_of(c.offered), c.offered, LAMINA_EVTCHN_UNBOUND, 0, self, 0, 0),
            "evtchn_close: the other end is UNBOUND, offered to the closer's domain");
    t.returns(lamina_hc_evtchn_close(c.offered), 0, "evtchn_close: an unbound port");
    t.check(status_is(status_of(c.offered), c.offered, LAMINA_EVTCHN_CLOSED, 0, 0, 0, 0),
            "evtchn_close: the unbound port is CLOSED");
    t.returns(lamina_hc_evtchn_close(c.offered), kEinval, "evtchn_close: a closed port is EINVAL");

    const i64 virq = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, kSecondVcpu);
    t.returns(lamina_hc_evtchn_close(static_cast<u64>(virq)), 0, "evtchn_close: a VIRQ's port");
    t.check(status_is(status_of(static_cast<u32>(virq)), static_cast<u32>(virq), LAMINA_EVTCHN_CLOSED, 0, 0, 0, 0),
            "evtchn_close: the VIRQ's port is CLOSED");
    check_bad_ports(t, "evtchn_close", [](u64 port) { return lamina_hc_evtchn_close(port); });
    check_no_port_open(t, "evtchn_close");
}

HYPERCALL_TEST(evtchn_status) {
    Channel c;
    if (!ready(t) || !open_channel(t, &c)) return;
    const u16 self = own_domid();
    i64 result;
    const u32 last = LAMINA_EVTCHN_PORTS - 1;
    const lamina_evtchn_status closed_port = status_of(last, &result);
    t.check(result == 0 && status_is(closed_port, last, LAMINA_EVTCHN_CLOSED, 0, 0, 0, 0),
            "evtchn_status: the last port, closed, reads CLOSED with every field 0");
    const lamina_evtchn_status interdomain = status_of(c.bound, &result);
    t.check(result == 0 && status_is(interdomain, c.bound, LAMINA_EVTCHN_INTERDOMAIN, 0, self, c.offered, 0),
            "evtchn_status: an interdomain port: its peer's domain and port");
    const i64 virq = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, kSecondVcpu);
    t.check(virq > 0 && status_is(status_of(static_cast<u32>(virq)), static_cast<u32>(virq), LAMINA_EVTCHN_VIRQ,
                                  kSecondVcpu, 0, 0, LAMINA_VIRQ_TIMER),
            "evtchn_status: a VIRQ's port: the VIRQ and its vCPU");
    if (virq > 0) closed(static_cast<u32>(virq));

    // The buffer may lie anywhere in RAM: across a page boundary, at an odd address.
    const u64 awkward[] = {gpa_of(spare_page[1]) - sizeof(lamina_evtchn_status) / 2, gpa_of(spare_page[0]) + 1};
    const char* places[] = {"evtchn_status: a buffer across a page boundary works",
                            "evtchn_status: a buffer at an odd address works"};
    for (u32 i = 0; i < 2; ++i) {
        str::fill_bytes(reinterpret_cast<void*>(awkward[i]), 0xee, sizeof(lamina_evtchn_status));
        result = lamina_hc_evtchn_status(c.bound, awkward[i]);
        lamina_evtchn_status copy;
        str::copy_bytes(&copy, reinterpret_cast<const void*>(awkward[i]), sizeof(copy));
        t.check(result == 0 && status_is(copy, c.bound, LAMINA_EVTCHN_INTERDOMAIN, 0, self, c.offered, 0), places[i],
                "{}", lamina_errno_name(result));
    }
    check_bad_buffers(t, "evtchn_status", sizeof(lamina_evtchn_status),
                      [&](u64 gpa) { return lamina_hc_evtchn_status(c.bound, gpa); });
    check_bad_ports(t, "evtchn_status", [](u64 port) { return lamina_hc_evtchn_status(port, gpa_of(spare_page[1])); });
    t.check(close_channel(c), "evtchn_close: both ends of the channel");
    check_no_port_open(t, "evtchn_status");
}

HYPERCALL_TEST(evtchn_unmask) {
    Channel c;
    if (!ready(t) || !open_channel(t, &c)) return;
    if (!t.returns(lamina_hc_evtchn_set_upcall_vector(0, kUpcall), 0, "evtchn_set_upcall_vector: vCPU 0's upcall")) {
        close_channel(c);
        return;
    }
    // A masked port becomes pending without an upcall; unmasking it raises the upcall then.
    set_mask(c.bound);
    u32 taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); }), 0, "evtchn_send: to a masked port");
    t.check(pending(c.bound) && upcall_pending() == 0 && upcalls() == taken,
            "evtchn_send: a masked port is pending, with no upcall", "pending {} upcall_pending {} upcalls {} -> {}",
            pending(c.bound), upcall_pending(), taken, upcalls());
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_unmask(c.bound); }), 0, "evtchn_unmask: the pending port");
    t.check(!masked(c.bound), "evtchn_unmask: clears the port's mask bit");
    t.check(upcall_pending() == 1 && upcalls() == taken + 1, "evtchn_unmask: a pending port raises the upcall",
            "upcall_pending {} upcalls {} -> {}", upcall_pending(), taken, upcalls());
    acknowledge_all();

    // Neither masked nor pending: nothing to raise.
    taken = upcalls();
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_unmask(c.offered); }), 0,
              "evtchn_unmask: a port neither masked nor pending");
    t.check(upcalls() == taken && upcall_pending() == 0, "evtchn_unmask: no upcall for a port that is not pending");
    // Masked, not pending: unmasked, still nothing.
    set_mask(c.offered);
    t.returns(with_interrupts([&] { return lamina_hc_evtchn_unmask(c.offered); }), 0,
              "evtchn_unmask: a masked port that is not pending");
    t.check(!masked(c.offered) && upcalls() == taken && upcall_pending() == 0,
            "evtchn_unmask: the mask bit is cleared, no upcall");
    check_bad_ports(t, "evtchn_unmask", [](u64 port) { return lamina_hc_evtchn_unmask(port); });
    t.check(close_channel(c), "evtchn_close: both ends of the channel");
    lamina_hc_evtchn_set_upcall_vector(0, 0);
    check_no_port_open(t, "evtchn_unmask");
}

HYPERCALL_TEST(evtchn_set_upcall_vector) {
    Channel c;
    if (!ready(t) || !open_channel(t, &c)) return;
    // Each vector in turn gets the next event; 0 stops upcalls, but not the event's bits.
    const u8 vectors[] = {kUpcall, kOtherUpcall, 32, 255};
    for (u8 vector : vectors) {
        char what[96];
        format_to(what, sizeof(what), "evtchn_set_upcall_vector: vector {} on vCPU 0", vector);
        t.returns(lamina_hc_evtchn_set_upcall_vector(0, vector), 0, what);
        const u32 before = upcalls(vector);
        const u32 before_first = upcalls(kUpcall);
        with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); });
        format_to(what, sizeof(what), "evtchn_set_upcall_vector: the next event raises vector {}", vector);
        t.check(upcalls(vector) == before + 1 && (vector == kUpcall || upcalls(kUpcall) == before_first), what);
        acknowledge_all();
    }
    t.returns(lamina_hc_evtchn_set_upcall_vector(0, 0), 0, "evtchn_set_upcall_vector: 0 on vCPU 0");
    const u32 before = upcalls(255);
    with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); });
    t.check(upcalls(255) == before && pending(c.bound) && upcall_pending() == 1,
            "evtchn_set_upcall_vector: with 0 the event sets its bits and raises nothing");
    acknowledge_all();
    t.returns(lamina_hc_evtchn_set_upcall_vector(kSecondVcpu, kUpcall), 0,
              "evtchn_set_upcall_vector: on the second vCPU");
    t.returns(lamina_hc_evtchn_set_upcall_vector(kSecondVcpu, 0), 0, "evtchn_set_upcall_vector: 0 on the second vCPU");

    t.returns(lamina_hc_evtchn_set_upcall_vector(0, 31), kEinval, "evtchn_set_upcall_vector: vector 31 is EINVAL");
    t.returns(lamina_hc_evtchn_set_upcall_vector(0, 1), kEinval, "evtchn_set_upcall_vector: vector 1 is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_set_upcall_vector, 0, 256 + kUpcall), kEinval,
              "evtchn_set_upcall_vector: a vector wider than 8 bits is EINVAL");
    const u64 no_vcpus[] = {kSecondVcpu + 1, LAMINA_MAX_VCPUS, 0xffffffff};
    for (u64 vcpu : no_vcpus) {
        char what[96];
        format_to(what, sizeof(what), "evtchn_set_upcall_vector: vCPU {:#x}, which the domain lacks, is EINVAL", vcpu);
        t.returns(lamina_hc_evtchn_set_upcall_vector(vcpu, kUpcall), kEinval, what);
    }
    t.returns(raw_hypercall(LAMINA_HYPERCALL_evtchn_set_upcall_vector, u64{1} << 32, kUpcall), kEinval,
              "evtchn_set_upcall_vector: a vCPU wider than 32 bits is EINVAL");
    // The refusals changed nothing: vCPU 0 still has no upcall.
    const u32 still = upcalls(kUpcall);
    with_interrupts([&] { return lamina_hc_evtchn_send(c.offered); });
    t.check(upcalls(kUpcall) == still && pending(c.bound), "evtchn_set_upcall_vector: a refusal sets no vector");
    acknowledge_all();
    t.check(close_channel(c), "evtchn_close: both ends of the channel");
    check_no_port_open(t, "evtchn_set_upcall_vector");
}

TEST_CASE(dom0_peer, "a channel to another domain: Dom0's offered port, echoed events") {
    if (!ready(t)) return;
    const u32 offered = dom0_port(t);
    if (!offered) return;
    const char* rounds[] = {"first", "second"};
    for (const char* round : rounds) {
        // The second round binds the same port again: closing this end left Dom0's unbound.
        const i64 bound = lamina_hc_evtchn_bind_interdomain(LAMINA_DOMID_CONTROL, offered);
        char what[112];
        format_to(what, sizeof(what), "evtchn_bind_interdomain: the port Dom0 offered, {} time", round);
        if (!t.check(bound > 0, what, "{}", lamina_errno_name(bound))) break;
        const u32 port = static_cast<u32>(bound);
        t.check(status_is(status_of(port), port, LAMINA_EVTCHN_INTERDOMAIN, 0, LAMINA_DOMID_CONTROL, offered, 0),
                "evtchn_status: INTERDOMAIN to Dom0's port");
        acknowledge_all();  // the bind's own event
        t.returns(lamina_hc_evtchn_send(port), 0, "evtchn_send: to Dom0");
        t.check(becomes_pending(port), "evtchn_send: Dom0 takes the event and its echo arrives here");
        acknowledge_all();
        t.returns(lamina_hc_evtchn_close(port), 0, "evtchn_close: this end of the channel to Dom0");
    }
    check_no_port_open(t, "a channel to Dom0");
}
