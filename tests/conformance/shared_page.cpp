// Shared pages (shared_page.h) as an unprivileged domain uses them. Dom0 offers each test domain
// a writable and a read-only page (options granter, grant_rw, grant_ro); this kernel maps both
// outside its RAM, finds Dom0's patterns there, writes the writable one through two mappings at
// once, and unmaps; it grants its own pages to Dom0 and revokes them, and asks Dom0 (the peer,
// ask_peer) to map its grants: Dom0 reads them, and while it has one mapped revoke is EBUSY. Every
// refusal the table implies: references not granted to it or out of range, domains that do not
// exist, frames that are RAM or mapped already or not mapped, frames that are not its RAM to
// grant, grants to itself, unknown flags, values wider than their types; a mapped frame is no
// hypercall buffer. Nothing is written through the read-only mapping (that would end the domain);
// Dom0 checks afterwards that its page is unchanged and that both grants come back.
#include <tests/conformance/framework/conformance.h>

#include <lamina/string.h>

CONFORMANCE_KERNEL("shared-page", Functional);

using namespace conformance;

namespace {

constexpr u16 kNoDomain = LAMINA_DOMID_MAX;  // never created while the suite runs
constexpr u8 kWritten = 0x3c;                // what this kernel writes into Dom0's writable page
constexpr u8 kOwnPatterns[] = {0xc3, 0x96};  // what its own pages hold when Dom0 maps them

alignas(4096) u8 own_pages[2][4096];

u64 gfn_of(const void* p) { return gpa_of(p) / 4096; }
// Frames above everything the domain has: for mappings.
u64 free_gfn(u64 index) { return memory_end() / 4096 + 16 + index; }
volatile u8* frame(u64 gfn) { return reinterpret_cast<volatile u8*>(gfn * 4096); }

// What Dom0 offered this domain: its grants' references.
struct Offer {
    u16 granter;
    u32 writable, read_only;
};
bool offer(Test& t, Offer* out) {
    const u64 granter = option("granter", ~u64{0});
    const u64 writable = option("grant_rw", ~u64{0}), read_only = option("grant_ro", ~u64{0});
    if (granter > LAMINA_DOMID_MAX || writable >= LAMINA_SHARED_PAGE_GRANTS || read_only >= LAMINA_SHARED_PAGE_GRANTS) {
        t.skip("no grants offered (granter=, grant_rw=, grant_ro=): run by Dom0's conformance command");
        return false;
    }
    *out = {static_cast<u16>(granter), static_cast<u32>(writable), static_cast<u32>(read_only)};
    return true;
}

// Whether every byte of the page at `gfn` is `value`.
bool holds(u64 gfn, u8 value) {
    const volatile u8* p = frame(gfn);
    for (u32 i = 0; i < 4096; ++i) {
        if (p[i] != value) return false;
    }
    return true;
}

// The end of every case: no grant of this domain's is left (revoke finds none in use).
void check_no_grant_left(Test& t, const char* call) {
    u32 left = 0;
    for (u32 ref = 0; ref < LAMINA_SHARED_PAGE_GRANTS; ++ref) left += lamina_hc_shared_page_revoke(ref) == 0;
    char what[96];
    format_to(what, sizeof(what), "{}: afterwards no grant of this domain's is left", call);
    t.check(left == 0, what, "{} were", left);
}

// The end of every case that maps: nothing is mapped at the frames it used.
void check_nothing_mapped(Test& t, const char* call, u32 frames) {
    u32 mapped = 0;
    for (u32 i = 0; i < frames; ++i) mapped += lamina_hc_shared_page_unmap(free_gfn(i)) == 0;
    char what[96];
    format_to(what, sizeof(what), "{}: afterwards nothing is mapped (unmap is EINVAL)", call);
    t.check(mapped == 0, what, "{} mappings were left", mapped);
}

// Asks Dom0 to `request` ("map <ref>", "unmap"): whether its reply was `expected`. An old Dom0
// that does not answer: SKIP, and false in `answered`.
bool peer_replies(Test& t, const char* request, const char* expected, const char* what, bool* answered) {
    char reply[32];
    *answered = ask_peer(request, reply, sizeof(reply)) >= 0;
    if (!*answered) {
        t.skip("Dom0 did not answer \"{}\": it is no peer (run by an older Dom0?)", request);
        return false;
    }
    return t.check(str::equal(reply, expected), what, "Dom0 replied \"{}\"", reply);
}

}  // namespace

HYPERCALL_TEST(shared_page_grant) {
    const u64 own = gfn_of(own_pages[0]);
    const i64 writable = lamina_hc_shared_page_grant(own, LAMINA_DOMID_CONTROL, 0);
    const i64 read_only = lamina_hc_shared_page_grant(own, LAMINA_DOMID_CONTROL, LAMINA_SHARE_READONLY);
    t.check(writable >= 0 && writable < LAMINA_SHARED_PAGE_GRANTS && read_only >= 0 &&
                read_only < LAMINA_SHARED_PAGE_GRANTS && writable != read_only,
            "shared_page_grant: a RAM frame to Dom0, writable and read-only: two references", "{}, {}", writable,
            read_only);
    t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(writable)), 0,
              "shared_page_revoke: the writable grant Dom0 never mapped");
    t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(read_only)), 0,
              "shared_page_revoke: the read-only grant Dom0 never mapped");

    t.returns(lamina_hc_shared_page_grant(own, own_domid(), 0), kEinval, "shared_page_grant: to the domain itself is EINVAL");
    t.returns(lamina_hc_shared_page_grant(own, LAMINA_DOMID_MAX + 1, 0), kEinval,
              "shared_page_grant: to an id above LAMINA_DOMID_MAX is EINVAL");
    t.returns(lamina_hc_shared_page_grant(own, 0xffff, 0), kEinval, "shared_page_grant: to id 0xffff is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shared_page_grant, own, u64{1} << 16, 0), kEinval,
              "shared_page_grant: an id wider than 16 bits is EINVAL");
    t.returns(lamina_hc_shared_page_grant(own, LAMINA_DOMID_CONTROL, LAMINA_SHARE_READONLY << 1), kEinval,
              "shared_page_grant: an unknown flag is EINVAL");
    t.returns(lamina_hc_shared_page_grant(own, LAMINA_DOMID_CONTROL, 0x80000000), kEinval,
              "shared_page_grant: flag bit 31 is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shared_page_grant, own, LAMINA_DOMID_CONTROL, u64{1} << 32), kEinval,
              "shared_page_grant: flags wider than 32 bits are EINVAL");
    const struct {
        const char* what;
        u64 gfn;
    } not_ram[] = {
        {"shared_page_grant: the frame after the domain's memory is EINVAL", memory_end() / 4096},
        {"shared_page_grant: a frame far above RAM is EINVAL", free_gfn(0)},
        {"shared_page_grant: a frame past the address width is EINVAL", u64{1} << 40},
        {"shared_page_grant: frame 0xffffffffffffffff is EINVAL", ~u64{0}},
    };
    for (const auto& n : not_ram)
        t.returns(lamina_hc_shared_page_grant(n.gfn, LAMINA_DOMID_CONTROL, 0), kEinval, n.what);

    // References 0 to LAMINA_SHARED_PAGE_GRANTS - 1, each once; then ENOSPC.
    u32 granted = 0, in_range = 0;
    i64 result = 0;
    while (granted <= LAMINA_SHARED_PAGE_GRANTS &&
           (result = lamina_hc_shared_page_grant(gfn_of(own_pages[granted % 2]), LAMINA_DOMID_CONTROL, 0)) >= 0) {
        in_range += result < LAMINA_SHARED_PAGE_GRANTS;
        ++granted;
    }
    t.returns(result, kEnospc, "shared_page_grant: with every reference in use it is ENOSPC");
    t.check(granted == LAMINA_SHARED_PAGE_GRANTS && in_range == granted,
            "shared_page_grant: a domain has LAMINA_SHARED_PAGE_GRANTS references, 0 to the last",
            "{} granted, {} in range", granted, in_range);
    u32 revoked = 0;
    for (u32 ref = 0; ref < LAMINA_SHARED_PAGE_GRANTS; ++ref) revoked += lamina_hc_shared_page_revoke(ref) == 0;
    t.returns(revoked, granted, "shared_page_revoke: every grant, none mapped");
    check_no_grant_left(t, "shared_page_grant");
}

HYPERCALL_TEST(shared_page_revoke) {
    const i64 ref = lamina_hc_shared_page_grant(gfn_of(own_pages[1]), LAMINA_DOMID_CONTROL, LAMINA_SHARE_READONLY);
    if (ref < 0) {
        t.error("set-up: shared_page_grant: {}", lamina_errno_name(ref));
        return;
    }
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shared_page_revoke, (u64{1} << 32) | static_cast<u64>(ref)), kEinval,
              "shared_page_revoke: a reference wider than 32 bits is EINVAL");
    t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(ref)), 0, "shared_page_revoke: a grant of this domain's");
    t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(ref)), kEnoent,
              "shared_page_revoke: the same reference again is ENOENT");
    t.returns(lamina_hc_shared_page_revoke(LAMINA_SHARED_PAGE_GRANTS), kEinval,
              "shared_page_revoke: reference LAMINA_SHARED_PAGE_GRANTS is EINVAL");
    t.returns(lamina_hc_shared_page_revoke(0xffffffff), kEinval, "shared_page_revoke: reference 0xffffffff is EINVAL");

    // Dom0's references are Dom0's: revoking their numbers here touches only this domain's table
    // (empty), and Dom0's grant still maps.
    Offer o;
    if (!offer(t, &o)) return;
    t.returns(lamina_hc_shared_page_revoke(o.writable), kEnoent,
              "shared_page_revoke: the number of Dom0's grant to this domain is ENOENT here");
    t.returns(lamina_hc_shared_page_map(o.granter, o.writable, free_gfn(0)), 0,
              "shared_page_map: Dom0's grant is still there");
    lamina_hc_shared_page_unmap(free_gfn(0));

    // A grant the other domain has mapped stays until it unmaps: Dom0 maps one on request and
    // reads this domain's pattern there, writable and read-only grants alike.
    const struct {
        const char* kind;
        u32 flags;
    } grants[] = {{"writable", 0}, {"read-only", LAMINA_SHARE_READONLY}};
    for (u32 i = 0; i < array_size(grants); ++i) {
        str::fill_bytes(own_pages[i], kOwnPatterns[i], sizeof(own_pages[i]));
        const i64 granted = lamina_hc_shared_page_grant(gfn_of(own_pages[i]), LAMINA_DOMID_CONTROL, grants[i].flags);
        if (granted < 0) {
            t.error("set-up: shared_page_grant ({}): {}", grants[i].kind, lamina_errno_name(granted));
            continue;
        }
        char request[32], expected[32], what[112];
        format_to(request, sizeof(request), "map {}", granted);
        format_to(expected, sizeof(expected), "mapped 0 {:02x}", kOwnPatterns[i]);
        format_to(what, sizeof(what), "shared_page_map: Dom0 maps the {} grant and reads this domain's page", grants[i].kind);
        bool answered;
        const bool mapped = peer_replies(t, request, expected, what, &answered);
        if (mapped) {
            format_to(what, sizeof(what), "shared_page_revoke: the {} grant Dom0 has mapped is EBUSY", grants[i].kind);
            t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(granted)), kEbusy, what);
            peer_replies(t, "unmap", "unmapped 0", "shared_page_unmap: Dom0 unmaps the grant", &answered);
        }
        format_to(what, sizeof(what), "shared_page_revoke: the {} grant, once Dom0 unmapped it", grants[i].kind);
        t.returns(lamina_hc_shared_page_revoke(static_cast<u64>(granted)), 0, what);
        if (!answered) break;
    }
    check_no_grant_left(t, "shared_page_revoke");
    check_nothing_mapped(t, "shared_page_revoke", 1);
}

HYPERCALL_TEST(shared_page_map) {
    Offer o;
    if (!offer(t, &o)) return;
    const u64 writable = free_gfn(0), read_only = free_gfn(1), again = free_gfn(2);
    const bool mapped_rw = t.returns(lamina_hc_shared_page_map(o.granter, o.writable, writable), 0,
                                     "shared_page_map: Dom0's writable grant, above the domain's memory");
    const bool mapped_ro = t.returns(lamina_hc_shared_page_map(o.granter, o.read_only, read_only), 0,
                                     "shared_page_map: Dom0's read-only grant");
    if (mapped_rw) {
        t.check(holds(writable, kGrantPattern), "shared_page_map: the writable page holds Dom0's pattern");
        const bool twice = t.returns(lamina_hc_shared_page_map(o.granter, o.writable, again), 0,
                                     "shared_page_map: the same grant at a second frame");
        for (u32 i = 0; i < 4096; ++i) frame(writable)[i] = kWritten;
        t.check(holds(writable, kWritten), "shared_page_map: the writable page takes writes");
        t.check(twice && holds(again, kWritten), "shared_page_map: both mappings are the one page");
        if (twice) lamina_hc_shared_page_unmap(again);
        // A mapped frame is not the domain's RAM: no hypercall buffer, nothing to grant on.
        t.returns(lamina_hc_evtchn_status(1, writable * 4096), kEfault,
                  "evtchn_status: a buffer in a mapped frame is EFAULT");
        t.returns(lamina_hc_shared_page_grant(writable, LAMINA_DOMID_CONTROL, 0), kEinval,
                  "shared_page_grant: a frame mapped from Dom0 is EINVAL");
    }
    if (mapped_ro) {
        t.check(holds(read_only, kGrantPatternReadOnly), "shared_page_map: the read-only page holds Dom0's pattern");
        t.returns(lamina_hc_vcpu_up(1, read_only * 4096), kEfault,
                  "vcpu_up: a context in the read-only mapped frame is EFAULT");
    }

    // Refusals.
    t.returns(lamina_hc_shared_page_map(o.granter, o.writable, writable), kEexist,
              "shared_page_map: at a frame mapped already is EEXIST");
    t.returns(lamina_hc_shared_page_map(o.granter, o.read_only, writable), kEexist,
              "shared_page_map: another grant at a frame mapped already is EEXIST");
    const struct {
        const char* what;
        u64 gfn;
    } bad_frames[] = {
        {"shared_page_map: at the domain's RAM (its kernel) is EINVAL", 0x100},
        {"shared_page_map: at frame 0 is EINVAL", 0},
        {"shared_page_map: at the last frame of the domain's memory is EINVAL", memory_end() / 4096 - 1},
        {"shared_page_map: at a frame past the address width is EINVAL", u64{1} << 52},
        {"shared_page_map: at frame 0xffffffffffffffff is EINVAL", ~u64{0}},
    };
    for (const auto& b : bad_frames)
        t.returns(lamina_hc_shared_page_map(o.granter, o.writable, b.gfn), kEinval, b.what);
    u32 not_granted = 0;
    while (not_granted == o.writable || not_granted == o.read_only) ++not_granted;
    t.returns(lamina_hc_shared_page_map(o.granter, not_granted, again), kEnoent,
              "shared_page_map: a reference Dom0 did not grant this domain is ENOENT");
    t.returns(lamina_hc_shared_page_map(o.granter, LAMINA_SHARED_PAGE_GRANTS, again), kEinval,
              "shared_page_map: reference LAMINA_SHARED_PAGE_GRANTS is EINVAL");
    t.returns(lamina_hc_shared_page_map(o.granter, 0xffffffff, again), kEinval,
              "shared_page_map: reference 0xffffffff is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shared_page_map, o.granter, (u64{1} << 32) | o.writable, again), kEinval,
              "shared_page_map: a reference wider than 32 bits is EINVAL");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shared_page_map, (u64{1} << 16) | o.granter, o.writable, again), kEinval,
              "shared_page_map: a domain id wider than 16 bits is EINVAL");
    const u64 no_domains[] = {kNoDomain, LAMINA_DOMID_MAX + 1, 0xffff};
    for (u64 id : no_domains) {
        char what[96];
        format_to(what, sizeof(what), "shared_page_map: domain {:#x}, which does not exist, is ESRCH", id);
        t.returns(lamina_hc_shared_page_map(id, o.writable, again), kEsrch, what);
    }
    t.returns(lamina_hc_shared_page_map(own_domid(), o.writable, again), kEnoent,
              "shared_page_map: the domain's own (empty) grants are ENOENT");

    if (mapped_rw) t.returns(lamina_hc_shared_page_unmap(writable), 0, "shared_page_unmap: the writable mapping");
    if (mapped_ro) t.returns(lamina_hc_shared_page_unmap(read_only), 0, "shared_page_unmap: the read-only mapping");
    check_nothing_mapped(t, "shared_page_map", 3);
}

HYPERCALL_TEST(shared_page_unmap) {
    Offer o;
    if (!offer(t, &o)) return;
    const u64 at = free_gfn(0);
    if (!t.returns(lamina_hc_shared_page_map(o.granter, o.read_only, at), 0, "shared_page_map: Dom0's read-only grant"))
        return;
    t.returns(lamina_hc_shared_page_unmap(at), 0, "shared_page_unmap: removes the mapping");
    t.returns(lamina_hc_shared_page_unmap(at), kEinval, "shared_page_unmap: the same frame again is EINVAL");
    t.returns(lamina_hc_shared_page_map(o.granter, o.read_only, at), 0,
              "shared_page_map: the frame is free again, and the grant maps again");
    t.returns(lamina_hc_shared_page_unmap(at), 0, "shared_page_unmap: that mapping too");
    const struct {
        const char* what;
        u64 gfn;
    } nothing_there[] = {
        {"shared_page_unmap: a frame nothing was mapped at is EINVAL", free_gfn(1)},
        {"shared_page_unmap: a RAM frame is EINVAL", 0x100},
        {"shared_page_unmap: the frame after the domain's memory is EINVAL", memory_end() / 4096},
        {"shared_page_unmap: frame 0xffffffffffffffff is EINVAL", ~u64{0}},
    };
    for (const auto& n : nothing_there) t.returns(lamina_hc_shared_page_unmap(n.gfn), kEinval, n.what);
    check_nothing_mapped(t, "shared_page_unmap", 2);
}
