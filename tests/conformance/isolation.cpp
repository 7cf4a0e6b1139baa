// Security tests in the manner of Xen's XSA tests: an unprivileged domain tries to reach what is
// not its own -- other memory through hypercall buffers, frames it was not granted, another
// domain's event channels, the host's limits -- and must get errors each time. That the others
// are unaffected Dom0 checks afterwards (every page and port back, the read-only page it granted
// unchanged); that Dom0 still serves this domain's console shows it keeps running meanwhile.
#include <tests/conformance/framework/conformance.h>

CONFORMANCE_KERNEL("isolation", Security);

using namespace conformance;

namespace {

constexpr u64 kNoDomain = 0x7fef;  // below LAMINA_DOMID_MAX, never created by the suite

alignas(4096) lamina_evtchn_shared event_page;
alignas(4096) u8 own_page[4096];

// Frames above everything this domain has, for mappings.
u64 free_gfn(u64 index) { return memory_end() / 4096 + 16 + index; }

bool events_ready(Test& t) {
    static bool ready = false;
    if (!ready) ready = t.returns(lamina_hc_evtchn_init(gpa_of(&event_page)), 0, "evtchn_init on a page of its own");
    return ready;
}

}  // namespace

TEST_CASE(other_memory, "buffers outside the domain's RAM never reach other memory") {
    // Where a host keeps its devices and where Dom0's RAM lies 1:1: none of it is this domain's.
    const u64 elsewhere[] = {memory_end(), memory_end() + 0x1000000, 0x80000000, 0xb0000000, 0xfec00000,
                             0xfed00000,   0xfee00000,               0x100000000, 0xfffff000};
    lamina_evtchn_status status;
    for (u64 at : elsewhere) {
        char what[96];
        format_to(what, sizeof(what), "evtchn_status writing at {:#x} is EFAULT", at);
        t.returns(lamina_hc_evtchn_status(1, at), kEfault, what);
        format_to(what, sizeof(what), "vcpu_up reading a context at {:#x} is EFAULT", at);
        t.returns(lamina_hc_vcpu_up(1, at), kEfault, what);
    }
    t.check(lamina_hc_evtchn_status(1, gpa_of(&status)) != kEfault, "the same call with a buffer of its own is not EFAULT");
}

TEST_CASE(foreign_frames, "no frame of another domain can be mapped without its grant") {
    const u64 granter = option("granter", LAMINA_DOMID_CONTROL);
    const u64 rw = option("grant_rw", ~u64{0}), ro = option("grant_ro", ~u64{0});
    u32 refused = 0, mapped = 0;
    for (u64 ref = 0; ref < LAMINA_SHARED_PAGE_GRANTS; ++ref) {
        if (ref == rw || ref == ro) continue;
        const i64 result = lamina_hc_shared_page_map(granter, ref, free_gfn(0));
        if (result == kEnoent) ++refused;
        if (result == 0) {
            ++mapped;
            lamina_hc_shared_page_unmap(free_gfn(0));
        }
    }
    t.check(mapped == 0 && refused == LAMINA_SHARED_PAGE_GRANTS - (rw != ~u64{0}) - (ro != ~u64{0}),
            "every reference Dom0 did not grant this domain is ENOENT", "{} mapped, {} refused", mapped, refused);
    t.returns(lamina_hc_shared_page_map(kNoDomain, 0, free_gfn(0)), kEsrch, "a domain that does not exist is ESRCH");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_domain_map_frames, LAMINA_DOMID_CONTROL, 0x1000, 1, free_gfn(0)), kEperm,
              "domain_map_frames of Dom0's frames is EPERM");
    if (rw == ~u64{0}) {
        t.skip("Dom0 offered no grant: the granted-to-someone-else case needs one");
        return;
    }
    // A grant exists, but for this domain only from the granter it names.
    t.returns(lamina_hc_shared_page_map(kNoDomain, rw, free_gfn(0)), kEsrch,
              "a granted reference named with the wrong domain is refused");
    t.returns(lamina_hc_shared_page_map(granter, rw, 0x100), kEinval, "a grant cannot be mapped over the domain's RAM");
}

TEST_CASE(foreign_events, "another domain's event channels cannot be bound or signalled") {
    if (!events_ready(t)) return;
    u32 bound = 0;
    for (u32 port = 1; port < 256; ++port) {
        const i64 result = lamina_hc_evtchn_bind_interdomain(LAMINA_DOMID_CONTROL, port);
        if (result >= 0) {
            ++bound;
            t.note("Dom0's port {} was offered to this domain (bound as {})", port, result);
            lamina_hc_evtchn_close(static_cast<u32>(result));
        }
    }
    t.check(bound == 0, "no port of Dom0's binds unless Dom0 offered it to this domain", "{} bound", bound);
    t.returns(lamina_hc_evtchn_bind_interdomain(kNoDomain, 1), kEsrch, "binding a domain that does not exist is ESRCH");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_CONSOLE, 0), kEperm, "the console's VIRQ is Dom0's (EPERM)");
    t.returns(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_DOMAIN_DIED, 0), kEperm, "DOMAIN_DIED is Dom0's (EPERM)");
    u32 wrong = 0;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; port += 97) {
        if (lamina_hc_evtchn_send(port) != kEinval || lamina_hc_evtchn_close(port) != kEinval) ++wrong;
    }
    t.check(wrong == 0, "sending on or closing ports this domain never opened is EINVAL", "{} were not", wrong);
}

TEST_CASE(exhaustion, "using up a domain's ports, grants and mappings hurts only itself") {
    if (!events_ready(t)) return;
    // Ports: all of them, then ENOSPC; closing them gives them back.
    u32 ports = 0;
    i64 result;
    while ((result = lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_CONTROL)) >= 0) ++ports;
    t.returns(result, kEnospc, "allocating ports ends in ENOSPC");
    t.check(ports >= LAMINA_EVTCHN_PORTS - 8, "nearly every port could be allocated", "{}", ports);
    u32 closed = 0;
    lamina_evtchn_status status;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; ++port) {
        if (lamina_hc_evtchn_status(port, gpa_of(&status)) == 0 && status.state == LAMINA_EVTCHN_UNBOUND &&
            lamina_hc_evtchn_close(port) == 0)
            ++closed;
    }
    t.check(closed == ports, "every allocated port closes", "{} of {}", closed, ports);
    result = lamina_hc_evtchn_alloc_unbound(LAMINA_DOMID_CONTROL);
    t.check(result > 0 && lamina_hc_evtchn_close(static_cast<u32>(result)) == 0, "a port can be allocated again");

    // Grants: the table's size, then ENOSPC.
    u32 grants = 0;
    while ((result = lamina_hc_shared_page_grant(gpa_of(own_page) / 4096, LAMINA_DOMID_CONTROL, 0)) >= 0) ++grants;
    t.returns(result, kEnospc, "granting ends in ENOSPC");
    t.returns(grants, LAMINA_SHARED_PAGE_GRANTS, "a domain has LAMINA_SHARED_PAGE_GRANTS grants");
    u32 revoked = 0;
    for (u32 ref = 0; ref < LAMINA_SHARED_PAGE_GRANTS; ++ref) revoked += lamina_hc_shared_page_revoke(ref) == 0;
    t.returns(revoked, grants, "every grant is revoked");

    // Mappings of one granted page at many frames, until the host says no.
    const u64 rw = option("grant_rw", ~u64{0});
    if (rw == ~u64{0}) {
        t.skip("Dom0 offered no grant: the mapping limit needs one");
        return;
    }
    const u64 granter = option("granter", LAMINA_DOMID_CONTROL);
    u32 maps = 0;
    while (maps < 4096 && (result = lamina_hc_shared_page_map(granter, rw, free_gfn(maps))) == 0) ++maps;
    t.returns(result, kEnospc, "mapping one grant again and again ends in ENOSPC");
    t.note("{} mappings before ENOSPC", maps);
    u32 unmapped = 0;
    for (u32 i = 0; i < maps; ++i) unmapped += lamina_hc_shared_page_unmap(free_gfn(i)) == 0;
    t.returns(unmapped, maps, "every mapping is removed");
    t.returns(lamina_hc_vcpu_set_timer(~u64{0}), kEinval, "a timer that would overflow the clock is EINVAL");
}
