// Domain control, as the control domain does it: every domain_* hypercall of the table builds,
// runs, inspects and ends children that this kernel builds by hand (child_domain.h), and each
// documented behaviour is seen through other calls (domain_get_info, domain_list, host_info, the
// child's own counter and console). Each call is also refused with the documented error for every
// kind of wrong argument: the caller itself, domains that do not exist, ids wider than 16 bits,
// reserved values, out-of-range counts, bad buffers; buffers at odd addresses across pages work.
// After each case every page and port is back and the bystander domain is as it was.
// Booted in Dom0's place (CONTROL: linked at 16 MiB).
#include <tests/conformance/child_domain.h>

#include <lamina/string.h>

CONFORMANCE_KERNEL("control-domain", Functional);

using namespace conformance;

namespace {

constexpr u64 kFrame = 4096;
// Frames of this kernel for the cases' own mappings: not its RAM, not the children's windows
// (child_domain.cpp), identity-mapped by its page tables.
constexpr u64 kTestWindowGfn = 0x90000;

bool listed(u64 domid) {
    lamina_domain_info infos[LAMINA_DOMAIN_LIST_MAX];
    const i64 count = lamina_hc_domain_list(0, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX);
    for (i64 i = 0; i < count; ++i) {
        if (infos[i].domid == domid) return true;
    }
    return false;
}

// The caller's own guest frame for a variable: its RAM.
u64 own_gfn() {
    static u8 page[kFrame];
    return gpa_of(page) / kFrame;
}

// A BUILDING domain with `frames` frames of RAM from guest frame 0 (its maximum too).
bool populate(Test& t, const ScopedDomain& domain, u64 frames) {
    const bool ok = domain.ok() && lamina_hc_domain_set_max_memory(domain.id(), frames) == 0 &&
                    lamina_hc_domain_populate_memory(domain.id(), 0, frames) == 0;
    if (!ok) t.error("a domain with {} frames of RAM could not be made", frames);
    return ok;
}

lamina_vcpu_context protected_context(u64 rip) {
    lamina_vcpu_context context{};
    context.mode = LAMINA_VCPU_MODE_PROTECTED32;
    context.regs.rip = rip;
    context.regs.rsp = 0x8000;
    context.regs.rflags = kRflagsReserved;
    return context;
}

constexpr u64 kCr0Pg = u64{1} << 31;
constexpr u64 kCr4Pae = 1u << 5;
constexpr u64 kEferLme = 1u << 8;
constexpr u64 kEferLma = 1u << 10;
constexpr u64 kEferNxe = 1u << 11;

// A 64-bit start as a 64-bit kernel makes one, with the page tables every child has.
lamina_vcpu_context long64_context(u64 rip) {
    lamina_vcpu_context context = protected_context(rip);
    context.mode = LAMINA_VCPU_MODE_LONG64;
    context.cr0 = kCr0Pg | (1u << 16) | 0x33;  // PG, WP, NE, ET, MP, PE
    context.cr3 = ChildDomain::page_table_root();
    context.cr4 = kCr4Pae | (1u << 7) | (1u << 9) | (1u << 10);  // PAE, PGE, OSFXSR, OSXMMEXCPT
    context.efer = kEferLme | kEferNxe;
    return context;
}

// One way to spoil a valid context, and what the refusal is.
struct Spoil {
    const char* what;
    void (*spoil)(lamina_vcpu_context&);
};

// `valid` spoiled each way is EINVAL.
template <usize N, typename Set>
void check_spoiled(Test& t, const lamina_vcpu_context& valid, const Spoil (&spoils)[N], Set set) {
    for (const Spoil& s : spoils) {
        lamina_vcpu_context context = valid;
        s.spoil(context);
        t.returns(set(context), kEinval, s.what);
    }
}

}  // namespace

TEST_CASE(set_up, "set-up: events, a first child, the bystander") { set_up_control_kernel(t); }

HYPERCALL_TEST(domain_create) {
    const u64 free_before = free_pages();
    const i64 id = create_domain("ctl-create");
    if (!t.check(id > 0 && id <= LAMINA_DOMID_MAX, "domain_create: returns the new domain's id", "returned {}", id))
        return;
    const lamina_domain_info info = domain_info(id);
    t.check(info.domid == id && info.state == LAMINA_DOMAIN_BUILDING && info.kind == LAMINA_DOMAIN_PVH &&
                str::equal(info.name, "ctl-create"),
            "domain_create: domain_get_info shows it BUILDING, PVH, with its name", "state {}, kind {}, name {}",
            info.state, info.kind, info.name);
    t.check(info.pages == 0 && info.max_pages == 0, "domain_create: it has no memory", "{} pages, max {}", info.pages,
            info.max_pages);
    t.check(info.max_vcpus == 1 && info.online_vcpus == 0, "domain_create: it has one vCPU, not up",
            "max_vcpus {}, online {}", info.max_vcpus, info.online_vcpus);
    t.check(info.flags == 0 && info.shutdown_reason == 0 && info.cpu_time_ns == 0 && info.pad0 == 0 && info.pad1 == 0,
            "domain_create: no flags, no CPU time, padding 0", "flags {:#x}, cpu_time {}", info.flags,
            info.cpu_time_ns);
    t.check(listed(id), "domain_create: domain_list lists it");
    t.check(id != bystander_id(), "domain_create: the id is not another domain's");

    t.returns(create_domain("ctl-create"), kEexist, "domain_create: a taken name is EEXIST");
    t.returns(create_domain(domain_info(LAMINA_DOMID_CONTROL).name), kEexist,
              "domain_create: the control domain's name is EEXIST");
    lamina_domain_create params = create_params("ctl-create");
    params.kind = LAMINA_DOMAIN_HVM + 1;
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEinval, "domain_create: an unknown kind is EINVAL");
    params.kind = 0xffffffff;
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEinval, "domain_create: kind 0xffffffff is EINVAL");
    params = create_params("ctl-create-hvm");
    params.kind = LAMINA_DOMAIN_HVM;
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEopnotsupp,
              "domain_create: an HVM domain, which this host cannot build, is EOPNOTSUPP");
    params = create_params("ctl-create-flags");
    params.flags = 1;
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEinval, "domain_create: flags other than 0 are EINVAL");
    params.flags = 0x80000000;
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEinval, "domain_create: flag bit 31 is EINVAL");
    t.returns(lamina_hc_domain_destroy(id), 0, "domain_create: the domain it made can be destroyed");

    // Names: 1 to 31 characters, NUL-terminated within the field.
    struct Name {
        const char* text;
        const char* what;
    };
    const Name good[] = {{"a", "a one-character name"},
                         {"abcdefghijklmnopqrstuvwxyz01234", "a 31-character name"},
                         {"Ctl_name-1.2", "a name of letters, digits, '_', '-' and '.'"}};
    for (const Name& name : good) {
        char what[96];
        format_to(what, sizeof(what), "domain_create: {} is taken as it is", name.what);
        const i64 made = create_domain(name.text);
        t.check(made > 0 && str::equal(domain_info(made).name, name.text), what, "returned {}", made);
        if (made > 0) lamina_hc_domain_destroy(made);
    }
    params = create_params("ctl-tail");
    str::fill_bytes(params.name + 9, 'x', sizeof(params.name) - 9);  // past the NUL
    const i64 tail = lamina_hc_domain_create(gpa_of(&params));
    t.check(tail > 0 && str::equal(domain_info(tail).name, "ctl-tail"),
            "domain_create: the bytes after the name's NUL are ignored");
    if (tail > 0) lamina_hc_domain_destroy(tail);
    const Name bad[] = {{"", "an empty name"},
                        {"tab\there", "a name with a tab"},
                        {"nl\n", "a name with a newline"},
                        {"del\x7f", "a name with DEL (0x7f)"},
                        {"high\x80", "a name with a byte above 0x7f"}};
    for (const Name& name : bad) {
        char what[96];
        format_to(what, sizeof(what), "domain_create: {} is EINVAL", name.what);
        t.returns(create_domain(name.text), kEinval, what);
    }
    str::fill_bytes(params.name, 'n', sizeof(params.name));
    t.returns(lamina_hc_domain_create(gpa_of(&params)), kEinval,
              "domain_create: a name with no NUL in 32 bytes is EINVAL");
    // Printable ASCII outside the names' characters: consoles and shells show names, and take a
    // number for an id.
    const Name printable[] = {{"two words", "a name with a space"},
                              {"a!b", "a name with '!'"},
                              {"a/b", "a name with '/'"},
                              {"12345", "a name of digits only"}};
    for (const Name& name : printable) {
        char what[96];
        format_to(what, sizeof(what), "domain_create: {} is EINVAL", name.what);
        t.returns(create_domain(name.text), kEinval, what);
    }

    check_bad_buffers(t, "domain_create", sizeof(lamina_domain_create),
                      [](u64 gpa) { return lamina_hc_domain_create(gpa); });
    {
        const StraddlingBuffer buffer(sizeof(lamina_domain_create));
        buffer.as<lamina_domain_create>() = create_params("ctl-straddle");
        const i64 made = lamina_hc_domain_create(buffer.gpa());
        t.check(made > 0 && str::equal(domain_info(made).name, "ctl-straddle"),
                "domain_create: parameters at an odd address across a page are read", "returned {}", made);
        if (made > 0) lamina_hc_domain_destroy(made);
    }

    // The host's limit, the control domain and the bystander included.
    const u32 max_domains = host_info().max_domains;
    lamina_domain_info infos[LAMINA_DOMAIN_LIST_MAX];
    const i64 existing = lamina_hc_domain_list(0, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX);
    i64 filled[LAMINA_DOMAIN_LIST_MAX] = {};
    u32 made = 0;
    for (; existing > 0 && made + existing < max_domains && made < LAMINA_DOMAIN_LIST_MAX; ++made) {
        char name[LAMINA_DOMAIN_NAME_SIZE];
        format_to(name, sizeof(name), "ctl-fill-{}", made);
        filled[made] = create_domain(name);
        if (filled[made] <= 0) break;
    }
    t.check(made + existing == max_domains, "domain_create: domains up to host_info's max_domains are made",
            "{} made, {} there before, max_domains {}", made, existing, max_domains);
    t.returns(create_domain("ctl-one-too-many"), kEnospc, "domain_create: one more than max_domains is ENOSPC");
    for (u32 i = 0; i < made; ++i) {
        if (filled[i] > 0) lamina_hc_domain_destroy(filled[i]);
    }
    const i64 again = create_domain("ctl-again");
    t.check(again > 0, "domain_create: once they are destroyed, a domain can be made again", "returned {}", again);
    if (again > 0) lamina_hc_domain_destroy(again);

    t.check(free_pages() == free_before, "domain_create: destroying what it made gives every page back");
    check_left_alone(t, "domain_create");
}

HYPERCALL_TEST(domain_destroy) {
    const u64 free_before = free_pages();
    const i64 id = create_domain("ctl-destroy");
    t.returns(lamina_hc_domain_destroy(id), 0, "domain_destroy: a BUILDING domain");
    lamina_domain_info info;
    t.returns(lamina_hc_domain_get_info(id, gpa_of(&info)), kEsrch, "domain_destroy: then domain_get_info is ESRCH");
    t.check(!listed(id), "domain_destroy: then domain_list leaves it out");
    t.returns(lamina_hc_domain_destroy(id), kEsrch, "domain_destroy: destroying it again is ESRCH");
    const i64 renamed = create_domain("ctl-destroy");
    t.check(renamed > 0, "domain_destroy: its name is free again", "domain_create returned {}", renamed);
    if (renamed > 0) lamina_hc_domain_destroy(renamed);

    ScopedChild running;
    if (running.build(t, {.name = "ctl-destroy-running"}) && running.start() == 0 && running.wait_for_count(0)) {
        t.returns(lamina_hc_domain_destroy(running.id()), kEbusy,
                  "domain_destroy: a domain whose frames the caller maps is EBUSY");
        const u32 count = running.counter();
        t.check(running.info().state == LAMINA_DOMAIN_RUNNING && running.wait_for_count(count),
                "domain_destroy: ... and it runs on");
        const u16 running_id = running.id();
        t.returns(running.destroy(), 0, "domain_destroy: a running domain, its frames unmapped");
        t.returns(lamina_hc_domain_get_info(running_id, gpa_of(&info)), kEsrch,
                  "domain_destroy: the running domain is gone");
    }
    ScopedChild paused;
    if (paused.build(t, {.name = "ctl-destroy-paused"}) && paused.start() == 0 &&
        lamina_hc_domain_pause(paused.id()) == 0) {
        t.returns(paused.destroy(), 0, "domain_destroy: a paused domain");
    }
    ScopedChild ended;
    if (ended.build(t, {.name = "ctl-destroy-ended", .program = ChildProgram::Halt}) && ended.start() == 0 &&
        lamina_hc_domain_shutdown(ended.id(), LAMINA_SHUTDOWN_POWEROFF) == 0) {
        t.returns(ended.destroy(), 0, "domain_destroy: a shut-down domain");
    }
    t.check(free_pages() == free_before, "domain_destroy: every page of the destroyed domains is free again");

    ScopedDomain target("ctl-destroy-target");
    check_domain_ids(t, "domain_destroy", target.id(), true, [](u64 domid) { return lamina_hc_domain_destroy(domid); });
    target.destroy();
    check_left_alone(t, "domain_destroy");
}

HYPERCALL_TEST(domain_pause) {
    ScopedChild child;
    if (!child.build(t, {.name = "ctl-pause"})) return;
    t.returns(lamina_hc_domain_pause(child.id()), kEinval, "domain_pause: a BUILDING domain (not running) is EINVAL");
    if (!t.check(child.start() == 0 && child.wait_for_count(0), "domain_pause: the child runs")) return;
    check_domain_ids(t, "domain_pause", child.id(), true, [](u64 domid) { return lamina_hc_domain_pause(domid); });
    t.returns(lamina_hc_domain_pause(child.id()), 0, "domain_pause: a running domain");
    t.check(child.info().state == LAMINA_DOMAIN_PAUSED, "domain_pause: domain_get_info shows it PAUSED");
    const u32 stopped = child.counter();
    sleep_ns(20 * kMs);
    t.check(child.counter() == stopped, "domain_pause: its vCPU runs no more (its counter stands still)",
            "{} became {}", stopped, child.counter());
    t.returns(lamina_hc_domain_pause(child.id()), kEinval, "domain_pause: a paused domain is EINVAL");
    t.check(child.info().state == LAMINA_DOMAIN_PAUSED, "domain_pause: ... and it stays PAUSED");
    lamina_hc_domain_shutdown(child.id(), LAMINA_SHUTDOWN_POWEROFF);
    t.returns(lamina_hc_domain_pause(child.id()), kEinval, "domain_pause: a shut-down domain is EINVAL");
    t.check(child.info().state == LAMINA_DOMAIN_SHUTTING_DOWN, "domain_pause: ... and it stays SHUTTING_DOWN");
    t.returns(child.destroy(), 0, "domain_pause: the child is destroyed");
    check_left_alone(t, "domain_pause");
}

HYPERCALL_TEST(domain_unpause) {
    // BUILDING domains that have not all it takes to start.
    ScopedDomain no_context("ctl-unpause-no-context");
    if (populate(t, no_context, 16)) {
        t.returns(lamina_hc_domain_unpause(no_context.id()), kEinval,
                  "domain_unpause: a BUILDING domain whose vCPU 0 has no context is EINVAL");
        t.check(domain_info(no_context.id()).state == LAMINA_DOMAIN_BUILDING,
                "domain_unpause: ... and it stays BUILDING");
    }
    ScopedDomain no_memory("ctl-unpause-no-memory");
    const lamina_vcpu_context context = protected_context(0x1000);
    lamina_hc_domain_set_vcpu_context(no_memory.id(), 0, gpa_of(&context));
    t.returns(lamina_hc_domain_unpause(no_memory.id()), kEinval,
              "domain_unpause: a BUILDING domain with no memory is EINVAL");

    // Two vCPUs with contexts, and a third without one.
    ScopedChild child;
    if (!child.build(t, {.name = "ctl-unpause", .message = "unpause: hello\n", .vcpus = 2})) return;
    t.returns(lamina_hc_domain_set_max_vcpus(child.id(), 3), 0, "domain_unpause: (a third vCPU, with no context)");
    t.returns(child.start(), 0, "domain_unpause: a BUILDING domain");
    const lamina_domain_info info = child.info();
    t.check(info.state == LAMINA_DOMAIN_RUNNING, "domain_unpause: domain_get_info shows it RUNNING");
    t.check(child.wait_for_count(0, 0) && child.wait_for_count(0, 1),
            "domain_unpause: each vCPU with a context runs from it (both count)");
    t.check(info.online_vcpus == 2, "domain_unpause: the vCPU without a context stays down (online_vcpus 2)",
            "online_vcpus {}", info.online_vcpus);
    t.check(wait_until([&] { return child.console_shows("unpause: hello\n"); }),
            "domain_unpause: its console shows its message");
    t.returns(child.start(), kEinval, "domain_unpause: a running domain is EINVAL");

    lamina_hc_domain_pause(child.id());
    check_domain_ids(t, "domain_unpause", child.id(), true, [](u64 domid) { return lamina_hc_domain_unpause(domid); });
    const u32 paused_at = child.counter();
    t.returns(child.start(), 0, "domain_unpause: a paused domain");
    t.check(child.info().state == LAMINA_DOMAIN_RUNNING && child.wait_for_count(paused_at),
            "domain_unpause: it is RUNNING again and counts on from where it stopped");
    lamina_hc_domain_shutdown(child.id(), LAMINA_SHUTDOWN_POWEROFF);
    t.returns(child.start(), kEinval, "domain_unpause: a shut-down domain is EINVAL");
    t.check(child.info().state == LAMINA_DOMAIN_SHUTTING_DOWN, "domain_unpause: ... and it stays SHUTTING_DOWN");
    child.destroy();
    no_context.destroy();
    no_memory.destroy();
    check_left_alone(t, "domain_unpause");
}

HYPERCALL_TEST(domain_get_info) {
    // The caller's own record: its RAM is the memory map's.
    u64 ram_pages = 0;
    const auto* map = reinterpret_cast<const pvh::MemoryMapEntry*>(start_info().memory_map);
    for (u32 i = 0; i < start_info().memory_map_entries; ++i) {
        if (map[i].type == pvh::MemoryType::Ram) ram_pages += map[i].size / kFrame;
    }
    lamina_domain_info own{};
    t.returns(lamina_hc_domain_get_info(LAMINA_DOMID_CONTROL, gpa_of(&own)), 0,
              "domain_get_info: of the caller itself");
    t.check(own.domid == LAMINA_DOMID_CONTROL && own.flags == LAMINA_DOMAIN_CONTROL &&
                own.state == LAMINA_DOMAIN_RUNNING && own.kind == LAMINA_DOMAIN_PVH,
            "domain_get_info: the caller is domain 0, CONTROL, RUNNING, PVH", "domid {}, flags {:#x}, state {}",
            own.domid, own.flags, own.state);
    t.check(own.pages == ram_pages && own.max_pages >= own.pages,
            "domain_get_info: the caller's pages are the RAM of its memory map", "{} pages (max {}), the map has {}",
            own.pages, own.max_pages, ram_pages);
    t.check(own.online_vcpus >= 1 && own.online_vcpus <= own.max_vcpus && own.name[0] != '\0' &&
                str::length_bounded(own.name, sizeof(own.name)) < sizeof(own.name),
            "domain_get_info: the caller has a vCPU up and a NUL-terminated name");

    ScopedDomain domain("ctl-info");
    if (!populate(t, domain, 16)) return;
    lamina_hc_domain_set_max_memory(domain.id(), 64);
    const lamina_domain_info info = domain_info(domain.id());
    t.check(info.domid == domain.id() && info.pages == 16 && info.max_pages == 64 &&
                str::equal(info.name, "ctl-info") && info.state == LAMINA_DOMAIN_BUILDING,
            "domain_get_info: a child's id, name, state, pages and max_pages", "pages {}, max {}", info.pages,
            info.max_pages);

    ScopedChild running;
    if (running.build(t, {.name = "ctl-info-running"}) && running.start() == 0 && running.wait_for_count(0)) {
        const u64 before = running.info().cpu_time_ns;
        t.check(wait_until([&] { return running.info().cpu_time_ns > before; }),
                "domain_get_info: a running domain's cpu_time_ns grows");
    }
    running.destroy();

    check_straddling_out<lamina_domain_info>(t, "domain_get_info",
                                             [&](u64 gpa) { return lamina_hc_domain_get_info(domain.id(), gpa); });
    {
        const StraddlingBuffer buffer(sizeof(lamina_domain_info));
        lamina_hc_domain_get_info(kUnusedDomid, buffer.gpa());
        t.check(buffer.untouched(), "domain_get_info: ESRCH writes nothing");
    }
    check_bad_buffers(t, "domain_get_info", sizeof(lamina_domain_info),
                      [&](u64 gpa) { return lamina_hc_domain_get_info(domain.id(), gpa); });
    check_domain_ids(t, "domain_get_info", domain.id(), false, [](u64 domid) {
        lamina_domain_info ignored;
        return lamina_hc_domain_get_info(domid, gpa_of(&ignored));
    });
    domain.destroy();
    check_left_alone(t, "domain_get_info");
}

HYPERCALL_TEST(domain_list) {
    ScopedDomain domain("ctl-list");
    static lamina_domain_info infos[LAMINA_DOMAIN_LIST_MAX + 1];
    const i64 count = lamina_hc_domain_list(0, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX);
    if (!t.check(count >= 3, "domain_list: lists the caller, the bystander and a new domain", "returned {}", count))
        return;
    bool ordered = true, as_get_info = true;
    for (i64 i = 0; i < count; ++i) {
        if (i > 0 && infos[i].domid <= infos[i - 1].domid) ordered = false;
        lamina_domain_info single = domain_info(infos[i].domid);
        single.cpu_time_ns = infos[i].cpu_time_ns;  // it moves on
        if (str::compare_bytes(&single, &infos[i], sizeof(single)) != 0) as_get_info = false;
    }
    t.check(ordered && infos[0].domid == LAMINA_DOMID_CONTROL, "domain_list: in id order, from the control domain");
    t.check(as_get_info, "domain_list: each record is the domain's domain_get_info");
    t.check(infos[count - 1].domid == domain.id() && infos[count - 1].state == LAMINA_DOMAIN_BUILDING &&
                str::equal(infos[count - 1].name, "ctl-list"),
            "domain_list: the newest domain comes last, BUILDING, with its name");

    t.returns(lamina_hc_domain_list(domain.id(), gpa_of(infos), LAMINA_DOMAIN_LIST_MAX), 1,
              "domain_list: from the newest domain's id there is one");
    t.check(infos[0].domid == domain.id(), "domain_list: ... that one");
    t.returns(lamina_hc_domain_list(domain.id() + 1, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX), 0,
              "domain_list: from past the newest id there are none");
    t.returns(lamina_hc_domain_list(kBeyondDomidMax, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX), 0,
              "domain_list: from past LAMINA_DOMID_MAX there are none");
    t.returns(lamina_hc_domain_list(0xffff, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX), 0,
              "domain_list: from 0xffff there are none");

    str::fill_bytes(infos, 0xa5, sizeof(infos));
    t.returns(lamina_hc_domain_list(0, gpa_of(infos), 1), 1, "domain_list: max_count 1 writes one");
    t.check(infos[0].domid == LAMINA_DOMID_CONTROL && filled_with(&infos[1], sizeof(lamina_domain_info), 0xa5),
            "domain_list: ... the control domain's, and nothing after it");
    t.returns(lamina_hc_domain_list(0, gpa_of(infos), 0), 0, "domain_list: max_count 0 writes none");
    t.returns(lamina_hc_domain_list(0, gpa_of(infos), LAMINA_DOMAIN_LIST_MAX + 1), kE2big,
              "domain_list: max_count above LAMINA_DOMAIN_LIST_MAX is E2BIG");
    t.returns(lamina_hc_domain_list(0, gpa_of(infos), 0xffffffff), kE2big,
              "domain_list: max_count 0xffffffff is E2BIG");
    t.returns(lamina_hc_domain_list(0, gpa_of(infos), kPast32 | 1), kEinval,
              "domain_list: a max_count wider than 32 bits is EINVAL");
    t.returns(lamina_hc_domain_list(kPast16, gpa_of(infos), 1), kEinval,
              "domain_list: a first_domid wider than 16 bits is EINVAL");

    check_bad_buffers(t, "domain_list", 2 * sizeof(lamina_domain_info),
                      [](u64 gpa) { return lamina_hc_domain_list(0, gpa, 2); });
    lamina_hc_domain_list(0, gpa_of(infos), 2);
    {
        const StraddlingBuffer buffer(2 * sizeof(lamina_domain_info));
        t.returns(lamina_hc_domain_list(0, buffer.gpa(), 2), 2, "domain_list: records at an odd address across a page");
        auto* got = static_cast<lamina_domain_info*>(buffer.data());
        got[0].cpu_time_ns = infos[0].cpu_time_ns;
        got[1].cpu_time_ns = infos[1].cpu_time_ns;
        t.check(str::compare_bytes(got, infos, 2 * sizeof(lamina_domain_info)) == 0 && buffer.untouched_around(),
                "domain_list: ... are the same records, and nothing around them is written");
    }
    domain.destroy();
    check_left_alone(t, "domain_list");
}

HYPERCALL_TEST(domain_set_max_memory) {
    ScopedDomain domain("ctl-max-memory");
    t.returns(lamina_hc_domain_set_max_memory(domain.id(), 16), 0, "domain_set_max_memory: 16 pages");
    t.check(domain_info(domain.id()).max_pages == 16, "domain_set_max_memory: domain_get_info shows max_pages 16");
    lamina_hc_domain_populate_memory(domain.id(), 0, 16);
    t.returns(lamina_hc_domain_set_max_memory(domain.id(), 15), kEbusy,
              "domain_set_max_memory: below the pages it owns is EBUSY");
    t.check(domain_info(domain.id()).max_pages == 16, "domain_set_max_memory: ... and max_pages stays 16");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 16, 1), kEnospc,
              "domain_set_max_memory: a page past the maximum cannot be populated (ENOSPC)");
    t.returns(lamina_hc_domain_set_max_memory(domain.id(), 16), 0, "domain_set_max_memory: exactly the pages it owns");
    t.returns(lamina_hc_domain_set_max_memory(domain.id(), 17), 0, "domain_set_max_memory: one page more");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 16, 1), 0,
              "domain_set_max_memory: ... which can be populated");
    t.returns(lamina_hc_domain_set_max_memory(domain.id(), ~u64{0}), 0,
              "domain_set_max_memory: the largest 64-bit value");
    t.check(domain_info(domain.id()).max_pages == ~u64{0} && domain_info(domain.id()).pages == 17,
            "domain_set_max_memory: ... is kept as it is, the pages untouched");
    check_domain_ids(t, "domain_set_max_memory", domain.id(), true,
                     [](u64 domid) { return lamina_hc_domain_set_max_memory(domid, 32); });
    domain.destroy();
    check_left_alone(t, "domain_set_max_memory");
}

HYPERCALL_TEST(domain_populate_memory) {
    const u64 free_before = free_pages();
    ScopedDomain domain("ctl-populate");
    lamina_hc_domain_set_max_memory(domain.id(), 1024);
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 0, 512), 0, "domain_populate_memory: 512 frames from 0");
    t.check(domain_info(domain.id()).pages == 512, "domain_populate_memory: domain_get_info shows 512 pages");
    t.check(free_pages() + 512 <= free_before, "domain_populate_memory: the host has 512 fewer free pages, at least");
    u8* window = reinterpret_cast<u8*>(kTestWindowGfn * kFrame);
    if (t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 512, kTestWindowGfn), 0,
                  "domain_populate_memory: (its frames mapped)")) {
        t.check(filled_with(window, 512 * kFrame, 0), "domain_populate_memory: the frames read as zeroes");
        str::fill_bytes(window, 0xa5, 512 * kFrame);
        lamina_hc_domain_unmap_frames(kTestWindowGfn, 512);
    }
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 256, 1), kEexist,
              "domain_populate_memory: a frame that is RAM already is EEXIST");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 511, 2), kEexist,
              "domain_populate_memory: a range whose first frame is RAM already is EEXIST");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 512, 513), kEnospc,
              "domain_populate_memory: past the domain's max_pages is ENOSPC");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 600, 0), kEinval,
              "domain_populate_memory: count 0 is EINVAL");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), ~u64{0}, 2), kEinval,
              "domain_populate_memory: a range that wraps is EINVAL");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), u64{1} << 40, 1), kEinval,
              "domain_populate_memory: a frame beyond 52-bit guest-physical space is EINVAL");
    t.check(domain_info(domain.id()).pages == 512, "domain_populate_memory: the refused calls added nothing");
    t.returns(lamina_hc_domain_populate_memory(domain.id(), 0x100000, 1), 0,
              "domain_populate_memory: a frame apart from the others (at 4 GiB)");
    t.check(domain_info(domain.id()).pages == 513, "domain_populate_memory: ... makes 513 pages");
    t.returns(domain.destroy(), 0, "domain_populate_memory: the domain is destroyed");
    t.check(free_pages() == free_before, "domain_populate_memory: its pages are free again");

    // Frames a destroyed domain filled come back zeroed to the next one.
    ScopedDomain next("ctl-populate-next");
    if (populate(t, next, 512) && lamina_hc_domain_map_frames(next.id(), 0, 512, kTestWindowGfn) == 0) {
        t.check(filled_with(window, 512 * kFrame, 0),
                "domain_populate_memory: a new domain's frames are zeroes, whoever had them");
        lamina_hc_domain_unmap_frames(kTestWindowGfn, 512);
    }
    next.destroy();

    // Nearly all the host's free memory: each step of the call takes its host frames in one run,
    // and the free ones may be in several, so either it all comes, or ENOMEM leaves the whole
    // steps before the one that found no run.
    {
        ScopedDomain all("ctl-populate-all");
        lamina_hc_domain_set_max_memory(all.id(), ~u64{0});
        const u64 reserve = 4096;  // 16 MiB for the hypervisor's own needs meanwhile
        const u64 wanted = free_pages() - reserve;
        const i64 result = lamina_hc_domain_populate_memory(all.id(), 0, wanted);
        const u64 pages = domain_info(all.id()).pages;
        const bool documented = (result == 0 && pages == wanted) ||
                                (result == kEnomem && pages < wanted && pages % LAMINA_DOMAIN_POPULATE_STEP_PAGES == 0);
        t.check(documented,
                "domain_populate_memory: all the host's free memory but 16 MiB, in one call: all of it, or ENOMEM "
                "with the steps before kept",
                "{} ({}), {} pages of {}", result, lamina_errno_name(result), pages, wanted);
    }
    // Three quarters of it in one (preemptible) call, then more than is left.
    ScopedDomain big("ctl-populate-big");
    lamina_hc_domain_set_max_memory(big.id(), ~u64{0});
    const u64 most = free_pages() / 4 * 3;
    t.returns(lamina_hc_domain_populate_memory(big.id(), 0, most), 0,
              "domain_populate_memory: three quarters of the host's free memory, in one call");
    t.check(domain_info(big.id()).pages == most, "domain_populate_memory: ... all of it", "{} pages of {}",
            domain_info(big.id()).pages, most);
    const u64 left = free_pages();
    t.returns(lamina_hc_domain_populate_memory(big.id(), most, left + 1), kEnomem,
              "domain_populate_memory: one frame more than the host has free is ENOMEM");
    // Nothing of the step that failed; the steps before it, if the call had any, stay.
    const u64 kept = domain_info(big.id()).pages - most;
    t.check(kept % LAMINA_DOMAIN_POPULATE_STEP_PAGES == 0 && free_pages() == left - kept,
            "domain_populate_memory: ... and takes nothing but the whole steps before the failed one",
            "{} pages kept", kept);
    big.destroy();

    ScopedChild running;
    if (running.build(t, {.name = "ctl-populate-running", .program = ChildProgram::Halt}) && running.start() == 0) {
        lamina_hc_domain_set_max_memory(running.id(), kChildFrames + 1);
        t.returns(lamina_hc_domain_populate_memory(running.id(), kChildFrames, 1), kEbusy,
                  "domain_populate_memory: a domain that is not BUILDING is EBUSY");
    }
    running.destroy();
    ScopedDomain target("ctl-populate-ids");
    lamina_hc_domain_set_max_memory(target.id(), 16);
    check_domain_ids(t, "domain_populate_memory", target.id(), true,
                     [](u64 domid) { return lamina_hc_domain_populate_memory(domid, 0, 1); });
    target.destroy();
    t.check(free_pages() == free_before, "domain_populate_memory: every page is free again");
    check_left_alone(t, "domain_populate_memory");
}

HYPERCALL_TEST(domain_set_max_vcpus) {
    const u32 host_max = host_info().max_vcpus;
    ScopedDomain domain("ctl-max-vcpus");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), 2), 0, "domain_set_max_vcpus: 2");
    lamina_domain_info info = domain_info(domain.id());
    t.check(info.max_vcpus == 2 && info.online_vcpus == 0, "domain_set_max_vcpus: domain_get_info shows 2, none up");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), host_max), 0, "domain_set_max_vcpus: host_info's max_vcpus");
    t.check(domain_info(domain.id()).max_vcpus == host_max, "domain_set_max_vcpus: ... is what domain_get_info shows");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), host_max + 1), kEinval,
              "domain_set_max_vcpus: one more than host_info's max_vcpus is EINVAL");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), 0), kEinval, "domain_set_max_vcpus: 0 is EINVAL");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), 0xffffffff), kEinval,
              "domain_set_max_vcpus: 0xffffffff is EINVAL");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), kPast32 | 1), kEinval,
              "domain_set_max_vcpus: a count wider than 32 bits is EINVAL");
    t.check(domain_info(domain.id()).max_vcpus == host_max, "domain_set_max_vcpus: the refused counts changed nothing");
    t.returns(lamina_hc_domain_set_max_vcpus(domain.id(), 1), 0, "domain_set_max_vcpus: back to 1");
    const lamina_vcpu_context context = protected_context(0x1000);
    t.returns(lamina_hc_domain_set_vcpu_context(domain.id(), 1, gpa_of(&context)), kEinval,
              "domain_set_max_vcpus: ... and vCPU 1 is gone (its context is EINVAL)");
    check_domain_ids(t, "domain_set_max_vcpus", domain.id(), true,
                     [](u64 domid) { return lamina_hc_domain_set_max_vcpus(domid, 2); });
    domain.destroy();

    ScopedChild child;
    if (child.build(t, {.name = "ctl-max-vcpus-run", .vcpus = 2}) && child.start() == 0) {
        t.check(child.wait_for_count(0, 0) && child.wait_for_count(0, 1) && child.info().online_vcpus == 2,
                "domain_set_max_vcpus: both vCPUs of a 2-vCPU domain run");
        t.returns(lamina_hc_domain_set_max_vcpus(child.id(), 1), kEbusy,
                  "domain_set_max_vcpus: a domain that is not BUILDING is EBUSY");
        t.check(child.info().max_vcpus == 2, "domain_set_max_vcpus: ... and it keeps its 2 vCPUs");
    }
    child.destroy();
    check_left_alone(t, "domain_set_max_vcpus");
}

HYPERCALL_TEST(domain_set_vcpu_context) {
    // The registers a vCPU starts with, seen in the fault report of a vCPU that faults at once
    // (its first instruction reads beyond its RAM).
    ScopedChild child;
    if (child.build(t, {.name = "ctl-context"})) {
        lamina_vcpu_context context = protected_context(ChildDomain::stage2_access_gpa());
        u64* regs = &context.regs.rax;
        for (u64 i = 0; i < 16; ++i) regs[i] = 0x1000 + i * 0x111;  // RIP and RFLAGS follow
        context.regs.rflags = kRflagsReserved | 0x1 | 0x40;         // CF and ZF, which any guest may set
        t.returns(lamina_hc_domain_set_vcpu_context(child.id(), 0, gpa_of(&context)), 0,
                  "domain_set_vcpu_context: a protected-mode context replaces the one before");
        lamina_fault_report report{};
        if (child.start() == 0 && child.wait_for_state(LAMINA_DOMAIN_SHUTTING_DOWN) &&
            lamina_hc_domain_get_fault_report(child.id(), gpa_of(&report)) == 0) {
            t.check(report.regs.rip == context.regs.rip, "domain_set_vcpu_context: the vCPU starts at its RIP",
                    "rip {:#x}", report.regs.rip);
            t.check(static_cast<u32>(report.regs.rsp) == context.regs.rsp &&
                        static_cast<u32>(report.regs.rbx) == context.regs.rbx,
                    "domain_set_vcpu_context: ... with its RSP and RBX (the PVH start info)");
            u32 same = 0;
            const u64* started = &report.regs.rax;
            for (u32 i = 0; i < 16; ++i) same += static_cast<u32>(started[i]) == regs[i];
            t.check(same == 16, "domain_set_vcpu_context: the vCPU starts with every general register of the context",
                    "{} of 16", same);
            t.check(report.regs.rflags == context.regs.rflags,
                    "domain_set_vcpu_context: the vCPU starts with the context's RFLAGS", "rflags {:#x}",
                    report.regs.rflags);
        } else {
            t.error("the child that faults at once did not end with a fault report");
        }
    }
    child.destroy();

    // 64-bit mode, with the child's own page tables: registers as wide as only 64-bit mode has
    // them, and its first instruction reads beyond its RAM.
    ScopedChild wide;
    if (wide.build(t, {.name = "ctl-context-long64"})) {
        lamina_vcpu_context context = long64_context(ChildDomain::read_rax_gpa());
        u64* regs = &context.regs.rax;
        for (u64 i = 0; i < 16; ++i) regs[i] = 0xffff887766550000 + i * 0x111;  // canonical, for RSP
        context.regs.rax = kChildFrames * kFrame;  // the first frame past its RAM
        t.returns(lamina_hc_domain_set_vcpu_context(wide.id(), 0, gpa_of(&context)), 0,
                  "domain_set_vcpu_context: a LONG64 context replaces the one before");
        lamina_fault_report report{};
        if (wide.start() == 0 && wide.wait_for_state(LAMINA_DOMAIN_SHUTTING_DOWN) &&
            lamina_hc_domain_get_fault_report(wide.id(), gpa_of(&report)) == 0) {
            t.check(report.exit_reason == LAMINA_EXIT_STAGE2_FAULT && report.guest_physical == context.regs.rax &&
                        report.regs.rip == context.regs.rip,
                    "domain_set_vcpu_context: a LONG64 vCPU runs its first instruction through its page tables",
                    "exit {}, guest-physical {:#x}, rip {:#x}", report.exit_reason, report.guest_physical,
                    report.regs.rip);
            t.check(report.efer == (context.efer | kEferLma) && report.cr0 == context.cr0 &&
                        report.cr3 == context.cr3 && report.cr4 == context.cr4,
                    "domain_set_vcpu_context: ... in long mode (EFER.LMA), with the context's CR0, CR3 and CR4",
                    "efer {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x}", report.efer, report.cr0, report.cr3, report.cr4);
            t.check(str::compare_bytes(&report.regs, &context.regs, sizeof(context.regs)) == 0,
                    "domain_set_vcpu_context: ... with every 64-bit register and the RFLAGS of the context");
        } else {
            t.error("the LONG64 child that faults at once did not end with a fault report");
        }
    }
    wide.destroy();

    ScopedChild real;
    if (real.build(t, {.name = "ctl-context-real", .program = ChildProgram::RealMode}) && real.start() == 0) {
        t.check(wait_until([&] { return real.console_shows("real mode\n"); }),
                "domain_set_vcpu_context: a real-mode vCPU starts at CS:IP = RIP >> 4 : RIP & 0xf");
    }
    real.destroy();

    // The context's checks, on a BUILDING domain.
    ScopedDomain domain("ctl-context-checks");
    const auto set = [&](const lamina_vcpu_context& context) {
        return lamina_hc_domain_set_vcpu_context(domain.id(), 0, gpa_of(&context));
    };
    lamina_vcpu_context context = protected_context(0x1000);
    t.returns(set(context), 0, "domain_set_vcpu_context: a protected-mode context");
    context.mode = LAMINA_VCPU_MODE_REAL;
    t.returns(set(context), 0, "domain_set_vcpu_context: a real-mode context");
    context.regs.rip = 0x100000;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a real-mode RIP of 1 MiB or more is EINVAL");
    context = protected_context(kPast32);
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a protected-mode RIP above 32 bits is EINVAL");
    context = protected_context(0x1000);
    context.regs.rsp = kPast32;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a protected-mode RSP above 32 bits is EINVAL");
    context = protected_context(0x1000);
    context.regs.rbx = kPast32;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a protected-mode RBX above 32 bits is EINVAL");
    context = protected_context(0x1000);
    context.mode = LAMINA_VCPU_MODE_LONG64 + 1;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: an unknown mode is EINVAL");
    context.mode = 0xffffffff;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: mode 0xffffffff is EINVAL");
    context = protected_context(0x1000);
    context.flags = 1;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: flags other than 0 are EINVAL");
    // Outside LONG64: registers of 32 bits, no paging state.
    context = protected_context(0x1000);
    context.regs.rax = kPast32;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a protected-mode RAX above 32 bits is EINVAL");
    context = protected_context(0x1000);
    context.mode = LAMINA_VCPU_MODE_REAL;
    context.regs.r15 = kPast32;
    t.returns(set(context), kEinval, "domain_set_vcpu_context: a real-mode R15 above 32 bits is EINVAL");
    const Spoil outside_long64[] = {
        {"domain_set_vcpu_context: CR0 other than 0 outside LONG64 is EINVAL", [](auto& c) { c.cr0 = 1; }},
        {"domain_set_vcpu_context: CR3 other than 0 outside LONG64 is EINVAL", [](auto& c) { c.cr3 = 0x2000; }},
        {"domain_set_vcpu_context: CR4 other than 0 outside LONG64 is EINVAL", [](auto& c) { c.cr4 = kCr4Pae; }},
        {"domain_set_vcpu_context: EFER other than 0 outside LONG64 is EINVAL", [](auto& c) { c.efer = kEferLme; }},
        {"domain_set_vcpu_context: a real-mode context with CR0 set is EINVAL", [](auto& c) {
             c.mode = LAMINA_VCPU_MODE_REAL;
             c.cr0 = 1;
         }}};
    check_spoiled(t, protected_context(0x1000), outside_long64, set);
    // RFLAGS: bit 1 set, interrupts off, no trap, no virtual-8086 mode, IOPL 0, no reserved bit.
    const Spoil bad_rflags[] = {
        {"domain_set_vcpu_context: RFLAGS without bit 1 is EINVAL", [](auto& c) { c.regs.rflags = 0; }},
        {"domain_set_vcpu_context: RFLAGS.IF set is EINVAL", [](auto& c) { c.regs.rflags |= 1u << 9; }},
        {"domain_set_vcpu_context: RFLAGS.TF set is EINVAL", [](auto& c) { c.regs.rflags |= 1u << 8; }},
        {"domain_set_vcpu_context: RFLAGS.IOPL 3 is EINVAL", [](auto& c) { c.regs.rflags |= 3u << 12; }},
        {"domain_set_vcpu_context: RFLAGS.VM set is EINVAL", [](auto& c) { c.regs.rflags |= 1u << 17; }},
        {"domain_set_vcpu_context: RFLAGS' reserved bit 3 set is EINVAL", [](auto& c) { c.regs.rflags |= 1u << 3; }},
        {"domain_set_vcpu_context: RFLAGS' reserved bit 22 set is EINVAL", [](auto& c) { c.regs.rflags |= 1u << 22; }}};
    check_spoiled(t, protected_context(0x1000), bad_rflags, set);
    context = protected_context(0x1000);
    context.regs.rflags = kRflagsReserved | 0x8d5 | (1u << 10) | (1u << 18) | (1u << 21);  // status, DF, AC, ID
    t.returns(set(context), 0, "domain_set_vcpu_context: RFLAGS with the status flags, DF, AC and ID");

    context = long64_context(0x1000);
    t.returns(set(context), 0, "domain_set_vcpu_context: a LONG64 context is taken");
    context.regs.rip = 0xffffffff80001000;
    for (u64* reg = &context.regs.rax; reg != &context.regs.rip; ++reg) *reg = ~u64{0};
    t.returns(set(context), 0, "domain_set_vcpu_context: LONG64 takes a canonical upper-half RIP and 64-bit registers");
    const Spoil bad_long64[] = {
        {"domain_set_vcpu_context: LONG64 with a RIP that is not canonical is EINVAL",
         [](auto& c) { c.regs.rip = u64{1} << 47; }},
        {"domain_set_vcpu_context: LONG64 without CR0.PG is EINVAL", [](auto& c) { c.cr0 &= ~kCr0Pg; }},
        {"domain_set_vcpu_context: LONG64 without CR0.PE is EINVAL", [](auto& c) { c.cr0 &= ~u64{1}; }},
        {"domain_set_vcpu_context: LONG64 with CR0.NW but not CD is EINVAL", [](auto& c) { c.cr0 |= 1u << 29; }},
        {"domain_set_vcpu_context: LONG64 with a reserved CR0 bit is EINVAL", [](auto& c) { c.cr0 |= 1u << 6; }},
        {"domain_set_vcpu_context: LONG64 without CR4.PAE is EINVAL", [](auto& c) { c.cr4 &= ~kCr4Pae; }},
        {"domain_set_vcpu_context: LONG64 with CR4.OSXSAVE (the guest's to turn on) is EINVAL",
         [](auto& c) { c.cr4 |= 1u << 18; }},
        {"domain_set_vcpu_context: LONG64 with CR4.LA57 is EINVAL", [](auto& c) { c.cr4 |= 1u << 12; }},
        {"domain_set_vcpu_context: LONG64 with CR4.VMXE is EINVAL", [](auto& c) { c.cr4 |= 1u << 13; }},
        {"domain_set_vcpu_context: LONG64 without EFER.LME is EINVAL", [](auto& c) { c.efer = kEferNxe; }},
        {"domain_set_vcpu_context: LONG64 with EFER.SVME is EINVAL", [](auto& c) { c.efer |= 1u << 12; }},
        {"domain_set_vcpu_context: LONG64 with a CR3 past any MAXPHYADDR is EINVAL",
         [](auto& c) { c.cr3 |= u64{1} << 52; }},
        {"domain_set_vcpu_context: LONG64 with a CR3 not page-aligned is EINVAL", [](auto& c) { c.cr3 |= 0x800; }}};
    check_spoiled(t, long64_context(0x1000), bad_long64, set);
    context = long64_context(0x1000);
    context.cr0 |= (1u << 30) | (1u << 29);  // CD and NW
    context.cr3 |= 0x18;                     // PWT, PCD
    context.efer |= 1;                       // SCE
    t.returns(set(context), 0, "domain_set_vcpu_context: LONG64 with CR0.CD and NW, CR3.PWT and PCD, EFER.SCE");

    context = protected_context(0x1000);
    t.returns(lamina_hc_domain_set_vcpu_context(domain.id(), 1, gpa_of(&context)), kEinval,
              "domain_set_vcpu_context: a vCPU past max_vcpus is EINVAL");
    t.returns(lamina_hc_domain_set_vcpu_context(domain.id(), 0xffffffff, gpa_of(&context)), kEinval,
              "domain_set_vcpu_context: vCPU 0xffffffff is EINVAL");
    t.returns(lamina_hc_domain_set_vcpu_context(domain.id(), kPast32, gpa_of(&context)), kEinval,
              "domain_set_vcpu_context: a vCPU wider than 32 bits is EINVAL");
    check_bad_buffers(t, "domain_set_vcpu_context", sizeof(lamina_vcpu_context),
                      [&](u64 gpa) { return lamina_hc_domain_set_vcpu_context(domain.id(), 0, gpa); });
    {
        const StraddlingBuffer buffer(sizeof(lamina_vcpu_context));
        buffer.as<lamina_vcpu_context>() = protected_context(0x1000);
        t.returns(lamina_hc_domain_set_vcpu_context(domain.id(), 0, buffer.gpa()), 0,
                  "domain_set_vcpu_context: a context at an odd address across a page");
    }
    check_domain_ids(t, "domain_set_vcpu_context", domain.id(), true,
                     [&](u64 domid) { return lamina_hc_domain_set_vcpu_context(domid, 0, gpa_of(&context)); });
    domain.destroy();

    ScopedChild running;
    if (running.build(t, {.name = "ctl-context-running", .program = ChildProgram::Halt}) && running.start() == 0) {
        context = protected_context(0x1000);
        t.returns(lamina_hc_domain_set_vcpu_context(running.id(), 0, gpa_of(&context)), kEbusy,
                  "domain_set_vcpu_context: a domain that is not BUILDING is EBUSY");
    }
    running.destroy();
    check_left_alone(t, "domain_set_vcpu_context");
}

HYPERCALL_TEST(domain_map_frames) {
    ScopedDomain domain("ctl-map");
    if (!populate(t, domain, 16)) return;
    auto* first = reinterpret_cast<volatile u32*>(kTestWindowGfn * kFrame);
    auto* second = reinterpret_cast<volatile u32*>((kTestWindowGfn + 64) * kFrame);
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 16, kTestWindowGfn), 0,
              "domain_map_frames: 16 frames of a domain");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 16, kTestWindowGfn + 64), 0,
              "domain_map_frames: the same frames a second time, elsewhere");
    first[1024 * 5 + 3] = 0x600df00d;
    t.check(second[1024 * 5 + 3] == 0x600df00d, "domain_map_frames: both mappings are the domain's one memory");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 1, kTestWindowGfn + 15), kEexist,
              "domain_map_frames: over a mapping made before is EEXIST");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 0, kTestWindowGfn + 32), kEinval,
              "domain_map_frames: count 0 is EINVAL");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 8, 9, kTestWindowGfn + 32), kEinval,
              "domain_map_frames: frames past the domain's RAM are EINVAL");
    t.returns(lamina_hc_domain_map_frames(domain.id(), ~u64{0}, 2, kTestWindowGfn + 32), kEinval,
              "domain_map_frames: a range of the domain's frames that wraps is EINVAL");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 1, own_gfn()), kEinval,
              "domain_map_frames: over the caller's own RAM is EINVAL");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 2, ~u64{0}), kEinval,
              "domain_map_frames: a range of the caller's frames that wraps is EINVAL");
    t.returns(lamina_hc_domain_map_frames(domain.id(), 0, 1, u64{1} << 40), kEinval,
              "domain_map_frames: beyond the caller's guest-physical space is EINVAL");

    // The caller's table of mappings has a limit.
    u64 made = 0;
    i64 result = 0;
    while (made < 1024 && (result = lamina_hc_domain_map_frames(domain.id(), 0, 1, kTestWindowGfn + 128 + made)) == 0)
        ++made;
    t.check(result == kEnospc, "domain_map_frames: once the caller's mappings are at the host's limit, ENOSPC",
            "{} after {} mappings", lamina_errno_name(result), made);
    t.note("domain_map_frames: ENOSPC after {} more mappings of one frame", made);
    lamina_hc_domain_unmap_frames(kTestWindowGfn + 128, made);

    check_domain_ids(t, "domain_map_frames", domain.id(), true,
                     [](u64 domid) { return lamina_hc_domain_map_frames(domid, 0, 1, kTestWindowGfn + 32); });
    lamina_hc_domain_unmap_frames(kTestWindowGfn, 128);
    t.returns(domain.destroy(), 0, "domain_map_frames: the domain is destroyed once unmapped");
    check_left_alone(t, "domain_map_frames");
}

HYPERCALL_TEST(domain_unmap_frames) {
    ScopedDomain domain("ctl-unmap");
    if (!populate(t, domain, 16)) return;
    const u64 w = kTestWindowGfn;
    const auto map = [&](u64 first, u64 count, u64 local) {
        return lamina_hc_domain_map_frames(domain.id(), first, count, local) == 0;
    };
    if (!t.check(map(0, 4, w) && map(4, 4, w + 4) && map(8, 8, w + 16), "domain_unmap_frames: (three mappings)"))
        return;
    t.returns(lamina_hc_domain_unmap_frames(w + 1, 2), kEinval,
              "domain_unmap_frames: a range inside a mapping is EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(w, 2), kEinval,
              "domain_unmap_frames: a range that cuts a mapping is EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(w + 8, 8), kEinval,
              "domain_unmap_frames: a range with no mapping is EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(w, 0), kEinval, "domain_unmap_frames: count 0 is EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(~u64{0}, 2), kEinval, "domain_unmap_frames: a range that wraps is EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(own_gfn(), 1), kEinval,
              "domain_unmap_frames: the caller's own RAM is EINVAL");
    t.returns(lamina_hc_domain_destroy(domain.id()), kEbusy, "domain_unmap_frames: (while mapped, no destroy)");
    t.returns(lamina_hc_domain_unmap_frames(w, 8), 0, "domain_unmap_frames: two whole mappings in one range");
    t.check(map(0, 8, w), "domain_unmap_frames: ... leaves their frames free for a new mapping");
    t.returns(lamina_hc_domain_unmap_frames(w, 8), 0, "domain_unmap_frames: that one again");
    t.returns(lamina_hc_domain_unmap_frames(w, 8), kEinval, "domain_unmap_frames: frames unmapped already are EINVAL");
    t.returns(lamina_hc_domain_unmap_frames(w + 12, 16), 0,
              "domain_unmap_frames: a range wider than the whole mapping it holds");
    t.returns(domain.destroy(), 0, "domain_unmap_frames: once unmapped, the domain can be destroyed");
    check_left_alone(t, "domain_unmap_frames");
}

HYPERCALL_TEST(domain_get_fault_report) {
    const bool vmx = host_info().virtualization == LAMINA_HOST_VMX;
    take_pending(domain_died_port());
    ScopedChild triple;
    if (triple.build(t, {.name = "ctl-fault-triple", .program = ChildProgram::TripleFault, .message = "faulting\n"}) &&
        triple.start() == 0) {
        t.check(triple.wait_for_state(LAMINA_DOMAIN_SHUTTING_DOWN),
                "domain_get_fault_report: a triple fault ends the domain");
        const lamina_domain_info info = triple.info();
        t.check(info.flags == LAMINA_DOMAIN_FAULTED && info.shutdown_reason == LAMINA_SHUTDOWN_CRASH,
                "domain_get_fault_report: domain_get_info says FAULTED, CRASH", "flags {:#x}, reason {}", info.flags,
                info.shutdown_reason);
        t.check(take_pending(domain_died_port()),
                "domain_get_fault_report: the control domain got LAMINA_VIRQ_DOMAIN_DIED");
        t.check(triple.console_shows("faulting\n"), "domain_get_fault_report: what it printed before is in its ring");
        lamina_fault_report report{};
        t.returns(lamina_hc_domain_get_fault_report(triple.id(), gpa_of(&report)), 0,
                  "domain_get_fault_report: of a domain a triple fault ended");
        t.check(report.vcpu == 0 && report.exit_reason == LAMINA_EXIT_TRIPLE_FAULT &&
                    report.hardware_code == (vmx ? 2u : 0x7fu) && str::starts_with(report.reason, "triple fault"),
                "domain_get_fault_report: vCPU 0, TRIPLE_FAULT, the VMX or SVM exit code, \"triple fault\"",
                "vcpu {}, exit {}, code {:#x}, \"{}\"", report.vcpu, report.exit_reason, report.hardware_code,
                report.reason);
        t.check((report.cr0 & 1) && !(report.cr0 & 0x80000000) && !(report.efer & (1u << 8)) && report.vector == 0 &&
                    report.pad0 == 0,
                "domain_get_fault_report: protected mode, paging and long mode off, no exception vector");

        check_bad_buffers(t, "domain_get_fault_report", sizeof(lamina_fault_report),
                          [&](u64 gpa) { return lamina_hc_domain_get_fault_report(triple.id(), gpa); });
        check_straddling_out<lamina_fault_report>(
            t, "domain_get_fault_report", [&](u64 gpa) { return lamina_hc_domain_get_fault_report(triple.id(), gpa); });
        check_domain_ids(t, "domain_get_fault_report", triple.id(), false, [](u64 domid) {
            lamina_fault_report ignored;
            return lamina_hc_domain_get_fault_report(domid, gpa_of(&ignored));
        });
    }
    triple.destroy();

    ScopedChild stage2;
    if (stage2.build(t, {.name = "ctl-fault-stage2", .program = ChildProgram::Stage2Fault}) && stage2.start() == 0 &&
        stage2.wait_for_state(LAMINA_DOMAIN_SHUTTING_DOWN)) {
        lamina_fault_report report{};
        t.returns(lamina_hc_domain_get_fault_report(stage2.id(), gpa_of(&report)), 0,
                  "domain_get_fault_report: of a domain that read beyond its RAM");
        t.check(report.exit_reason == LAMINA_EXIT_STAGE2_FAULT &&
                    report.guest_physical == CONFORMANCE_CHILD_FAULT_GPA &&
                    report.hardware_code == (vmx ? 48u : 0x400u),
                "domain_get_fault_report: STAGE2_FAULT at the address read, the EPT violation or NPF exit code",
                "exit {}, address {:#x}, code {:#x}", report.exit_reason, report.guest_physical, report.hardware_code);
        t.check(report.regs.rip == ChildDomain::stage2_access_gpa() && report.regs.rsi == CONFORMANCE_CHILD_FAULT_ESI,
                "domain_get_fault_report: RIP is the faulting read, the registers as it left them",
                "rip {:#x}, rsi {:#x}", report.regs.rip, report.regs.rsi);
        t.check(str::length_bounded(report.reason, sizeof(report.reason)) < sizeof(report.reason) &&
                    report.reason[0] != '\0',
                "domain_get_fault_report: the reason is a NUL-terminated line", "\"{}\"", report.reason);
    }
    stage2.destroy();

    // No fault ended these.
    lamina_fault_report report;
    t.returns(lamina_hc_domain_get_fault_report(bystander_id(), gpa_of(&report)), kEnoent,
              "domain_get_fault_report: a running domain is ENOENT");
    t.returns(lamina_hc_domain_get_fault_report(LAMINA_DOMID_CONTROL, gpa_of(&report)), kEnoent,
              "domain_get_fault_report: the caller itself is ENOENT");
    ScopedDomain building("ctl-fault-none");
    t.returns(lamina_hc_domain_get_fault_report(building.id(), gpa_of(&report)), kEnoent,
              "domain_get_fault_report: a BUILDING domain is ENOENT");
    building.destroy();
    ScopedChild crashed;
    if (crashed.build(t, {.name = "ctl-fault-said-crash", .program = ChildProgram::Halt}) && crashed.start() == 0 &&
        lamina_hc_domain_shutdown(crashed.id(), LAMINA_SHUTDOWN_CRASH) == 0) {
        t.returns(lamina_hc_domain_get_fault_report(crashed.id(), gpa_of(&report)), kEnoent,
                  "domain_get_fault_report: a domain shut down as CRASH by the control domain is ENOENT");
        t.check(!(crashed.info().flags & LAMINA_DOMAIN_FAULTED), "domain_get_fault_report: ... and it is not FAULTED");
    }
    crashed.destroy();
    take_pending(domain_died_port());
    check_left_alone(t, "domain_get_fault_report");
}

HYPERCALL_TEST(domain_set_console) {
    ScopedChild child;
    const char* lines = "console: one\nconsole: two\n";
    if (child.build(t, {.name = "ctl-console", .message = lines})) {
        take_pending(child.console_port());
        t.check(child.ring().out_prod == 0, "domain_set_console: the ring is empty before the domain runs");
        if (child.start() == 0) {
            t.check(wait_until([&] { return child.console_shows(lines); }),
                    "domain_set_console: what the domain writes to port 0xE9 is appended to the ring");
            const volatile lamina_console_ring& ring = child.ring();
            t.check(ring.out_cons == 0 && ring.in_prod == 0 && ring.in_cons == 0,
                    "domain_set_console: ... and only out_prod moves");
            t.check(take_pending(child.console_port()),
                    "domain_set_console: the port is signalled when a line arrives");
        }
    }
    child.destroy();

    ScopedChild partial;
    if (partial.build(t, {.name = "ctl-console-partial", .program = ChildProgram::Halt, .message = "prompt> "}) &&
        partial.start() == 0 && wait_until([&] { return partial.console_shows("prompt> "); })) {
        sleep_ns(5 * kMs);
        t.check(!take_pending(partial.console_port()),
                "domain_set_console: output that ends with no newline (a prompt) is not signalled: the consumer "
                "reads it on its own");
    }
    partial.destroy();

    // More than the ring holds, with nobody consuming: the ring fills, the rest is dropped.
    static char flood[LAMINA_CONSOLE_RING_OUT_SIZE + 1000];
    for (usize i = 0; i + 1 < sizeof(flood); ++i) flood[i] = static_cast<char>('a' + i % 26);
    ScopedChild full;
    if (full.build(t, {.name = "ctl-console-full", .program = ChildProgram::Halt, .message = flood}) &&
        full.start() == 0) {
        const volatile lamina_console_ring& ring = full.ring();
        const bool filled = wait_until([&] { return ring.out_prod == LAMINA_CONSOLE_RING_OUT_SIZE; });
        sleep_ns(20 * kMs);
        bool prefix = true;
        for (usize i = 0; i < LAMINA_CONSOLE_RING_OUT_SIZE; ++i) prefix = prefix && ring.out[i] == flood[i];
        t.check(filled && ring.out_prod == LAMINA_CONSOLE_RING_OUT_SIZE && prefix,
                "domain_set_console: a full ring keeps what came first and never overruns its consumer", "out_prod {}",
                ring.out_prod);
        // No newline in the flood: the one event is the ring's filling; the bytes dropped after
        // it make none.
        t.check(take_pending(full.console_port()) && !take_pending(full.console_port()),
                "domain_set_console: the port is signalled when the ring becomes full");
    }
    full.destroy();

    // The refusals, on a BUILDING domain with 4 frames of RAM.
    ScopedDomain domain("ctl-console-checks");
    if (!populate(t, domain, 4)) return;
    const i64 port = lamina_hc_evtchn_alloc_unbound(domain.id());
    const i64 elsewhere = lamina_hc_evtchn_alloc_unbound(bystander_id());
    if (!t.check(port > 0 && elsewhere > 0, "domain_set_console: (ports offered to it and to the bystander)")) return;
    t.returns(lamina_hc_domain_set_console(domain.id(), 4, port), kEinval,
              "domain_set_console: a frame that is not the domain's RAM is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), ~u64{0}, port), kEinval,
              "domain_set_console: frame 0xffffffffffffffff is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, 0), kEinval, "domain_set_console: port 0 is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, LAMINA_EVTCHN_PORTS), kEinval,
              "domain_set_console: a port past LAMINA_EVTCHN_PORTS is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, LAMINA_EVTCHN_PORTS - 1), kEinval,
              "domain_set_console: a closed port is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, elsewhere), kEinval,
              "domain_set_console: a port offered to another domain is EINVAL");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, kPast32 | port), kEinval,
              "domain_set_console: a port wider than 32 bits is EINVAL");
    lamina_evtchn_status status{};
    lamina_hc_evtchn_status(port, gpa_of(&status));
    t.check(status.state == LAMINA_EVTCHN_UNBOUND, "domain_set_console: the refusals left the port unbound");
    check_domain_ids(t, "domain_set_console", domain.id(), true,
                     [&](u64 domid) { return lamina_hc_domain_set_console(domid, 3, port); });
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, port), 0, "domain_set_console: its last frame and the port");
    t.returns(lamina_hc_domain_set_console(domain.id(), 3, port), kEinval,
              "domain_set_console: the same port again (no longer unbound) is EINVAL");
    lamina_hc_evtchn_close(port);
    lamina_hc_evtchn_close(elsewhere);
    domain.destroy();
    check_left_alone(t, "domain_set_console");
}

HYPERCALL_TEST(domain_shutdown) {
    ScopedChild running;
    if (running.build(t, {.name = "ctl-shutdown"}) && running.start() == 0 && running.wait_for_count(0)) {
        t.returns(lamina_hc_domain_shutdown(running.id(), LAMINA_SHUTDOWN_CRASH + 1), kEinval,
                  "domain_shutdown: an unknown reason is EINVAL");
        t.returns(lamina_hc_domain_shutdown(running.id(), 0xffffffff), kEinval,
                  "domain_shutdown: reason 0xffffffff is EINVAL");
        t.returns(lamina_hc_domain_shutdown(running.id(), kPast32), kEinval,
                  "domain_shutdown: a reason wider than 32 bits is EINVAL");
        check_domain_ids(t, "domain_shutdown", running.id(), true,
                         [](u64 domid) { return lamina_hc_domain_shutdown(domid, LAMINA_SHUTDOWN_POWEROFF); });
        const u32 count = running.counter();
        t.check(running.info().state == LAMINA_DOMAIN_RUNNING && running.wait_for_count(count),
                "domain_shutdown: the refused calls left it running");
        take_pending(domain_died_port());
        t.returns(lamina_hc_domain_shutdown(running.id(), LAMINA_SHUTDOWN_POWEROFF), 0,
                  "domain_shutdown: a running domain, POWEROFF");
        const lamina_domain_info info = running.info();
        t.check(info.state == LAMINA_DOMAIN_SHUTTING_DOWN && info.shutdown_reason == LAMINA_SHUTDOWN_POWEROFF &&
                    info.flags == 0,
                "domain_shutdown: domain_get_info shows it SHUTTING_DOWN, POWEROFF, not FAULTED",
                "state {}, reason {}, flags {:#x}", info.state, info.shutdown_reason, info.flags);
        const u32 stopped = running.counter();
        sleep_ns(20 * kMs);
        t.check(running.counter() == stopped, "domain_shutdown: its vCPU runs no more");
        t.check(take_pending(domain_died_port()), "domain_shutdown: the control domain got LAMINA_VIRQ_DOMAIN_DIED");
        t.returns(lamina_hc_domain_shutdown(running.id(), LAMINA_SHUTDOWN_POWEROFF), kEinval,
                  "domain_shutdown: a domain shut down already is EINVAL");
        t.check(running.info().shutdown_reason == LAMINA_SHUTDOWN_POWEROFF, "domain_shutdown: ... its reason stays");
    }
    running.destroy();

    ScopedChild paused;
    if (paused.build(t, {.name = "ctl-shutdown-paused"}) && paused.start() == 0 &&
        lamina_hc_domain_pause(paused.id()) == 0) {
        t.returns(lamina_hc_domain_shutdown(paused.id(), LAMINA_SHUTDOWN_REBOOT), 0,
                  "domain_shutdown: a paused domain, REBOOT");
        const lamina_domain_info info = paused.info();
        t.check(info.state == LAMINA_DOMAIN_SHUTTING_DOWN && info.shutdown_reason == LAMINA_SHUTDOWN_REBOOT,
                "domain_shutdown: ... it is SHUTTING_DOWN, REBOOT");
    }
    paused.destroy();

    ScopedChild halted;
    if (halted.build(t, {.name = "ctl-shutdown-crash", .program = ChildProgram::Halt}) && halted.start() == 0) {
        t.returns(lamina_hc_domain_shutdown(halted.id(), LAMINA_SHUTDOWN_CRASH), 0, "domain_shutdown: CRASH");
        const lamina_domain_info info = halted.info();
        t.check(info.state == LAMINA_DOMAIN_SHUTTING_DOWN && info.shutdown_reason == LAMINA_SHUTDOWN_CRASH &&
                    !(info.flags & LAMINA_DOMAIN_FAULTED),
                "domain_shutdown: ... it is SHUTTING_DOWN, CRASH, and not FAULTED");
    }
    halted.destroy();

    ScopedDomain building("ctl-shutdown-building");
    t.returns(lamina_hc_domain_shutdown(building.id(), LAMINA_SHUTDOWN_POWEROFF), kEinval,
              "domain_shutdown: a BUILDING domain is EINVAL");
    t.check(domain_info(building.id()).state == LAMINA_DOMAIN_BUILDING, "domain_shutdown: ... and it stays BUILDING");
    building.destroy();
    take_pending(domain_died_port());
    check_left_alone(t, "domain_shutdown");
}

TEST_CASE(user_mode, "domain control from CPL 3 is EPERM") {
    const u32 calls[] = {LAMINA_HYPERCALL_domain_create,
                         LAMINA_HYPERCALL_domain_destroy,
                         LAMINA_HYPERCALL_domain_pause,
                         LAMINA_HYPERCALL_domain_unpause,
                         LAMINA_HYPERCALL_domain_get_info,
                         LAMINA_HYPERCALL_domain_list,
                         LAMINA_HYPERCALL_domain_set_max_memory,
                         LAMINA_HYPERCALL_domain_populate_memory,
                         LAMINA_HYPERCALL_domain_set_max_vcpus,
                         LAMINA_HYPERCALL_domain_set_vcpu_context,
                         LAMINA_HYPERCALL_domain_map_frames,
                         LAMINA_HYPERCALL_domain_unmap_frames,
                         LAMINA_HYPERCALL_domain_get_fault_report,
                         LAMINA_HYPERCALL_domain_set_console,
                         LAMINA_HYPERCALL_domain_shutdown};
    check_user_mode_refused(t, calls, array_size(calls));
}

TEST_CASE(tear_down, "tear-down: the host as the kernel found it") { tear_down_control_kernel(t); }
