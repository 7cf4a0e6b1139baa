#include <catch2/catch.hpp>

#include <hypervisor/event/event_channels.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>

#include "test_support.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace lamina;
using event::EventChannels;

namespace {

constexpr i64 error(lamina_errno e) { return -static_cast<i64>(e); }
constexpr u32 kLastPort = EventChannels::kPorts - 1;
constexpr u8 kVector = 0xf3;

struct Upcalls final : event::UpcallSink {
    std::vector<std::string> calls;
    void upcall(u32 vcpu, u8 vector) override {
        calls.push_back(std::to_string(vcpu) + ":" + std::to_string(vector));
    }
    // The upcalls since the last look, "vcpu:vector" each, so that a failed check shows them.
    std::vector<std::string> take() { return std::exchange(calls, {}); }
};
using Calls = std::vector<std::string>;

struct Domains final : event::EventDomains {
    std::map<u16, EventChannels*> table;
    EventChannels* find(u16 domid) override {
        auto found = table.find(domid);
        return found == table.end() ? nullptr : found->second;
    }
};

// A domain as the event channels see it: its event page, its vCPUs' upcalls, its channels.
struct Domain {
    Domain(Domains& domains, u16 id, u32 vcpus = 2) : events(id, vcpus, domains, upcalls) {
        domains.table[id] = &events;
    }

    static bool bit(const u64* words, u32 n) { return (words[n / 64] >> (n % 64)) & 1; }
    bool pending(u32 port) const { return bit(page.pending, port); }
    bool masked(u32 port) const { return bit(page.mask, port); }
    u64 words(u32 vcpu) const { return page.vcpu[vcpu].pending_words; }
    u8 upcall_pending(u32 vcpu) const { return page.vcpu[vcpu].upcall_pending; }
    void mask(u32 port) { page.mask[port / 64] |= u64{1} << (port % 64); }
    bool nothing_pending() const {
        for (u64 word : page.pending) if (word) return false;
        for (const auto& vcpu : page.vcpu) if (vcpu.pending_words || vcpu.upcall_pending) return false;
        return true;
    }

    // The guest's upcall, as event_channel.h orders it (and dom0/kernel/events.cpp does it):
    // clear upcall_pending, take pending_words, then take each word's unmasked pending bits.
    // The ports it took.
    std::vector<u32> guest_upcall(u32 vcpu) {
        __atomic_store_n(&page.vcpu[vcpu].upcall_pending, 0, __ATOMIC_SEQ_CST);
        u64 taken_words = __atomic_exchange_n(&page.vcpu[vcpu].pending_words, 0, __ATOMIC_SEQ_CST);
        std::vector<u32> ports;
        for (u32 word = 0; word < 64; ++word) {
            if (!((taken_words >> word) & 1)) continue;
            const u64 mask = page.mask[word];
            const u64 taken = __atomic_fetch_and(&page.pending[word], mask, __ATOMIC_SEQ_CST) & ~mask;
            for (u32 bit = 0; bit < 64; ++bit) {
                if ((taken >> bit) & 1) ports.push_back(word * 64 + bit);
            }
        }
        return ports;
    }

    lamina_evtchn_status status(u32 port) const {
        lamina_evtchn_status answer{};
        REQUIRE(events.status(port, &answer) == 0);
        return answer;
    }

    lamina_evtchn_shared page{};
    Upcalls upcalls;
    EventChannels events;
};

struct TwoDomains {
    Domains domains;
    std::unique_ptr<Domain> a = std::make_unique<Domain>(domains, 1);
    std::unique_ptr<Domain> b = std::make_unique<Domain>(domains, 2);

    TwoDomains() {
        REQUIRE(a->events.init(&a->page) == 0);
        REQUIRE(b->events.init(&b->page) == 0);
    }
    // A offers a port to B, B binds it: {A's port, B's port}, with B's bind event taken.
    std::pair<u32, u32> connect() {
        const i64 offered = a->events.alloc_unbound(2);
        REQUIRE(offered > 0);
        const i64 bound = b->events.bind_interdomain(1, static_cast<u32>(offered));
        REQUIRE(bound > 0);
        b->guest_upcall(0);
        b->upcalls.take();
        return {static_cast<u32>(offered), static_cast<u32>(bound)};
    }
};

}  // namespace

TEST_CASE("event channels: before init every hypercall answers -ENOENT and nothing is raised") {
    Domains domains;
    auto a = std::make_unique<Domain>(domains, 0);
    auto b = std::make_unique<Domain>(domains, 1);
    REQUIRE(b->events.init(&b->page) == 0);
    const i64 offered = b->events.alloc_unbound(0);
    REQUIRE(offered > 0);
    const i64 no_page = error(LAMINA_ENOENT);
    lamina_evtchn_status status{};

    CHECK(a->events.alloc_unbound(1) == no_page);
    CHECK(a->events.bind_interdomain(1, static_cast<u32>(offered)) == no_page);
    CHECK(a->events.bind_virq(LAMINA_VIRQ_TIMER, 0, true) == no_page);
    CHECK(a->events.send(1) == no_page);
    CHECK(a->events.close(1) == no_page);
    CHECK(a->events.status(1, &status) == no_page);
    CHECK(a->events.unmask(1) == no_page);
    CHECK(a->events.set_upcall_vector(0, kVector) == no_page);
    CHECK_FALSE(a->events.raise(1));
    CHECK_FALSE(a->events.raise_virq(LAMINA_VIRQ_TIMER, 0));
    CHECK_FALSE(a->events.pending_for(0));
    CHECK(a->upcalls.take().empty());
    CHECK(b->status(static_cast<u32>(offered)).state == LAMINA_EVTCHN_UNBOUND);  // still on offer
}

TEST_CASE("event channels: init registers the page once, clears the hypervisor's half, keeps the mask") {
    Domains domains;
    auto a = std::make_unique<Domain>(domains, 1);
    a->page.pending[3] = ~u64{0};
    a->page.vcpu[1].pending_words = 0x8;
    a->page.vcpu[1].upcall_pending = 1;
    a->mask(5);

    REQUIRE(a->events.init(&a->page) == 0);
    CHECK(a->nothing_pending());
    CHECK(a->masked(5));
    CHECK_FALSE(a->events.pending_for(1));

    lamina_evtchn_shared other{};
    CHECK(a->events.init(&other) == error(LAMINA_EEXIST));
    CHECK(a->events.init(&a->page) == error(LAMINA_EEXIST));
    CHECK_THROWS_AS(EventChannels(3, 0, domains, a->upcalls), AssertionFailure);
    CHECK_THROWS_AS(EventChannels(3, LAMINA_MAX_VCPUS + 1, domains, a->upcalls), AssertionFailure);
}

TEST_CASE("event channels: alloc_unbound hands out the lowest free port, up to -ENOSPC") {
    TwoDomains two;
    EventChannels& a = two.a->events;
    CHECK(a.alloc_unbound(2) == 1);
    CHECK(a.alloc_unbound(LAMINA_DOMID_MAX) == 2);
    CHECK(a.alloc_unbound(1) == 3);  // to itself
    CHECK(a.alloc_unbound(LAMINA_DOMID_MAX + 1) == error(LAMINA_EINVAL));

    const lamina_evtchn_status offered = two.a->status(2);
    CHECK(offered.port == 2);
    CHECK(offered.state == LAMINA_EVTCHN_UNBOUND);
    CHECK(offered.remote_domid == LAMINA_DOMID_MAX);
    CHECK(offered.vcpu == 0);
    CHECK(offered.remote_port == 0);

    for (u32 port = 4; port <= kLastPort; ++port) REQUIRE(a.alloc_unbound(2) == port);
    CHECK(a.alloc_unbound(2) == error(LAMINA_ENOSPC));
    CHECK(a.bind_virq(LAMINA_VIRQ_TIMER, 0, false) == error(LAMINA_ENOSPC));
    CHECK(a.close(100) == 0);
    CHECK(a.alloc_unbound(2) == 100);
}

TEST_CASE("event channels: bind_interdomain refuses ports that are not on offer to the caller") {
    TwoDomains two;
    Domains& domains = two.domains;
    auto c = std::make_unique<Domain>(domains, 3);
    REQUIRE(c->events.init(&c->page) == 0);
    EventChannels& a = two.a->events;
    EventChannels& b = two.b->events;
    const u32 for_c = static_cast<u32>(a.alloc_unbound(3));
    const u32 for_b = static_cast<u32>(a.alloc_unbound(2));

    CHECK(b.bind_interdomain(7, for_b) == error(LAMINA_ESRCH));
    CHECK(b.bind_interdomain(1, 0) == error(LAMINA_EINVAL));
    CHECK(b.bind_interdomain(1, EventChannels::kPorts) == error(LAMINA_EINVAL));
    CHECK(b.bind_interdomain(1, 0xffffffffu) == error(LAMINA_EINVAL));
    CHECK(b.bind_interdomain(1, 50) == error(LAMINA_EINVAL));      // closed
    CHECK(b.bind_interdomain(1, for_c) == error(LAMINA_EINVAL));   // offered to domain 3
    CHECK(b.bind_interdomain(2, for_b) == error(LAMINA_EINVAL));   // not B's own port
    const i64 bound = b.bind_interdomain(1, for_b);
    CHECK(bound == 1);
    CHECK(b.bind_interdomain(1, for_b) == error(LAMINA_EINVAL));   // connected already
    CHECK(c->events.bind_interdomain(1, for_b) == error(LAMINA_EINVAL));
    const i64 virq = a.bind_virq(LAMINA_VIRQ_TIMER, 0, false);
    CHECK(b.bind_interdomain(1, static_cast<u32>(virq)) == error(LAMINA_EINVAL));

    // With no free port of its own the binder gets -ENOSPC, and the offer stays open.
    for (u32 port = 1; port <= kLastPort; ++port) REQUIRE(c->events.alloc_unbound(3) == port);
    CHECK(c->events.bind_interdomain(1, for_c) == error(LAMINA_ENOSPC));
    CHECK(two.a->status(for_c).state == LAMINA_EVTCHN_UNBOUND);
}

TEST_CASE("event channels: a channel connects both ways and send notifies the other end") {
    TwoDomains two;
    Domain& a = *two.a;
    Domain& b = *two.b;
    REQUIRE(a.events.set_upcall_vector(0, kVector) == 0);
    REQUIRE(b.events.alloc_unbound(7) == 1);  // so that the two ends' numbers differ
    const u32 port_a = static_cast<u32>(a.events.alloc_unbound(2));
    REQUIRE(port_a == 1);
    const i64 bound = b.events.bind_interdomain(1, port_a);
    REQUIRE(bound == 2);
    const u32 port_b = 2;

    const lamina_evtchn_status at_a = a.status(port_a);
    CHECK(at_a.state == LAMINA_EVTCHN_INTERDOMAIN);
    CHECK(at_a.remote_domid == 2);
    CHECK(at_a.remote_port == port_b);
    const lamina_evtchn_status at_b = b.status(port_b);
    CHECK(at_b.state == LAMINA_EVTCHN_INTERDOMAIN);
    CHECK(at_b.remote_domid == 1);
    CHECK(at_b.remote_port == port_a);
    CHECK(at_b.vcpu == 0);
    CHECK(at_b.pad0 == 0);
    CHECK(at_b.virq == 0);

    // Binding leaves the binder's port pending (the sends it missed), with upcalls still off.
    CHECK(b.pending(port_b));
    CHECK_FALSE(b.pending(1));
    CHECK(b.words(0) == 1);
    CHECK(b.upcall_pending(0) == 1);
    CHECK(b.upcalls.take() == Calls{"0:0"});
    CHECK(b.guest_upcall(0) == std::vector<u32>{port_b});
    CHECK(b.nothing_pending());
    CHECK(a.nothing_pending());

    // B to A: A's port, its word, its vCPU's upcall at A's vector.
    CHECK(b.events.send(port_b) == 0);
    CHECK(a.pending(port_a));
    CHECK(a.words(0) == 1);
    CHECK(a.upcall_pending(0) == 1);
    CHECK(a.words(1) == 0);
    CHECK(a.upcall_pending(1) == 0);
    CHECK(a.upcalls.take() == Calls{"0:243"});
    CHECK(b.nothing_pending());
    CHECK(a.guest_upcall(0) == std::vector<u32>{port_a});

    // A to B.
    CHECK(a.events.send(port_a) == 0);
    CHECK(b.pending(port_b));
    CHECK(b.upcall_pending(0) == 1);
    CHECK(b.upcalls.take() == Calls{"0:0"});
    CHECK(a.nothing_pending());
    CHECK(a.upcalls.take().empty());
}

TEST_CASE("event channels: events coalesce until the guest takes them") {
    TwoDomains two;
    Domain& a = *two.a;
    Domain& b = *two.b;
    const auto [port_a, port_b] = two.connect();
    const auto [port_a2, port_b2] = two.connect();
    REQUIRE(port_a2 / 64 == port_a / 64);

    CHECK(b.events.send(port_b) == 0);
    CHECK(a.upcalls.take() == Calls{"0:0"});
    CHECK(b.events.send(port_b) == 0);  // pending already: no new upcall
    CHECK(a.upcalls.take().empty());
    // Another port of the same word: its bit is set, but the word was not taken yet, so the
    // upcall already raised covers it.
    CHECK(b.events.send(port_b2) == 0);
    CHECK(a.pending(port_a2));
    CHECK(a.upcalls.take().empty());
    CHECK(a.guest_upcall(0) == std::vector<u32>{port_a, port_a2});
    CHECK(a.nothing_pending());

    // Taken: the next send raises again.
    CHECK(b.events.send(port_b) == 0);
    CHECK(a.upcalls.take() == Calls{"0:0"});
    // The guest cleared upcall_pending but has not taken the words yet: no second upcall.
    __atomic_store_n(&a.page.vcpu[0].upcall_pending, 0, __ATOMIC_SEQ_CST);
    CHECK(b.events.send(port_b2) == 0);
    CHECK(a.upcalls.take().empty());
    CHECK(a.guest_upcall(0) == std::vector<u32>{port_a, port_a2});
}

TEST_CASE("event channels: closing one end leaves the other unbound, offered to the closer") {
    TwoDomains two;
    Domain& a = *two.a;
    Domain& b = *two.b;
    auto [port_a, port_b] = two.connect();

    SECTION("the offering end closes") {
        CHECK(b.events.send(port_b) == 0);
        CHECK(a.pending(port_a));
        CHECK(a.events.send(port_a) == 0);
        CHECK(b.pending(port_b));
        CHECK(a.events.close(port_a) == 0);

        CHECK(a.status(port_a).state == LAMINA_EVTCHN_CLOSED);
        CHECK_FALSE(a.pending(port_a));  // a port used again starts without a stale event
        CHECK(a.guest_upcall(0).empty());
        const lamina_evtchn_status left = b.status(port_b);
        CHECK(left.state == LAMINA_EVTCHN_UNBOUND);
        CHECK(left.remote_domid == 1);
        CHECK(left.remote_port == 0);
        CHECK(b.guest_upcall(0) == std::vector<u32>{port_b});  // the last event still reaches B

        CHECK(a.events.send(port_a) == error(LAMINA_EINVAL));
        CHECK(a.events.close(port_a) == error(LAMINA_EINVAL));
        CHECK(b.events.send(port_b) == 0);  // nobody listens: dropped
        CHECK(a.nothing_pending());
        CHECK(b.nothing_pending());

        // A binds B's port again: the channel works as before.
        const i64 again = a.events.bind_interdomain(2, port_b);
        CHECK(again == port_a);
        CHECK(b.status(port_b).remote_port == port_a);
        a.guest_upcall(0);
        CHECK(b.events.send(port_b) == 0);
        CHECK(a.pending(port_a));
    }
    SECTION("the binding end closes") {
        CHECK(b.events.close(port_b) == 0);
        CHECK(b.status(port_b).state == LAMINA_EVTCHN_CLOSED);
        const lamina_evtchn_status left = a.status(port_a);
        CHECK(left.state == LAMINA_EVTCHN_UNBOUND);
        CHECK(left.remote_domid == 2);
        CHECK(a.events.send(port_a) == 0);
        CHECK(b.nothing_pending());
        CHECK(a.events.close(port_a) == 0);
        CHECK(a.status(port_a).state == LAMINA_EVTCHN_CLOSED);
    }
    SECTION("ports out of range") {
        CHECK(a.events.close(0) == error(LAMINA_EINVAL));
        CHECK(a.events.close(EventChannels::kPorts) == error(LAMINA_EINVAL));
        CHECK(a.events.send(0) == error(LAMINA_EINVAL));
        CHECK(a.events.send(EventChannels::kPorts) == error(LAMINA_EINVAL));
    }
}

TEST_CASE("event channels: a domain may connect a channel to itself") {
    Domains domains;
    auto a = std::make_unique<Domain>(domains, 4);
    REQUIRE(a->events.init(&a->page) == 0);
    const i64 offered = a->events.alloc_unbound(4);
    const i64 bound = a->events.bind_interdomain(4, static_cast<u32>(offered));
    REQUIRE(bound == offered + 1);
    a->guest_upcall(0);

    CHECK(a->events.send(static_cast<u32>(bound)) == 0);
    CHECK(a->guest_upcall(0) == std::vector<u32>{static_cast<u32>(offered)});
    CHECK(a->events.send(static_cast<u32>(offered)) == 0);
    CHECK(a->guest_upcall(0) == std::vector<u32>{static_cast<u32>(bound)});

    CHECK(a->events.close(static_cast<u32>(offered)) == 0);
    CHECK(a->status(static_cast<u32>(bound)).state == LAMINA_EVTCHN_UNBOUND);
    CHECK(a->status(static_cast<u32>(bound)).remote_domid == 4);
}

TEST_CASE("event channels: VIRQs, TIMER per vCPU and the global ones for the control domain") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 5, 3);
    EventChannels& events = d->events;
    REQUIRE(events.init(&d->page) == 0);

    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 0, false) == 1);
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 2, false) == 2);
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 0, false) == error(LAMINA_EEXIST));
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 3, false) == error(LAMINA_EINVAL));
    CHECK(events.bind_virq(LAMINA_VIRQ_DOMAIN_DIED + 1, 0, true) == error(LAMINA_EINVAL));
    CHECK(events.bind_virq(LAMINA_VIRQ_CONSOLE, 0, false) == error(LAMINA_EPERM));
    CHECK(events.bind_virq(LAMINA_VIRQ_DOMAIN_DIED, 1, false) == error(LAMINA_EPERM));
    CHECK(events.bind_virq(LAMINA_VIRQ_CONSOLE, 3, true) == error(LAMINA_EINVAL));
    CHECK(events.bind_virq(LAMINA_VIRQ_CONSOLE, 0, true) == 3);
    CHECK(events.bind_virq(LAMINA_VIRQ_CONSOLE, 1, true) == error(LAMINA_EEXIST));  // one per domain
    CHECK(events.bind_virq(LAMINA_VIRQ_DOMAIN_DIED, 1, true) == 4);

    const lamina_evtchn_status timer = d->status(2);
    CHECK(timer.state == LAMINA_EVTCHN_VIRQ);
    CHECK(timer.virq == LAMINA_VIRQ_TIMER);
    CHECK(timer.vcpu == 2);
    CHECK(timer.remote_domid == 0);
    CHECK(d->status(4).virq == LAMINA_VIRQ_DOMAIN_DIED);
    CHECK(d->status(4).vcpu == 1);
    CHECK(events.send(1) == error(LAMINA_EINVAL));

    REQUIRE(events.set_upcall_vector(2, 0x40) == 0);
    CHECK(events.raise_virq(LAMINA_VIRQ_TIMER, 2));
    CHECK(d->pending(2));
    CHECK_FALSE(d->pending(1));
    CHECK(d->words(2) == 1);
    CHECK(d->upcall_pending(2) == 1);
    CHECK(d->words(0) == 0);
    CHECK(d->upcall_pending(0) == 0);
    CHECK(d->upcalls.take() == Calls{"2:64"});
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_TIMER, 1));  // not bound on vCPU 1
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_TIMER, 3));
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_DOMAIN_DIED + 1, 0));

    // A global VIRQ goes to the vCPU it was bound for, whichever vCPU raises it.
    CHECK(events.raise_virq(LAMINA_VIRQ_DOMAIN_DIED, 0));
    CHECK(d->pending(4));
    CHECK(d->upcalls.take() == Calls{"1:0"});
    CHECK(events.raise_virq(LAMINA_VIRQ_CONSOLE, 200));
    CHECK(d->upcalls.take() == Calls{"0:0"});
    CHECK(d->words(0) == 1);
    CHECK(d->words(1) == 1);
    // The ports share word 0, and a guest's upcall takes what its vCPU's words name.
    CHECK(d->guest_upcall(0) == std::vector<u32>{2, 3, 4});
    d->guest_upcall(1);
    d->guest_upcall(2);

    // Closed, the VIRQ raises nothing, and may be bound again.
    CHECK(events.close(2) == 0);
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_TIMER, 2));
    CHECK(d->nothing_pending());
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 2, false) == 2);
    CHECK(events.raise_virq(LAMINA_VIRQ_TIMER, 2));
    CHECK(events.close(3) == 0);
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_CONSOLE, 0));
    CHECK(events.bind_virq(LAMINA_VIRQ_CONSOLE, 2, true) == 3);
}

TEST_CASE("event channels: VIRQs and upcall vectors name only the vCPUs the domain has") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 5, 1);
    EventChannels& events = d->events;
    REQUIRE(events.init(&d->page) == 0);
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 1, false) == error(LAMINA_EINVAL));
    CHECK(events.set_upcall_vector(1, kVector) == error(LAMINA_EINVAL));

    events.set_vcpu_count(2);  // domain_set_max_vcpus
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 1, false) == 1);
    CHECK(events.set_upcall_vector(1, kVector) == 0);
    CHECK(events.bind_virq(LAMINA_VIRQ_TIMER, 2, false) == error(LAMINA_EINVAL));
    CHECK(events.set_upcall_vector(2, kVector) == error(LAMINA_EINVAL));
    CHECK(events.raise_virq(LAMINA_VIRQ_TIMER, 1));
    CHECK(d->upcalls.take() == Calls{"1:243"});
    CHECK_FALSE(events.raise_virq(LAMINA_VIRQ_TIMER, 2));
    CHECK(events.pending_for(1));
    CHECK_FALSE(events.pending_for(2));
}

TEST_CASE("event channels: a masked port raises no upcall until unmask") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 0);
    REQUIRE(d->events.init(&d->page) == 0);
    REQUIRE(d->events.set_upcall_vector(1, kVector) == 0);
    const u32 port = static_cast<u32>(d->events.bind_virq(LAMINA_VIRQ_TIMER, 1, false));
    d->mask(port);

    CHECK(d->events.raise_virq(LAMINA_VIRQ_TIMER, 1));
    CHECK(d->pending(port));
    CHECK(d->words(1) == 0);
    CHECK(d->upcall_pending(1) == 0);
    CHECK(d->upcalls.take().empty());
    CHECK(d->guest_upcall(1).empty());  // the guest leaves masked bits alone
    CHECK(d->pending(port));

    CHECK(d->events.unmask(port) == 0);
    CHECK_FALSE(d->masked(port));
    CHECK(d->words(1) == 1);
    CHECK(d->upcall_pending(1) == 1);
    CHECK(d->upcalls.take() == Calls{"1:243"});
    CHECK(d->guest_upcall(1) == std::vector<u32>{port});

    // Unmasking a port that is not pending, or not masked, raises nothing.
    CHECK(d->events.unmask(port) == 0);
    d->mask(port);
    CHECK(d->events.unmask(port) == 0);
    CHECK(d->upcalls.take().empty());
    CHECK(d->nothing_pending());
    CHECK(d->events.unmask(kLastPort) == 0);  // any port in range, as Xen
    CHECK(d->events.unmask(0) == error(LAMINA_EINVAL));
    CHECK(d->events.unmask(EventChannels::kPorts) == error(LAMINA_EINVAL));
}

TEST_CASE("event channels: set_upcall_vector takes 32 to 255 or 0, per vCPU") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 0);
    REQUIRE(d->events.init(&d->page) == 0);
    const u32 port = static_cast<u32>(d->events.bind_virq(LAMINA_VIRQ_TIMER, 0, false));

    CHECK(d->events.set_upcall_vector(0, 31) == error(LAMINA_EINVAL));
    CHECK(d->events.set_upcall_vector(0, 1) == error(LAMINA_EINVAL));
    CHECK(d->events.set_upcall_vector(2, kVector) == error(LAMINA_EINVAL));
    CHECK(d->events.set_upcall_vector(1, 32) == 0);
    CHECK(d->events.set_upcall_vector(0, 255) == 0);
    d->events.raise(port);
    CHECK(d->upcalls.take() == Calls{"0:255"});
    d->guest_upcall(0);
    CHECK(d->events.set_upcall_vector(0, 0) == 0);
    d->events.raise(port);
    CHECK(d->upcalls.take() == Calls{"0:0"});  // the vCPU still wakes, without an interrupt

    // The event came while upcalls were off: setting a vector raises it now, since the guest
    // would clear upcall_pending only in an upcall.
    CHECK(d->events.set_upcall_vector(0, kVector) == 0);
    CHECK(d->upcalls.take() == Calls{"0:243"});
    CHECK(d->guest_upcall(0) == std::vector<u32>{port});
    CHECK(d->events.set_upcall_vector(0, kVector) == 0);
    CHECK(d->upcalls.take().empty());
}

TEST_CASE("event channels: status of closed ports and ports out of range") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 0);
    REQUIRE(d->events.init(&d->page) == 0);
    lamina_evtchn_status status;
    std::memset(&status, 0xa5, sizeof status);
    CHECK(d->events.status(0, &status) == error(LAMINA_EINVAL));
    CHECK(d->events.status(EventChannels::kPorts, &status) == error(LAMINA_EINVAL));
    CHECK(status.port == 0xa5a5a5a5u);  // untouched on failure
    REQUIRE(d->events.status(kLastPort, &status) == 0);
    CHECK(status.port == kLastPort);
    CHECK(status.state == LAMINA_EVTCHN_CLOSED);
    CHECK(status.vcpu == 0);
    CHECK(status.remote_domid == 0);
    CHECK(status.pad0 == 0);
    CHECK(status.remote_port == 0);
    CHECK(status.virq == 0);
}

TEST_CASE("event channels: pending_for follows the vCPU's upcall_pending") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 0);
    REQUIRE(d->events.init(&d->page) == 0);
    d->events.bind_virq(LAMINA_VIRQ_TIMER, 1, false);
    CHECK_FALSE(d->events.pending_for(1));
    d->events.raise_virq(LAMINA_VIRQ_TIMER, 1);
    CHECK(d->events.pending_for(1));
    CHECK_FALSE(d->events.pending_for(0));
    CHECK_FALSE(d->events.pending_for(2));
    CHECK_FALSE(d->events.pending_for(~0u));
    d->guest_upcall(1);
    CHECK_FALSE(d->events.pending_for(1));
}

TEST_CASE("event channels: a raise on a port that takes no events changes nothing") {
    TwoDomains two;
    Domain& a = *two.a;
    const u32 unbound = static_cast<u32>(a.events.alloc_unbound(2));
    CHECK_FALSE(a.events.raise(unbound));
    CHECK_FALSE(a.events.raise(unbound + 1));  // closed
    CHECK_FALSE(a.events.raise(0));
    CHECK_FALSE(a.events.raise(EventChannels::kPorts));
    CHECK_FALSE(a.events.raise(~0u));
    CHECK(a.nothing_pending());
    CHECK(a.upcalls.take().empty());
}

TEST_CASE("event channels: close_all closes every port, unbinds the other ends, forgets the page") {
    TwoDomains two;
    Domain& a = *two.a;
    Domain& b = *two.b;
    const auto [port_a, port_b] = two.connect();  // offered by A
    const u32 port_b_offer = static_cast<u32>(b.events.alloc_unbound(1));
    REQUIRE(a.events.bind_interdomain(2, port_b_offer) > 0);  // offered by B
    const i64 timer = a.events.bind_virq(LAMINA_VIRQ_TIMER, 0, false);
    REQUIRE(a.events.alloc_unbound(2) > 0);
    REQUIRE(a.events.set_upcall_vector(0, kVector) == 0);

    a.events.close_all();
    CHECK(b.status(port_b).state == LAMINA_EVTCHN_UNBOUND);
    CHECK(b.status(port_b_offer).state == LAMINA_EVTCHN_UNBOUND);
    CHECK(b.status(port_b_offer).remote_domid == 1);
    // From here on, anything the hypervisor wrote to A's page would show.
    a.page = {};
    a.upcalls.take();
    CHECK(b.events.send(port_b) == 0);
    CHECK(b.events.send(port_b_offer) == 0);
    CHECK_FALSE(a.events.raise_virq(LAMINA_VIRQ_TIMER, 0));
    CHECK_FALSE(a.events.raise(static_cast<u32>(timer)));
    CHECK(a.nothing_pending());
    CHECK(a.upcalls.take().empty());
    CHECK(a.events.alloc_unbound(2) == error(LAMINA_ENOENT));
    CHECK(a.events.close(port_a) == error(LAMINA_ENOENT));
    CHECK(b.events.bind_interdomain(1, port_a) == error(LAMINA_EINVAL));

    // As before init: a page may be registered again, and every port is free.
    lamina_evtchn_status status{};
    REQUIRE(a.events.init(&a.page) == 0);
    for (u32 port = 1; port <= kLastPort; ++port) {
        REQUIRE(a.events.status(port, &status) == 0);
        REQUIRE(status.state == LAMINA_EVTCHN_CLOSED);
    }
    CHECK(a.events.bind_virq(LAMINA_VIRQ_TIMER, 0, false) == 1);
    CHECK(a.events.raise_virq(LAMINA_VIRQ_TIMER, 0));
    CHECK(a.upcalls.take() == Calls{"0:0"});  // the vector went with the old page
}

TEST_CASE("event channels: a raise racing close never leaves the closed port pending") {
    Domains domains;
    auto d = std::make_unique<Domain>(domains, 0);
    REQUIRE(d->events.init(&d->page) == 0);
    std::atomic<bool> running{false};
    std::atomic<bool> done{false};
    std::thread raiser([&] {
        running = true;
        while (!done.load()) d->events.raise_virq(LAMINA_VIRQ_TIMER, 0);
    });
    while (!running.load()) std::this_thread::yield();
    // No REQUIRE while the raiser runs: it would leave the thread unjoined.
    int failed_calls = 0;
    int stale = 0;
    for (int round = 0; round < 500000 && !failed_calls; ++round) {
        if (d->events.bind_virq(LAMINA_VIRQ_TIMER, 0, false) != 1 || d->events.close(1) != 0) ++failed_calls;
        if (d->pending(1)) ++stale;
        d->guest_upcall(0);
    }
    done = true;
    raiser.join();
    CHECK(failed_calls == 0);
    CHECK(stale == 0);
}

TEST_CASE("event channels: both ends of many channels closed at once, from two threads") {
    // Each close takes both domains' locks, from opposite ends: a wrong lock order deadlocks here.
    TwoDomains two;
    constexpr u32 kChannels = 4000;
    for (u32 i = 0; i < kChannels; ++i) two.connect();
    std::atomic<u32> failures{0};  // Catch2's checks are for the test's own thread
    std::atomic<u32> ready{0};
    // A from the first port up, B from the last down: half the closes meet a connected channel.
    auto close_all_of = [&](EventChannels& events, bool downwards) {
        ready.fetch_add(1);
        while (ready.load() < 2) std::this_thread::yield();  // both run at once
        for (u32 i = 1; i <= kChannels; ++i) {
            if (events.close(downwards ? kChannels + 1 - i : i) != 0) failures.fetch_add(1);
        }
    };
    std::thread closer_a(close_all_of, std::ref(two.a->events), false);
    std::thread closer_b(close_all_of, std::ref(two.b->events), true);
    closer_a.join();
    closer_b.join();
    CHECK(failures.load() == 0);
    for (u32 port = 1; port <= kChannels; ++port) {
        REQUIRE(two.a->status(port).state == LAMINA_EVTCHN_CLOSED);
        REQUIRE(two.b->status(port).state == LAMINA_EVTCHN_CLOSED);
    }
}
