// The host as the control domain sees it: its console (console_write, console_read), what the
// host has (host_info), the hypervisor's log (log_read), the exits of domains (domain_exit_stats)
// and the credit scheduler's parameters (sched_*). Each answer is held against what the kernel
// can see for itself: CPUID, pages a child takes and gives back, a log line a call of its own
// caused, the exits a child's program makes, the CPU time a capped child gets. Each call is also
// refused with the documented error for every kind of wrong argument, and takes buffers at odd
// addresses across pages. After each case every page and port is back and the bystander domain
// is as it was. Booted in Dom0's place (CONTROL: linked at 16 MiB).
#include <tests/conformance/child_domain.h>

#include <lamina/string.h>
#include <tests/guests/guest.h>

CONFORMANCE_KERNEL("control-host", Functional);

using namespace conformance;

namespace {

constexpr u8 kFill = 0xa5;

// The host's online CPUs, as a CPU bitmap (the host numbers them from 0).
void online_cpus(u64 (&set)[LAMINA_MAX_HOST_CPUS / 64]) {
    const u32 cpus = host_info().cpus;
    for (u32 word = 0; word < LAMINA_MAX_HOST_CPUS / 64; ++word) {
        const u32 below = cpus > word * 64 ? cpus - word * 64 : 0;
        set[word] = below >= 64 ? ~u64{0} : (u64{1} << below) - 1;
    }
}

bool same_set(const u64 (&a)[LAMINA_MAX_HOST_CPUS / 64], const u64 (&b)[LAMINA_MAX_HOST_CPUS / 64]) {
    return str::compare_bytes(a, b, sizeof(a)) == 0;
}

// The share of one CPU a running child gets over `ns` while this kernel sleeps, in percent.
u64 cpu_share(const ChildDomain& child, u64 ns) {
    const u64 start = now_ns(), before = child.info().cpu_time_ns;
    sleep_ns(ns);
    const u64 ran = child.info().cpu_time_ns - before, elapsed = now_ns() - start;
    return ran * 100 / elapsed;
}

}  // namespace

TEST_CASE(set_up, "set-up: events, a first child, the bystander") { set_up_control_kernel(t); }

HYPERCALL_TEST(console_write) {
    const char line[] = "# console_write: a line of this kernel's own\n";
    t.returns(lamina_hc_console_write(gpa_of(line), sizeof(line) - 1), 0, "console_write: a line");
    t.returns(lamina_hc_console_write(gpa_of(line), 0), 0, "console_write: length 0");
    static char most[LAMINA_CONSOLE_IO_MAX];
    str::fill_bytes(most, '.', sizeof(most));
    const char head[] = "# console_write: LAMINA_CONSOLE_IO_MAX bytes ";
    str::copy_bytes(most, head, sizeof(head) - 1);
    most[sizeof(most) - 1] = '\n';
    t.returns(lamina_hc_console_write(gpa_of(most), sizeof(most)), 0, "console_write: LAMINA_CONSOLE_IO_MAX bytes");
    t.returns(lamina_hc_console_write(gpa_of(most), sizeof(most) + 1), kE2big,
              "console_write: one byte more than LAMINA_CONSOLE_IO_MAX is E2BIG");
    t.returns(lamina_hc_console_write(gpa_of(most), ~u64{0}), kE2big, "console_write: length 2^64 - 1 is E2BIG");
    check_bad_buffers(t, "console_write", 16, [](u64 gpa) { return lamina_hc_console_write(gpa, 16); });
    const char crossing[] = "# console_write: text across a page\n";
    const StraddlingBuffer buffer(sizeof(crossing) - 1);
    str::copy_bytes(buffer.data(), crossing, sizeof(crossing) - 1);
    t.returns(lamina_hc_console_write(buffer.gpa(), sizeof(crossing) - 1), 0,
              "console_write: text at an odd address across a page");
    t.check(buffer.untouched_around(), "console_write: ... and nothing around it is written");
    check_left_alone(t, "console_write");
}

namespace {

// What scripts/conformance.py types at this kernel's prompt (CONTROL_KERNEL_INPUT there), and what
// console_read must give of it: three Ctrl-A switch the input to the hypervisor's own console
// (whose `c` key answers there) and three switch it back, while fewer go through.
constexpr char kPrompt[] = "lamina> ";  // emu_run.py types a line of its input per shell prompt
constexpr char kTypedForDom0[] = "typed at the prompt: <\x01\x01> end\n";
constexpr usize kReadPiece = 5;  // console_read takes the line a few bytes at a time

// Until the typed line's newline, or 30 s: console_read `kReadPiece` bytes at a time into a
// buffer at an odd address across a page. Whether every answer was 0 to `kReadPiece` and nothing
// around the buffer was written.
bool read_typed_line(char* line, usize capacity, usize& length) {
    const StraddlingBuffer piece(kReadPiece);
    bool answers_fit = true;
    length = 0;
    wait_until([&] {
        const i64 got = lamina_hc_console_read(piece.gpa(), kReadPiece);
        if (got < 0 || got > static_cast<i64>(kReadPiece) || length + static_cast<usize>(got) > capacity) {
            answers_fit = false;
            return true;
        }
        str::copy_bytes(line + length, piece.data(), static_cast<usize>(got));
        length += static_cast<usize>(got);
        return length > 0 && line[length - 1] == '\n';
    }, 30000 * kMs);
    return answers_fit && piece.untouched_around();
}

void check_typed_input(Test& t) {
    const i64 port = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_CONSOLE, 0);
    if (!t.check(port > 0, "console_read: LAMINA_VIRQ_CONSOLE is bound", "evtchn_bind_virq returned {}", port)) return;
    take_pending(static_cast<u32>(port));
    lamina_hc_console_write(gpa_of(kPrompt), sizeof(kPrompt) - 1);
    char line[128];
    usize length = 0;
    const bool fit = read_typed_line(line, sizeof(line), length);
    lamina_hc_console_write(gpa_of("\n"), 1);
    t.check(fit, "console_read: typed input comes a few bytes at a time, into a buffer across a page, nothing "
                 "around it written");
    t.check(length == sizeof(kTypedForDom0) - 1 && str::compare_bytes(line, kTypedForDom0, length) == 0,
            "console_read: the typed line, less what went to the hypervisor's console (Ctrl-A x3)",
            "{} bytes", length);
    t.check(take_pending(static_cast<u32>(port)), "console_read: typed input signals LAMINA_VIRQ_CONSOLE");
    char after[8];
    t.returns(lamina_hc_console_read(gpa_of(after), sizeof(after)), 0, "console_read: then nothing more");
    t.returns(lamina_hc_evtchn_close(static_cast<u32>(port)), 0, "console_read: LAMINA_VIRQ_CONSOLE's port closes");
}

}  // namespace

HYPERCALL_TEST(console_read) {
    // No input until this kernel prompts for it.
    static char buffer[LAMINA_CONSOLE_IO_MAX + 1];
    str::fill_bytes(buffer, kFill, sizeof(buffer));
    t.returns(lamina_hc_console_read(gpa_of(buffer), 64), 0, "console_read: with no input, 0 bytes");
    t.returns(lamina_hc_console_read(gpa_of(buffer), LAMINA_CONSOLE_IO_MAX), 0,
              "console_read: LAMINA_CONSOLE_IO_MAX bytes at most: with no input, 0");
    t.returns(lamina_hc_console_read(gpa_of(buffer), 0), 0, "console_read: length 0");
    t.check(filled_with(buffer, sizeof(buffer), kFill), "console_read: ... and the buffer is untouched");
    t.returns(lamina_hc_console_read(gpa_of(buffer), LAMINA_CONSOLE_IO_MAX + 1), kE2big,
              "console_read: one byte more than LAMINA_CONSOLE_IO_MAX is E2BIG");
    t.returns(lamina_hc_console_read(gpa_of(buffer), ~u64{0}), kE2big, "console_read: length 2^64 - 1 is E2BIG");
    check_bad_buffers(t, "console_read", 16, [](u64 gpa) { return lamina_hc_console_read(gpa, 16); });
    const StraddlingBuffer crossing(16);
    t.returns(lamina_hc_console_read(crossing.gpa(), 16), 0, "console_read: a buffer at an odd address across a page");
    t.check(crossing.untouched(), "console_read: ... and with no input nothing is written");
    check_typed_input(t);
    check_left_alone(t, "console_read");
}

HYPERCALL_TEST(host_info) {
    lamina_host_info info{};
    t.returns(lamina_hc_host_info(gpa_of(&info)), 0, "host_info");
    t.returns(info.abi_version, LAMINA_ABI_VERSION, "host_info: abi_version is LAMINA_ABI_VERSION");
    const guest::Cpuid vendor = guest::cpuid(0);
    const bool intel = vendor.ebx == 0x756e6547, amd = vendor.ebx == 0x68747541;  // "Genu", "Auth"
    t.check((info.virtualization == LAMINA_HOST_VMX && !amd) || (info.virtualization == LAMINA_HOST_SVM && !intel),
            "host_info: virtualization is VMX or SVM, the CPU vendor's", "virtualization {}", info.virtualization);
    t.check(!(info.features & ~(LAMINA_HOST_IOMMU | LAMINA_HOST_X2APIC)),
            "host_info: no feature bit this ABI does not define", "features {:#x}", info.features);
    t.check(info.cpus >= 1 && info.cpus <= LAMINA_MAX_HOST_CPUS, "host_info: 1 to LAMINA_MAX_HOST_CPUS CPUs", "{}",
            info.cpus);
    t.check(info.tsc_khz >= 1000, "host_info: a TSC of 1 MHz or more", "{} kHz", info.tsc_khz);
    lamina_domain_info domains[LAMINA_DOMAIN_LIST_MAX];
    const i64 count = lamina_hc_domain_list(0, gpa_of(domains), LAMINA_DOMAIN_LIST_MAX);
    t.check(count >= 2 && info.max_domains >= count && info.max_domains <= LAMINA_DOMID_MAX + 1,
            "host_info: max_domains allows the domains there are", "max_domains {}, {} domains", info.max_domains,
            count);
    t.check(info.max_vcpus >= 1 && info.max_vcpus <= LAMINA_MAX_VCPUS, "host_info: max_vcpus is 1 to LAMINA_MAX_VCPUS",
            "{}", info.max_vcpus);
    t.check(info.pad0 == 0, "host_info: padding 0");
    t.check(info.free_pages > 0 && info.free_pages + domains[0].pages <= info.total_pages,
            "host_info: the free pages and the caller's fit in total_pages", "{} free, {} total", info.free_pages,
            info.total_pages);
    t.check(info.version[0] && str::length_bounded(info.version, sizeof(info.version)) < sizeof(info.version),
            "host_info: version is NUL-terminated text", "{}", info.version);
    char brand[LAMINA_HOST_CPU_BRAND_SIZE + 1] = {};
    if (guest::cpuid(0x80000000).eax >= 0x80000004) {
        for (u32 i = 0; i < 3; ++i) {
            const guest::Cpuid part = guest::cpuid(0x80000002 + i);
            const u32 words[] = {part.eax, part.ebx, part.ecx, part.edx};
            str::copy_bytes(brand + 16 * i, words, sizeof(words));
        }
    }
    t.check(str::length_bounded(info.cpu_brand, sizeof(info.cpu_brand)) < sizeof(info.cpu_brand) &&
                str::compare_n(info.cpu_brand, brand, sizeof(info.cpu_brand) - 1) == 0,
            "host_info: cpu_brand is CPUID 0x80000002-4's, NUL-terminated", "\"{}\", CPUID says \"{}\"", info.cpu_brand,
            brand);
    const u64 uptime = info.uptime_ns;
    sleep_ns(kMs);
    t.check(host_info().uptime_ns >= uptime + kMs, "host_info: uptime_ns moves with time");

    const u64 free_before = free_pages();
    ScopedChild child;
    if (child.build(t, {.name = "ctl-host-info"})) {
        t.check(free_pages() + kChildFrames <= free_before, "host_info: free_pages drops by a child's pages, at least",
                "{} free, {} before", free_pages(), free_before);
    }
    child.destroy();
    t.check(free_pages() == free_before, "host_info: free_pages is back once the child is destroyed");

    check_bad_buffers(t, "host_info", sizeof(lamina_host_info), [](u64 gpa) { return lamina_hc_host_info(gpa); });
    check_straddling_out<lamina_host_info>(
        t, "host_info", [](u64 gpa) { return lamina_hc_host_info(gpa); },
        [](lamina_host_info& record) { record.uptime_ns = 0; });
    check_left_alone(t, "host_info");
}

HYPERCALL_TEST(log_read) {
    static char buffer[LAMINA_LOG_READ_MAX + 16];
    const auto read = [&](u64* position, u64 length) {
        return lamina_hc_log_read(gpa_of(buffer), length, gpa_of(position));
    };
    u64 position = 0;
    const i64 first = read(&position, LAMINA_LOG_READ_MAX);
    t.check(first > 0 && position >= static_cast<u64>(first), "log_read: from 0, the log there is",
            "returned {}, position {}", first, position);
    while (read(&position, LAMINA_LOG_READ_MAX) > 0) {
    }
    const u64 end = position;
    t.returns(read(&position, 64), 0, "log_read: at the end, 0 bytes");
    t.check(position == end, "log_read: ... and the position stays");

    ScopedDomain marker("ctl-log-marker");
    const i64 fresh = read(&position, LAMINA_LOG_READ_MAX);
    buffer[fresh > 0 ? fresh : 0] = '\0';
    bool found = false;
    for (i64 i = 0; i < fresh && !found; ++i) found = str::starts_with(buffer + i, "(ctl-log-marker): created");
    t.check(found && position == end + static_cast<u64>(fresh),
            "log_read: a line logged since comes next, and the position moves past it");
    marker.destroy();

    // A stream: two short reads give what one longer read gives.
    char once[32], twice[32];
    u64 at = end;
    read(&at, 32);
    str::copy_bytes(once, buffer, 32);
    at = end;
    read(&at, 16);
    str::copy_bytes(twice, buffer, 16);
    read(&at, 16);
    str::copy_bytes(twice + 16, buffer, 16);
    t.check(str::compare_bytes(once, twice, 32) == 0 && at == end + 32,
            "log_read: two reads of 16 bytes are one of 32");

    str::fill_bytes(buffer, kFill, sizeof(buffer));
    at = end;
    t.returns(read(&at, 8), 8, "log_read: 8 bytes");
    t.check(filled_with(buffer + 8, sizeof(buffer) - 8, kFill), "log_read: ... and nothing past them is written");
    at = end;
    t.returns(read(&at, 0), 0, "log_read: length 0");
    t.check(at == end, "log_read: ... leaves the position");
    const u64 beyond = end + 4096;
    at = beyond;
    t.returns(read(&at, 64), 0, "log_read: from past the end, 0 bytes");
    t.note("log_read from past the end moved the position from {:#x} to {:#x}", beyond, at);

    at = end;
    t.returns(read(&at, LAMINA_LOG_READ_MAX + 1), kE2big, "log_read: one byte more than LAMINA_LOG_READ_MAX is E2BIG");
    t.returns(read(&at, ~u64{0}), kE2big, "log_read: length 2^64 - 1 is E2BIG");
    check_bad_buffers(t, "log_read (the buffer)", 64, [&](u64 gpa) {
        u64 from = end;
        return lamina_hc_log_read(gpa, 64, gpa_of(&from));
    });
    check_bad_buffers(t, "log_read (the position)", sizeof(u64),
                      [&](u64 gpa) { return lamina_hc_log_read(gpa_of(buffer), 64, gpa); });
    {
        const StraddlingBuffer crossing(sizeof(u64));
        str::copy_bytes(crossing.data(), &end, sizeof(end));
        t.returns(lamina_hc_log_read(gpa_of(buffer), 8, crossing.gpa()), 8,
                  "log_read: a position at an odd address across a page");
        u64 moved;
        str::copy_bytes(&moved, crossing.data(), sizeof(moved));
        t.check(moved == end + 8 && crossing.untouched_around(), "log_read: ... is read and advanced in place");
    }
    {
        const StraddlingBuffer crossing(64);
        at = end;
        t.returns(lamina_hc_log_read(crossing.gpa(), 64, gpa_of(&at)), 64,
                  "log_read: a buffer at an odd address across a page");
        t.check(str::compare_bytes(crossing.data(), once, 32) == 0 && crossing.untouched_around(),
                "log_read: ... holds the log, and nothing around it is written");
    }

    // More than the log holds, logged by creating and destroying domains until a read from a
    // position of before skips: what was overwritten is skipped.
    u64 now = end;
    while (read(&now, LAMINA_LOG_READ_MAX) > 0) {
    }
    const u64 overwritten = now;
    const auto skips = [&] {
        u64 probe = overwritten;
        return read(&probe, 1) == 1 && probe - 1 > overwritten;
    };
    for (u32 cycles = 0; cycles < 4096 && !skips(); ++cycles) {
        ScopedDomain filler("ctl-log-filler-abcdefghijklmnop");
    }
    while (read(&now, LAMINA_LOG_READ_MAX) > 0) {
    }
    at = overwritten;
    const i64 kept = read(&at, LAMINA_LOG_READ_MAX);
    t.check(kept > 0 && at == now && at - static_cast<u64>(kept) > overwritten,
            "log_read: from a position overwritten since, it skips to what the log still holds",
            "{} bytes, position {:#x}, the end {:#x}, asked from {:#x}", kept, at, now, overwritten);
    check_left_alone(t, "log_read");
}

HYPERCALL_TEST(domain_exit_stats) {
    const char* message = "exits\n";
    ScopedChild child;
    if (!child.build(t, {.name = "ctl-exits", .message = message})) return;
    lamina_exit_stats stats{};
    t.returns(lamina_hc_domain_exit_stats(child.id(), gpa_of(&stats)), 0, "domain_exit_stats: of a BUILDING domain");
    lamina_exit_stats none{};
    none.reason_count = LAMINA_EXIT_REASON_COUNT;
    t.check(str::compare_bytes(&stats, &none, sizeof(stats)) == 0,
            "domain_exit_stats: ... no exits yet, reason_count LAMINA_EXIT_REASON_COUNT");
    if (child.start() == 0 && child.wait_for_count(0)) {
        lamina_hc_domain_exit_stats(child.id(), gpa_of(&stats));
        t.check(stats.exits[LAMINA_EXIT_IO] == str::length(message) && stats.exits[LAMINA_EXIT_CPUID] == 1,
                "domain_exit_stats: one IO exit per byte the child printed, one CPUID exit for its CPUID",
                "IO {}, CPUID {}", stats.exits[LAMINA_EXIT_IO], stats.exits[LAMINA_EXIT_CPUID]);
        t.check(stats.exits[LAMINA_EXIT_HLT] == 0 && stats.exits[LAMINA_EXIT_HYPERCALL] == 0 &&
                    stats.exits[LAMINA_EXIT_TRIPLE_FAULT] == 0,
                "domain_exit_stats: no HLT, hypercall or triple-fault exits, which it never made");
        u64 sum = 0;
        for (u64 count : stats.exits) sum += count;
        t.check(stats.reason_count == LAMINA_EXIT_REASON_COUNT && stats.total == sum && stats.pad0 == 0 &&
                    filled_with(&stats.exits[LAMINA_EXIT_REASON_COUNT],
                                sizeof(u64) * (LAMINA_EXIT_REASON_SLOTS - LAMINA_EXIT_REASON_COUNT), 0),
                "domain_exit_stats: total is the sum of the reasons, the slots past reason_count 0", "total {}, sum {}",
                stats.total, sum);
    }
    child.destroy();

    ScopedChild halted;
    if (halted.build(t, {.name = "ctl-exits-halt", .program = ChildProgram::Halt, .message = "halt\n"}) &&
        halted.start() == 0 && wait_until([&] {
            lamina_hc_domain_exit_stats(halted.id(), gpa_of(&stats));
            return stats.exits[LAMINA_EXIT_HLT] > 0;
        })) {
        t.check(stats.exits[LAMINA_EXIT_HLT] == 1 && stats.exits[LAMINA_EXIT_IO] == 5 &&
                    stats.exits[LAMINA_EXIT_CPUID] == 0,
                "domain_exit_stats: a child that printed 5 bytes and halted: 5 IO exits, 1 HLT", "IO {}, HLT {}",
                stats.exits[LAMINA_EXIT_IO], stats.exits[LAMINA_EXIT_HLT]);
        check_straddling_out<lamina_exit_stats>(
            t, "domain_exit_stats", [&](u64 gpa) { return lamina_hc_domain_exit_stats(halted.id(), gpa); },
            [](lamina_exit_stats& record) {  // host interrupts may still arrive while it is halted
                record.total -= record.exits[LAMINA_EXIT_EXTERNAL_INTERRUPT];
                record.exits[LAMINA_EXIT_EXTERNAL_INTERRUPT] = 0;
            });
        check_bad_buffers(t, "domain_exit_stats", sizeof(lamina_exit_stats),
                          [&](u64 gpa) { return lamina_hc_domain_exit_stats(halted.id(), gpa); });
        const u16 gone = halted.id();
        halted.destroy();
        t.returns(lamina_hc_domain_exit_stats(gone, gpa_of(&stats)), kEsrch,
                  "domain_exit_stats: a destroyed domain is ESRCH");
    }
    halted.destroy();

    // The caller's own, its hypercalls among them.
    lamina_hc_domain_exit_stats(LAMINA_DOMID_CONTROL, gpa_of(&stats));
    const u64 hypercalls = stats.exits[LAMINA_EXIT_HYPERCALL];
    for (u32 i = 0; i < 10; ++i) lamina_hc_version();
    t.returns(lamina_hc_domain_exit_stats(LAMINA_DOMID_CONTROL, gpa_of(&stats)), 0,
              "domain_exit_stats: of the caller itself");
    t.check(stats.exits[LAMINA_EXIT_HYPERCALL] >= hypercalls + 11,
            "domain_exit_stats: ... counts the hypercalls it made", "{} before 11 more, {} after", hypercalls,
            stats.exits[LAMINA_EXIT_HYPERCALL]);
    check_domain_ids(t, "domain_exit_stats", LAMINA_DOMID_CONTROL, false,
                     [&](u64 domid) { return lamina_hc_domain_exit_stats(domid, gpa_of(&stats)); });
    check_left_alone(t, "domain_exit_stats");
}

HYPERCALL_TEST(sched_get_domain) {
    ScopedDomain domain("ctl-sched-get");
    lamina_sched_domain params{};
    t.returns(lamina_hc_sched_get_domain(domain.id(), gpa_of(&params)), 0, "sched_get_domain: of a new domain");
    t.check(params.weight == LAMINA_SCHED_WEIGHT_DEFAULT && params.cap == 0,
            "sched_get_domain: ... LAMINA_SCHED_WEIGHT_DEFAULT, no cap", "weight {}, cap {}", params.weight,
            params.cap);
    t.returns(lamina_hc_sched_get_domain(LAMINA_DOMID_CONTROL, gpa_of(&params)), 0,
              "sched_get_domain: of the caller itself");
    t.check(params.weight >= LAMINA_SCHED_WEIGHT_MIN && params.weight <= LAMINA_SCHED_WEIGHT_MAX &&
                params.cap <= 100 * host_info().cpus,
            "sched_get_domain: ... a weight in range, a cap of at most every CPU", "weight {}, cap {}", params.weight,
            params.cap);
    check_bad_buffers(t, "sched_get_domain", sizeof(lamina_sched_domain),
                      [&](u64 gpa) { return lamina_hc_sched_get_domain(domain.id(), gpa); });
    check_straddling_out<lamina_sched_domain>(t, "sched_get_domain",
                                              [&](u64 gpa) { return lamina_hc_sched_get_domain(domain.id(), gpa); });
    check_domain_ids(t, "sched_get_domain", domain.id(), false,
                     [&](u64 domid) { return lamina_hc_sched_get_domain(domid, gpa_of(&params)); });
    domain.destroy();
    check_left_alone(t, "sched_get_domain");
}

HYPERCALL_TEST(sched_set_domain) {
    const u32 max_cap = 100 * host_info().cpus;
    ScopedDomain domain("ctl-sched-set");
    const auto params_of = [](u64 domid) {
        lamina_sched_domain params{};
        lamina_hc_sched_get_domain(domid, gpa_of(&params));
        return params;
    };
    struct Setting {
        u32 weight, cap;
        const char* what;
    };
    const Setting good[] = {{LAMINA_SCHED_WEIGHT_MIN, 0, "sched_set_domain: the least weight, no cap"},
                            {LAMINA_SCHED_WEIGHT_MAX, 1, "sched_set_domain: the greatest weight, a cap of 1%"},
                            {512, max_cap, "sched_set_domain: a cap of every CPU"},
                            {300, 50, "sched_set_domain: weight 300, cap 50%"}};
    for (const Setting& s : good) {
        const bool set = t.returns(lamina_hc_sched_set_domain(domain.id(), s.weight, s.cap), 0, s.what);
        const lamina_sched_domain now = params_of(domain.id());
        if (set)
            t.check(now.weight == s.weight && now.cap == s.cap, "sched_set_domain: ... is what sched_get_domain reads");
    }
    t.returns(lamina_hc_sched_set_domain(domain.id(), 0, 0), kEinval, "sched_set_domain: weight 0 is EINVAL");
    t.returns(lamina_hc_sched_set_domain(domain.id(), LAMINA_SCHED_WEIGHT_MAX + 1, 0), kEinval,
              "sched_set_domain: a weight wider than 16 bits is EINVAL");
    t.returns(lamina_hc_sched_set_domain(domain.id(), 256, max_cap + 1), kEinval,
              "sched_set_domain: a cap of more than every CPU is EINVAL");
    t.returns(lamina_hc_sched_set_domain(domain.id(), 256, kPast32), kEinval,
              "sched_set_domain: a cap wider than 32 bits is EINVAL");
    const lamina_sched_domain kept = params_of(domain.id());
    t.check(kept.weight == 300 && kept.cap == 50, "sched_set_domain: the refused calls changed nothing");
    check_domain_ids(t, "sched_set_domain", domain.id(), false,
                     [](u64 domid) { return lamina_hc_sched_set_domain(domid, 256, 0); });
    t.check(params_of(domain.id()).weight == 300, "sched_set_domain: ... nor did the id wider than 16 bits");
    domain.destroy();

    // The caller's own weight, and back.
    const lamina_sched_domain own = params_of(LAMINA_DOMID_CONTROL);
    t.returns(lamina_hc_sched_set_domain(LAMINA_DOMID_CONTROL, 1000, own.cap), 0, "sched_set_domain: the caller's own");
    t.check(params_of(LAMINA_DOMID_CONTROL).weight == 1000, "sched_set_domain: ... is what sched_get_domain reads");
    lamina_hc_sched_set_domain(LAMINA_DOMID_CONTROL, own.weight, own.cap);

    // A cap holds a spinning child to its share while nothing else wants the CPU.
    ScopedChild spinner;
    if (spinner.build(t, {.name = "ctl-sched-cap"}) && spinner.start() == 0 && spinner.wait_for_count(0)) {
        const u64 free_share = cpu_share(spinner, 200 * kMs);
        lamina_hc_sched_set_domain(spinner.id(), LAMINA_SCHED_WEIGHT_DEFAULT, 10);
        const u64 capped_share = cpu_share(spinner, 300 * kMs);
        t.note("sched_set_domain: the spinning child got {}% of a CPU uncapped, {}% capped at 10%", free_share,
               capped_share);
        t.check(free_share >= 50 && capped_share <= 25,
                "sched_set_domain: a cap of 10% holds a spinning child near 10% of a CPU", "{}% uncapped, {}% capped",
                free_share, capped_share);
    }
    spinner.destroy();
    check_left_alone(t, "sched_set_domain");
}

HYPERCALL_TEST(sched_get_pool) {
    lamina_sched_pool pool{};
    t.returns(lamina_hc_sched_get_pool(gpa_of(&pool)), 0, "sched_get_pool");
    t.check(pool.timeslice_ms >= LAMINA_SCHED_TIMESLICE_MIN_MS && pool.timeslice_ms <= LAMINA_SCHED_TIMESLICE_MAX_MS &&
                u64{pool.ratelimit_us} <= u64{pool.timeslice_ms} * 1000,
            "sched_get_pool: a time slice in range, a rate limit of at most the slice", "{} ms, {} us",
            pool.timeslice_ms, pool.ratelimit_us);
    check_bad_buffers(t, "sched_get_pool", sizeof(lamina_sched_pool),
                      [](u64 gpa) { return lamina_hc_sched_get_pool(gpa); });
    check_straddling_out<lamina_sched_pool>(t, "sched_get_pool", [](u64 gpa) { return lamina_hc_sched_get_pool(gpa); });
    check_left_alone(t, "sched_get_pool");
}

HYPERCALL_TEST(sched_set_pool) {
    const auto pool = [] {
        lamina_sched_pool params{};
        lamina_hc_sched_get_pool(gpa_of(&params));
        return params;
    };
    const lamina_sched_pool saved = pool();
    struct Setting {
        u32 timeslice_ms, ratelimit_us;
        const char* what;
    };
    const Setting good[] = {
        {10, 0, "sched_set_pool: a 10 ms slice, no rate limit"},
        {LAMINA_SCHED_TIMESLICE_MAX_MS, LAMINA_SCHED_TIMESLICE_MAX_MS * 1000,
         "sched_set_pool: the longest slice, a rate limit as long"},
        {LAMINA_SCHED_TIMESLICE_MIN_MS, 1000, "sched_set_pool: the shortest slice, a rate limit as long"},
        {20, 500, "sched_set_pool: a 20 ms slice, a 500 us rate limit"}};
    for (const Setting& s : good) {
        const bool set = t.returns(lamina_hc_sched_set_pool(s.timeslice_ms, s.ratelimit_us), 0, s.what);
        const lamina_sched_pool now = pool();
        if (set)
            t.check(now.timeslice_ms == s.timeslice_ms && now.ratelimit_us == s.ratelimit_us,
                    "sched_set_pool: ... is what sched_get_pool reads");
    }
    t.returns(lamina_hc_sched_set_pool(0, 0), kEinval, "sched_set_pool: a slice of 0 ms is EINVAL");
    t.returns(lamina_hc_sched_set_pool(LAMINA_SCHED_TIMESLICE_MAX_MS + 1, 0), kEinval,
              "sched_set_pool: a slice past LAMINA_SCHED_TIMESLICE_MAX_MS is EINVAL");
    t.returns(lamina_hc_sched_set_pool(1, 1001), kEinval,
              "sched_set_pool: a rate limit longer than the slice is EINVAL");
    t.returns(lamina_hc_sched_set_pool(0xffffffff, 0), kEinval, "sched_set_pool: a slice of 0xffffffff ms is EINVAL");
    t.returns(lamina_hc_sched_set_pool(kPast32 | 10, 0), kEinval,
              "sched_set_pool: a slice wider than 32 bits is EINVAL");
    t.returns(lamina_hc_sched_set_pool(10, kPast32), kEinval,
              "sched_set_pool: a rate limit wider than 32 bits is EINVAL");
    const lamina_sched_pool kept = pool();
    t.check(kept.timeslice_ms == 20 && kept.ratelimit_us == 500, "sched_set_pool: the refused calls changed nothing");
    // Below LAMINA_SCHED_RATELIMIT_MIN_US a timer would cost more than the slice it ends.
    t.returns(lamina_hc_sched_set_pool(20, LAMINA_SCHED_RATELIMIT_MIN_US - 1), kEinval,
              "sched_set_pool: a rate limit of 1 us less than LAMINA_SCHED_RATELIMIT_MIN_US is EINVAL");
    t.returns(lamina_hc_sched_set_pool(20, 1), kEinval, "sched_set_pool: a rate limit of 1 us is EINVAL");
    t.check(pool().ratelimit_us == 500, "sched_set_pool: ... and they changed nothing");
    t.returns(lamina_hc_sched_set_pool(20, LAMINA_SCHED_RATELIMIT_MIN_US), 0,
              "sched_set_pool: a rate limit of LAMINA_SCHED_RATELIMIT_MIN_US");
    t.check(pool().ratelimit_us == LAMINA_SCHED_RATELIMIT_MIN_US, "sched_set_pool: ... is what sched_get_pool reads");
    t.returns(lamina_hc_sched_set_pool(saved.timeslice_ms, saved.ratelimit_us), 0, "sched_set_pool: back as it was");
    const lamina_sched_pool restored = pool();
    t.check(restored.timeslice_ms == saved.timeslice_ms && restored.ratelimit_us == saved.ratelimit_us,
            "sched_set_pool: ... which sched_get_pool reads");
    check_left_alone(t, "sched_set_pool");
}

HYPERCALL_TEST(sched_get_affinity) {
    u64 online[LAMINA_MAX_HOST_CPUS / 64];
    online_cpus(online);
    const u64 none[LAMINA_MAX_HOST_CPUS / 64] = {};
    lamina_sched_affinity affinity{};
    t.returns(lamina_hc_sched_get_affinity(LAMINA_DOMID_CONTROL, 0, gpa_of(&affinity)), 0,
              "sched_get_affinity: of the caller's vCPU 0");
    t.check(same_set(affinity.hard, online) && same_set(affinity.soft, none),
            "sched_get_affinity: ... every online CPU hard, none soft", "hard {:#x}, soft {:#x}", affinity.hard[0],
            affinity.soft[0]);
    ScopedDomain domain("ctl-affinity-get");
    t.returns(lamina_hc_sched_get_affinity(domain.id(), 0, gpa_of(&affinity)), 0,
              "sched_get_affinity: of a new domain's vCPU 0");
    t.check(same_set(affinity.hard, online) && same_set(affinity.soft, none),
            "sched_get_affinity: ... every online CPU hard, none soft");
    t.returns(lamina_hc_sched_get_affinity(domain.id(), 1, gpa_of(&affinity)), kEinval,
              "sched_get_affinity: a vCPU the domain does not have is EINVAL");
    t.returns(lamina_hc_sched_get_affinity(domain.id(), 0xffffffff, gpa_of(&affinity)), kEinval,
              "sched_get_affinity: vCPU 0xffffffff is EINVAL");
    t.returns(lamina_hc_sched_get_affinity(domain.id(), kPast32, gpa_of(&affinity)), kEinval,
              "sched_get_affinity: a vCPU wider than 32 bits is EINVAL");
    check_bad_buffers(t, "sched_get_affinity", sizeof(lamina_sched_affinity),
                      [&](u64 gpa) { return lamina_hc_sched_get_affinity(domain.id(), 0, gpa); });
    check_straddling_out<lamina_sched_affinity>(
        t, "sched_get_affinity", [&](u64 gpa) { return lamina_hc_sched_get_affinity(domain.id(), 0, gpa); });
    check_domain_ids(t, "sched_get_affinity", domain.id(), false,
                     [&](u64 domid) { return lamina_hc_sched_get_affinity(domid, 0, gpa_of(&affinity)); });
    domain.destroy();
    check_left_alone(t, "sched_get_affinity");
}

HYPERCALL_TEST(sched_set_affinity) {
    u64 online[LAMINA_MAX_HOST_CPUS / 64];
    online_cpus(online);
    const u32 cpus = host_info().cpus;
    ScopedChild child;
    if (!child.build(t, {.name = "ctl-affinity-set"})) return;
    const auto affinity_of = [&] {
        lamina_sched_affinity affinity{};
        lamina_hc_sched_get_affinity(child.id(), 0, gpa_of(&affinity));
        return affinity;
    };
    const auto set = [&](const lamina_sched_affinity& affinity) {
        return lamina_hc_sched_set_affinity(child.id(), 0, gpa_of(&affinity));
    };
    lamina_sched_affinity pinned{};
    pinned.hard[0] = pinned.soft[0] = 1;
    t.returns(set(pinned), 0, "sched_set_affinity: hard and soft CPU 0");
    lamina_sched_affinity now = affinity_of();
    t.check(same_set(now.hard, pinned.hard) && same_set(now.soft, pinned.soft),
            "sched_set_affinity: ... is what sched_get_affinity reads");
    t.check(child.start() == 0 && child.wait_for_count(0), "sched_set_affinity: a vCPU pinned to CPU 0 runs there");

    lamina_sched_affinity everything;
    str::fill_bytes(&everything, 0xff, sizeof(everything));
    t.returns(set(everything), 0, "sched_set_affinity: every CPU the ABI can name, hard and soft");
    now = affinity_of();
    t.check(same_set(now.hard, online) && same_set(now.soft, online),
            "sched_set_affinity: ... is read back as the online ones");
    lamina_sched_affinity soft_outside{};
    soft_outside.hard[0] = 1;
    soft_outside.soft[0] = ~u64{1};
    t.returns(set(soft_outside), 0, "sched_set_affinity: a soft affinity outside the hard one");
    now = affinity_of();
    t.check(now.hard[0] == 1 && now.soft[0] == 0,
            "sched_set_affinity: ... is read back as its part inside the hard one", "hard {:#x}, soft {:#x}",
            now.hard[0], now.soft[0]);
    t.returns(set(pinned), 0, "sched_set_affinity: (CPU 0 again)");

    lamina_sched_affinity offline{};
    if (cpus < LAMINA_MAX_HOST_CPUS) offline.hard[LAMINA_MAX_HOST_CPUS / 64 - 1] = u64{1} << 63;
    t.returns(set(offline), kEinval, "sched_set_affinity: a hard affinity of no online CPU is EINVAL");
    const lamina_sched_affinity empty{};
    t.returns(set(empty), kEinval, "sched_set_affinity: an empty hard affinity is EINVAL");
    now = affinity_of();
    t.check(same_set(now.hard, pinned.hard) && same_set(now.soft, pinned.soft),
            "sched_set_affinity: ... changing nothing");
    t.returns(lamina_hc_sched_set_affinity(child.id(), 1, gpa_of(&pinned)), kEinval,
              "sched_set_affinity: a vCPU the domain does not have is EINVAL");
    t.returns(lamina_hc_sched_set_affinity(child.id(), kPast32, gpa_of(&pinned)), kEinval,
              "sched_set_affinity: a vCPU wider than 32 bits is EINVAL");
    check_bad_buffers(t, "sched_set_affinity", sizeof(lamina_sched_affinity),
                      [&](u64 gpa) { return lamina_hc_sched_set_affinity(child.id(), 0, gpa); });
    {
        const StraddlingBuffer buffer(sizeof(lamina_sched_affinity));
        str::copy_bytes(buffer.data(), &everything, sizeof(everything));
        t.returns(lamina_hc_sched_set_affinity(child.id(), 0, buffer.gpa()), 0,
                  "sched_set_affinity: an affinity at an odd address across a page");
        now = affinity_of();
        t.check(same_set(now.hard, online), "sched_set_affinity: ... is the one read");
    }
    check_domain_ids(t, "sched_set_affinity", child.id(), false,
                     [&](u64 domid) { return lamina_hc_sched_set_affinity(domid, 0, gpa_of(&pinned)); });
    child.destroy();
    check_left_alone(t, "sched_set_affinity");
}

TEST_CASE(user_mode, "host calls from CPL 3 are EPERM") {
    const u32 calls[] = {
        LAMINA_HYPERCALL_console_write,      LAMINA_HYPERCALL_console_read,      LAMINA_HYPERCALL_host_info,
        LAMINA_HYPERCALL_log_read,           LAMINA_HYPERCALL_domain_exit_stats, LAMINA_HYPERCALL_sched_get_domain,
        LAMINA_HYPERCALL_sched_set_domain,   LAMINA_HYPERCALL_sched_get_pool,    LAMINA_HYPERCALL_sched_set_pool,
        LAMINA_HYPERCALL_sched_get_affinity, LAMINA_HYPERCALL_sched_set_affinity};
    check_user_mode_refused(t, calls, array_size(calls));
}

TEST_CASE(tear_down, "tear-down: the host as the kernel found it") { tear_down_control_kernel(t); }
