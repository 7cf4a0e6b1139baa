#include <dom0/kernel/commands.h>
#include <dom0/kernel/bench.h>
#include <dom0/kernel/conformance.h>

#include <dom0/kernel/console.h>
#include <dom0/kernel/domains.h>
#include <dom0/kernel/events.h>
#include <dom0/shell/shell.h>
#include <dom0/toolstack/field_text.h>
#include <dom0/toolstack/scheduling.h>
#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {
namespace {

using shell::Command;
using toolstack::Message;
using shell::Shell;

using toolstack::FieldText;

// Seconds with tenths, for times in nanoseconds.
struct Seconds {
    u64 whole;
    u64 tenths;
    explicit Seconds(u64 ns) : whole(ns / 1'000'000'000), tenths(ns / 100'000'000 % 10) {}
};

constexpr u64 kPagesPerMiB = MiB / 4096;

// domain_list's batches, for `list` and the name lookup.
lamina_domain_info batch[LAMINA_DOMAIN_LIST_MAX];

// Calls visit(info) for each domain in id order until it returns false. 0, or the error of
// domain_list. Only what the ABI allows is believed: at most the records asked for, ids going up
// and no higher than LAMINA_DOMID_MAX; the walk ends at anything else.
template <typename Visit>
i64 for_each_domain(Visit visit) {
    u64 first = 0;
    while (first <= LAMINA_DOMID_MAX) {
        const i64 count = lamina_hc_domain_list(first, gpa(batch), LAMINA_DOMAIN_LIST_MAX);
        if (count < 0) return count;
        const usize n = min(static_cast<usize>(count), static_cast<usize>(LAMINA_DOMAIN_LIST_MAX));
        for (usize i = 0; i < n; ++i) {
            if (batch[i].domid < first || batch[i].domid > LAMINA_DOMID_MAX) return 0;
            if (!visit(batch[i])) return 0;
            first = u64{batch[i].domid} + 1;
        }
        if (n < LAMINA_DOMAIN_LIST_MAX) return 0;
    }
    return 0;
}

class HypervisorDomains final : public shell::DomainDirectory {
public:
    i64 find_by_name(const char* name) override {
        i64 found = -LAMINA_ESRCH;
        const i64 result = for_each_domain([&](const lamina_domain_info& info) {
            if (!str::equal(FieldText(info.name).text, name)) return true;
            found = info.domid;
            return false;
        });
        return result < 0 ? result : found;
    }
};

// "Domain 3" does not exist, or the call about it failed: one line either way. `call` names the
// hypercall where the command makes several.
int domain_call_failed(Shell& shell, const char* command, u16 domid, i64 result, const char* call = nullptr) {
    if (result == -LAMINA_ESRCH) return shell.fail("{}: no domain {}", command, domid);
    if (call) return shell.fail("{}: domain {}: {}: {}", command, domid, call, lamina_errno_name(result));
    return shell.fail("{}: domain {}: {}", command, domid, lamina_errno_name(result));
}

// The domain argv[1] names, for commands that take exactly one.
bool one_domain(Shell& shell, int argc, const char* const* argv, u16* domid, int* status) {
    if (argc != 2) {
        *status = shell.usage_error(argv[0]);
        return false;
    }
    Message error;
    if (!shell::parse_domain(argv[1], shell.domains(), domid, error)) {
        *status = shell.fail("{}: {}", argv[0], error.text());
        return false;
    }
    return true;
}

// What the host has; false once `command` has said that host_info failed.
bool read_host_info(Shell& shell, const char* command, lamina_host_info* host) {
    const i64 result = lamina_hc_host_info(gpa(host));
    if (result >= 0) return true;
    shell.fail("{}: host_info: {}", command, lamina_errno_name(result));
    return false;
}

// The host's CPUs as a CPU set can hold them.
u32 host_cpus(const lamina_host_info& host) { return toolstack::limits_of(host).host_cpus; }

const char* state_name(const lamina_domain_info& info) {
    if (info.flags & LAMINA_DOMAIN_FAULTED) return "crashed";
    switch (info.state) {
        case LAMINA_DOMAIN_BUILDING: return "building";
        case LAMINA_DOMAIN_PAUSED: return "paused";
        case LAMINA_DOMAIN_RUNNING: return "running";
        case LAMINA_DOMAIN_SHUTTING_DOWN:
            switch (info.shutdown_reason) {
                case LAMINA_SHUTDOWN_POWEROFF: return "shutdown";
                case LAMINA_SHUTDOWN_REBOOT: return "rebooting";
                case LAMINA_SHUTDOWN_CRASH: return "crashed";
                default: return "shutdown?";
            }
        case LAMINA_DOMAIN_DYING: return "dying";
        default: return "?";
    }
}

// xl list's columns.
void print_domain(Shell& shell, const lamina_domain_info& info) {
    const Seconds time(info.cpu_time_ns);
    shell.print("{:<32} {:>5} {:>8} {:>5}  {:<9} {:>7}.{}\n", FieldText(info.name).text, info.domid,
                info.pages / kPagesPerMiB, info.online_vcpus, state_name(info), time.whole, time.tenths);
}

// For `list [domain]` and the like: the header, then `print` for the domain argv[1] names or for
// every domain. 0, or the command's one-line failure.
template <typename Header, typename Print>
int named_domain_or_all(Shell& shell, int argc, const char* const* argv, Header header, Print print) {
    if (argc > 2) return shell.usage_error(argv[0]);
    lamina_domain_info info;
    if (argc == 2) {
        u16 domid = 0;
        int status = 0;
        if (!one_domain(shell, argc, argv, &domid, &status)) return status;
        const i64 result = lamina_hc_domain_get_info(domid, gpa(&info));
        if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
    }
    header();
    if (argc == 2) {
        print(info);
        return 0;
    }
    const i64 result = for_each_domain([&](const lamina_domain_info& each) {
        print(each);
        return true;
    });
    if (result < 0) return shell.fail("{}: domain_list: {}", argv[0], lamina_errno_name(result));
    return 0;
}

int list_command(Shell& shell, int argc, const char* const* argv) {
    return named_domain_or_all(
        shell, argc, argv,
        [&] {
            shell.print("{:<32} {:>5} {:>8} {:>5}  {:<9} {:>9}\n", "Name", "ID", "Mem(MiB)", "VCPUs", "State",
                        "Time(s)");
        },
        [&](const lamina_domain_info& info) { print_domain(shell, info); });
}

// The host firmware's ACPI root pointer in the BIOS area (ACPI 6.5 5.2.5.1), which Dom0 reads
// through its 1:1 device mapping; 0 when it is not there (UEFI hands it over differently).
u64 bios_rsdp() {
    constexpr u64 kBiosArea = 0xe0000, kBiosAreaEnd = 0x100000;
    for (u64 at = kBiosArea; at < kBiosAreaEnd; at += 16) {
        if (str::compare_bytes(reinterpret_cast<const char*>(at), "RSD PTR ", 8) == 0) return at;
    }
    return 0;
}

int info_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 1) return shell.usage_error(argv[0]);
    lamina_host_info host;
    if (!read_host_info(shell, argv[0], &host)) return 1;
    const i64 version = lamina_hc_version();
    if (version < 0) return shell.fail("info: version: {}", lamina_errno_name(version));
    const Seconds uptime(host.uptime_ns);
    const char* virtualization = host.virtualization == LAMINA_HOST_VMX   ? "Intel VT-x with EPT"
                                 : host.virtualization == LAMINA_HOST_SVM ? "AMD-V with NPT"
                                                                          : "?";
    shell.print("{:<15}: Lamina {}\n", "release", FieldText(host.version).text);
    shell.print("{:<15}: {}.{} (Dom0 built for {}.{})\n", "abi_version", LAMINA_ABI_VERSION_MAJOR_OF(version),
                LAMINA_ABI_VERSION_MINOR_OF(version), LAMINA_ABI_VERSION_MAJOR, LAMINA_ABI_VERSION_MINOR);
    shell.print("{:<15}: {}\n", "virtualization", virtualization);
    shell.print("{:<15}: {}{}\n", "features", host.features & LAMINA_HOST_IOMMU ? "iommu " : "",
                host.features & LAMINA_HOST_X2APIC ? "x2apic" : "");
    shell.print("{:<15}: {}\n", "nr_cpus", host.cpus);
    shell.print("{:<15}: {}\n", "cpu", FieldText(host.cpu_brand).text);
    shell.print("{:<15}: {}\n", "tsc_khz", host.tsc_khz);
    shell.print("{:<15}: {} MiB\n", "total_memory", host.total_pages / kPagesPerMiB);
    shell.print("{:<15}: {} MiB ({} pages)\n", "free_memory", host.free_pages / kPagesPerMiB, host.free_pages);
    shell.print("{:<15}: {}\n", "max_domains", host.max_domains);
    shell.print("{:<15}: {}\n", "max_vcpus", host.max_vcpus);
    shell.print("{:<15}: {}.{} s\n", "uptime", uptime.whole, uptime.tenths);
    if (const u64 rsdp = bios_rsdp()) shell.print("{:<15}: {:#x} (BIOS area)\n", "acpi_rsdp", rsdp);
    return 0;
}

// The log as it stood when the command started: first find its end, then print up to there, so
// that output which itself lands in the log cannot keep the command going.
int dmesg_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 1) return shell.usage_error(argv[0]);
    static char chunk[4096];
    static_assert(sizeof(chunk) <= LAMINA_LOG_READ_MAX);
    u64 position = 0;
    // Up to `limit` bytes from `position` into chunk: how many (never more than asked), or an error.
    auto read = [&](u64 limit) -> i64 {
        const u64 length = min<u64>(sizeof(chunk), limit);
        const i64 result = lamina_hc_log_read(gpa(chunk), length, gpa(&position));
        return min(result, static_cast<i64>(length));
    };
    i64 result;
    do result = read(sizeof(chunk));
    while (result > 0);
    if (result < 0) return shell.fail("dmesg: log_read: {}", lamina_errno_name(result));
    const u64 end = position;
    position = 0;
    while (position < end && (result = read(end - position)) > 0) shell.out().write(chunk, static_cast<usize>(result));
    if (result < 0) return shell.fail("dmesg: log_read: {}", lamina_errno_name(result));
    return 0;
}

int pause_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("pause: domain 0 is Dom0, which runs this shell");
    const i64 result = domain_control().pause(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

int unpause_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    const i64 result = domain_control().unpause(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

int destroy_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("destroy: domain 0 is Dom0; use poweroff");
    const i64 result = toolstack().destroy(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

// Ends a domain as its own shutdown call with `reason` would. The domain has ended when the call
// returns, so the config's action follows at once, before the prompt, rather than at the
// LAMINA_VIRQ_DOMAIN_DIED that comes too.
int end_domain(Shell& shell, int argc, const char* const* argv, u32 reason) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("{}: domain 0 is Dom0; use poweroff", argv[0]);
    const i64 result = domain_control().shutdown(domid, reason);
    if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
    toolstack().handle_ended_domains(shell.out());
    return 0;
}

int shutdown_command(Shell& shell, int argc, const char* const* argv) {
    return end_domain(shell, argc, argv, LAMINA_SHUTDOWN_POWEROFF);
}

int reboot_command(Shell& shell, int argc, const char* const* argv) {
    return end_domain(shell, argc, argv, LAMINA_SHUTDOWN_REBOOT);
}

constexpr u8 kConsoleEscape = 0x1d;  // Ctrl-], as telnet and xl console have it

// Shows the domain's output as it comes and types what the user types into it, until Ctrl-] or
// until the domain is gone. Domains keep being serviced meanwhile.
void follow_console(toolstack::ManagedDomain& domain) {
    Console& out = console();
    toolstack().follow(&domain, &out);
    for (;;) {
        service_domains(out);
        toolstack::ManagedDomain* followed = toolstack().followed();
        if (!followed) break;  // destroyed without a restart: service_domains said so
        char typed[64];
        usize count = 0;
        bool escaped = false;
        u8 byte;
        while (!escaped && count < sizeof(typed) && console_input().next(&byte)) {
            if (byte == kConsoleEscape) escaped = true;
            else typed[count++] = static_cast<char>(byte);
        }
        // What does not fit the domain's input ring is dropped, as a full UART drops it.
        if (count) toolstack().type_into(*followed, typed, count);
        if (escaped) break;
        out.flush();
        if (!count) wait_for_input();
    }
    toolstack().follow(nullptr, nullptr);
    format(out, "\n");
}

int console_command(Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "n");
    Message error;
    bool snapshot = false;
    for (char letter; (letter = options.next(error)) != 0;) {
        if (letter == '?') return shell.fail("console: {}", error.text());
        snapshot = true;
    }
    if (options.operand_count() != 1) return shell.usage_error(argv[0]);
    u16 domid = 0;
    if (!shell::parse_domain(options.operand(0), shell.domains(), &domid, error))
        return shell.fail("console: {}", error.text());
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("console: domain 0 is this console");
    toolstack::ManagedDomain* domain = toolstack().find(domid);
    if (!domain) {
        lamina_domain_info info;
        const i64 result = domain_control().get_info(domid, info);
        if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
        return shell.fail("console: domain {} ({}) was not created by this Dom0: it has no console here", domid,
                          FieldText(info.name).text);
    }
    if (!snapshot) shell.print("[console of domain {} ({}); Ctrl-] returns]\n", domid, domain->config.name);
    toolstack().drain_consoles();
    domain->history.replay(shell.out());
    if (!snapshot) follow_console(*domain);
    return 0;
}

// What the host lets a config ask for.
bool host_limits(Shell& shell, toolstack::Limits* limits) {
    lamina_host_info host;
    if (!read_host_info(shell, "create", &host)) return false;
    *limits = toolstack::limits_of(host);
    return true;
}

int create_command(Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "p");
    Message error;
    bool paused = false;
    for (char letter; (letter = options.next(error)) != 0;) {
        if (letter == '?') return shell.fail("create: {}", error.text());
        paused = true;
    }
    if (options.operand_count() < 1) return shell.usage_error(argv[0]);
    toolstack::Limits limits;
    if (!host_limits(shell, &limits)) return 1;
    const char* source = options.operand(0);
    const char* overrides[shell::Words::kMaxWords];
    const usize override_count = static_cast<usize>(options.operand_count() - 1);
    for (usize i = 0; i < override_count; ++i) overrides[i] = options.operand(static_cast<int>(i + 1));
    // Several KiB each: kept off Dom0's stack.
    static toolstack::DomainConfig config;
    static toolstack::Diagnostics diagnostics;
    const bool prepared =
        toolstack::prepare_config(boot_images(), source, overrides, override_count, limits, config, diagnostics);
    for (usize i = 0; i < diagnostics.warning_count; ++i)
        shell.print("create: {}: warning: {}\n", source, diagnostics.warnings[i].text);
    if (!prepared) return shell.fail("create: {}: {}", source, diagnostics.error.text);
    const toolstack::ManagedDomain* domain = toolstack().create(config, paused, error);
    if (!domain) return shell.fail("create: {}: {}", config.name, error.text());
    shell.print("created domain {} (id {}){}\n", config.name, domain->built.domid, paused ? ", paused" : "");
    return 0;
}

// ---- top ------------------------------------------------------------------------------------

constexpr const char* kExitNames[] = {"cpuid", "io",     "msr-read",  "msr-write", "hlt",       "hypercall",
                                      "cr",    "xsetbv", "invlpg",    "stage2",    "exception", "interrupt",
                                      "irq-window", "triple-fault", "bad-state", "other"};
static_assert(array_size(kExitNames) == LAMINA_EXIT_REASON_COUNT);

// One domain's counters at a refresh.
struct TopSample {
    u16 domid;
    u64 cpu_time_ns;
    u64 exits[LAMINA_EXIT_REASON_COUNT];
};

// The last refresh's samples, which the next one (of this top or a later one) subtracts; a domain
// without one is shown since the host started.
TopSample top_previous[LAMINA_DOMAIN_LIST_MAX];
usize top_previous_count = 0;
u64 top_previous_ns = 0;

const TopSample* previous_sample(u16 domid) {
    for (usize i = 0; i < top_previous_count; ++i)
        if (top_previous[i].domid == domid) return &top_previous[i];
    return nullptr;
}

bool uptime_ns(u64* now) {
    lamina_host_info host;
    if (lamina_hc_host_info(gpa(&host)) < 0) return false;
    *now = host.uptime_ns;
    return true;
}

// One row: CPU time over wall time since the previous sample, exits per second, the three
// reasons with most exits.
void print_top_row(Shell& shell, const lamina_domain_info& info, const TopSample& now, bool has_exits, u64 now_ns) {
    const TopSample* before = previous_sample(info.domid);
    // A reused id, or no sample: since the host started.
    if (before && before->cpu_time_ns > now.cpu_time_ns) before = nullptr;
    const u64 since_ns = before && top_previous_ns < now_ns ? top_previous_ns : 0;
    const u64 elapsed_us = max<u64>((now_ns - since_ns) / 1000, 1);
    const u64 cpu_permille = (now.cpu_time_ns - (before ? before->cpu_time_ns : 0)) / elapsed_us;
    u64 delta[LAMINA_EXIT_REASON_COUNT];
    u64 total = 0;
    for (usize r = 0; r < LAMINA_EXIT_REASON_COUNT; ++r) {
        delta[r] = before && now.exits[r] >= before->exits[r] ? now.exits[r] - before->exits[r] : now.exits[r];
        total += delta[r];
    }
    shell.print("{:<24} {:>5} {:<9} {:>5}.{} ", FieldText(info.name).text, info.domid, state_name(info),
                cpu_permille / 10, cpu_permille % 10);
    if (!has_exits) {
        shell.print("{:>9}\n", "-");
        return;
    }
    shell.print("{:>9} ", total * 1'000'000 / elapsed_us);
    for (int shown = 0; shown < 3; ++shown) {
        usize most = 0;
        for (usize r = 1; r < LAMINA_EXIT_REASON_COUNT; ++r)
            if (delta[r] > delta[most]) most = r;
        if (delta[most] == 0) break;
        shell.print(" {} {}%", kExitNames[most], delta[most] * 100 / total);
        delta[most] = 0;
    }
    shell.print("\n");
}

bool top_refresh(Shell& shell) {
    u64 now_ns = 0;
    if (!uptime_ns(&now_ns)) {
        shell.fail("top: host_info failed");
        return false;
    }
    static TopSample samples[LAMINA_DOMAIN_LIST_MAX];
    usize count = 0;
    shell.print("{:<24} {:>5} {:<9} {:>7} {:>9}  {}\n", "Name", "ID", "State", "CPU(%)", "Exits/s", "Main exits");
    const i64 result = for_each_domain([&](const lamina_domain_info& info) {
        TopSample sample{info.domid, info.cpu_time_ns, {}};
        static lamina_exit_stats stats;
        const bool has_exits = lamina_hc_domain_exit_stats(info.domid, gpa(&stats)) >= 0;
        if (has_exits)
            for (usize r = 0; r < LAMINA_EXIT_REASON_COUNT; ++r) sample.exits[r] = stats.exits[r];
        print_top_row(shell, info, sample, has_exits, now_ns);
        if (count < array_size(samples)) samples[count++] = sample;
        return true;
    });
    if (result < 0) {
        shell.fail("top: domain_list: {}", lamina_errno_name(result));
        return false;
    }
    str::copy_bytes(top_previous, samples, count * sizeof(TopSample));
    top_previous_count = count;
    top_previous_ns = now_ns;
    return true;
}

// Waits `delay_ns`, servicing domains. When `any_key_ends`, false once a key is typed (q and
// Ctrl-C are taken, any other is left for the shell); false too if the clock fails.
bool top_wait(u64 delay_ns, bool any_key_ends) {
    u64 now = 0;
    if (!uptime_ns(&now)) return false;
    const u64 deadline = now + delay_ns;
    for (;;) {
        service_domains(console());
        console().flush();
        u8 byte;
        if (any_key_ends && console_input().peek(&byte)) {
            if (byte == 'q' || byte == 0x03) console_input().next(&byte);
            return false;
        }
        if (!uptime_ns(&now)) return false;
        if (now >= deadline) return true;
        wait_for_event(deadline - now);
    }
}

int top_command(Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "n:d:");
    Message error;
    u64 iterations = 0, delay_s = 2;
    for (char letter; (letter = options.next(error)) != 0;) {
        if (letter == '?') return shell.fail("top: {}", error.text());
        const bool parsed = letter == 'n' ? shell::parse_number("-n", options.value(), "iterations", 1, 1'000'000,
                                                                 &iterations, error)
                                          : shell::parse_number("-d", options.value(), "the delay", 1, 3600,
                                                                 &delay_s, error);
        if (!parsed) return shell.fail("top: {}", error.text());
    }
    if (options.operand_count() != 0) return shell.usage_error(argv[0]);
    // With -n, what is typed meanwhile is the next command's: a script's lines wait for top.
    for (u64 refresh = 1;; ++refresh) {
        if (!top_refresh(shell)) return 1;
        if (refresh == iterations) return 0;
        if (!top_wait(delay_s * 1'000'000'000, iterations == 0)) return 0;
        shell.print("\n");
    }
}

// ---- scheduler ------------------------------------------------------------------------------

// An option's number. Any size: the range check that follows names the valid range.
bool option_number(Shell& shell, const char* command, char option, const char* text, u64* value) {
    if (str::parse_u64(text, str::length(text), value)) return true;
    shell.fail("{}: -{} {}: not a number", command, option, text);
    return false;
}

constexpr const char* kSchedCredit = "sched-credit";

// Lamina has one pool of CPUs; xl calls its first one so.
void print_pool(Shell& shell, const lamina_sched_pool& pool) {
    shell.print("Cpupool Pool-0: tslice={}ms ratelimit={}us\n", pool.timeslice_ms, pool.ratelimit_us);
}

// xl sched-credit's columns; "-" where the hypervisor does not say.
void print_credit_header(Shell& shell) { shell.print("{:<33} {:>4} {:>6} {:>4}\n", "Name", "ID", "Weight", "Cap"); }

void print_credit_row(Shell& shell, const lamina_domain_info& info) {
    lamina_sched_domain params;
    shell.print("{:<33} {:>4} ", FieldText(info.name).text, info.domid);
    if (lamina_hc_sched_get_domain(info.domid, gpa(&params)) < 0) shell.print("{:>6} {:>4}\n", "-", "-");
    else shell.print("{:>6} {:>4}\n", params.weight, params.cap);
}

int credit_table(Shell& shell) {
    lamina_sched_pool pool;
    const i64 got = lamina_hc_sched_get_pool(gpa(&pool));
    if (got < 0) return shell.fail("{}: sched_get_pool: {}", kSchedCredit, lamina_errno_name(got));
    print_pool(shell, pool);
    print_credit_header(shell);
    const i64 result = for_each_domain([&](const lamina_domain_info& info) {
        print_credit_row(shell, info);
        return true;
    });
    if (result < 0) return shell.fail("{}: domain_list: {}", kSchedCredit, lamina_errno_name(result));
    return 0;
}

// Shows one domain's weight and cap, or sets those given; the other keeps its value.
int credit_domain(Shell& shell, const char* domain, const char* weight_text, const char* cap_text) {
    u16 domid = 0;
    Message error;
    if (!shell::parse_domain(domain, shell.domains(), &domid, error))
        return shell.fail("{}: {}", kSchedCredit, error.text());
    if (!weight_text && !cap_text) {
        lamina_domain_info info;
        const i64 result = lamina_hc_domain_get_info(domid, gpa(&info));
        if (result < 0) return domain_call_failed(shell, kSchedCredit, domid, result);
        print_credit_header(shell);
        print_credit_row(shell, info);
        return 0;
    }
    lamina_sched_domain params;
    const i64 got = lamina_hc_sched_get_domain(domid, gpa(&params));
    if (got < 0) return domain_call_failed(shell, kSchedCredit, domid, got, "sched_get_domain");
    u64 weight = params.weight, cap = params.cap;
    if ((weight_text && !option_number(shell, kSchedCredit, 'w', weight_text, &weight)) ||
        (cap_text && !option_number(shell, kSchedCredit, 'c', cap_text, &cap)))
        return 1;
    lamina_host_info host;
    if (!read_host_info(shell, kSchedCredit, &host)) return 1;
    if (!toolstack::check_domain_params(weight, cap, host_cpus(host), error))
        return shell.fail("{}: {}", kSchedCredit, error.text());
    const i64 set = lamina_hc_sched_set_domain(domid, weight, cap);
    return set < 0 ? domain_call_failed(shell, kSchedCredit, domid, set, "sched_set_domain") : 0;
}

// Shows the pool's time slice and rate limit, or sets those given; the other keeps its value.
int credit_pool(Shell& shell, const char* timeslice_text, const char* ratelimit_text) {
    lamina_sched_pool pool;
    const i64 got = lamina_hc_sched_get_pool(gpa(&pool));
    if (got < 0) return shell.fail("{}: sched_get_pool: {}", kSchedCredit, lamina_errno_name(got));
    if (!timeslice_text && !ratelimit_text) {
        print_pool(shell, pool);
        return 0;
    }
    u64 timeslice_ms = pool.timeslice_ms, ratelimit_us = pool.ratelimit_us;
    if ((timeslice_text && !option_number(shell, kSchedCredit, 't', timeslice_text, &timeslice_ms)) ||
        (ratelimit_text && !option_number(shell, kSchedCredit, 'r', ratelimit_text, &ratelimit_us)))
        return 1;
    Message error;
    if (!toolstack::check_pool_params(timeslice_ms, ratelimit_us, error))
        return shell.fail("{}: {}", kSchedCredit, error.text());
    const i64 set = lamina_hc_sched_set_pool(timeslice_ms, ratelimit_us);
    return set < 0 ? shell.fail("{}: sched_set_pool: {}", kSchedCredit, lamina_errno_name(set)) : 0;
}

// xl sched-credit: -d (with -w, -c) is about a domain, -s (with -t, -r) about the pool; -t and -r
// imply -s here.
int sched_credit_command(Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "d:w:c:st:r:");
    Message error;
    const char* domain = nullptr;
    const char* weight = nullptr;
    const char* cap = nullptr;
    const char* timeslice = nullptr;
    const char* ratelimit = nullptr;
    bool pool = false;
    for (char letter; (letter = options.next(error)) != 0;) {
        switch (letter) {
            case 'd': domain = options.value(); break;
            case 'w': weight = options.value(); break;
            case 'c': cap = options.value(); break;
            case 's': pool = true; break;
            case 't': timeslice = options.value(); break;
            case 'r': ratelimit = options.value(); break;
            default: return shell.fail("{}: {}", kSchedCredit, error.text());
        }
    }
    if (options.operand_count() != 0) return shell.usage_error(argv[0]);
    pool = pool || timeslice || ratelimit;
    if (pool && (domain || weight || cap))
        return shell.fail("{}: -s, -t and -r are about the pool, -d, -w and -c about a domain: not both",
                          kSchedCredit);
    if (pool) return credit_pool(shell, timeslice, ratelimit);
    if (domain) return credit_domain(shell, domain, weight, cap);
    if (weight || cap) return shell.fail("{}: -w and -c need -d <domain>", kSchedCredit);
    return credit_table(shell);
}

// Sets the hard affinity of one vCPU or all; the soft affinity stays as it is.
int vcpu_pin_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 4) return shell.usage_error(argv[0]);
    u16 domid = 0;
    Message error;
    if (!shell::parse_domain(argv[1], shell.domains(), &domid, error)) return shell.fail("vcpu-pin: {}", error.text());
    lamina_domain_info info;
    const i64 result = lamina_hc_domain_get_info(domid, gpa(&info));
    if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
    if (info.max_vcpus == 0) return shell.fail("vcpu-pin: domain {} has no vCPUs", domid);
    u32 first = 0, last = info.max_vcpus - 1;
    if (!str::equal(argv[2], "all")) {
        u64 vcpu = 0;
        if (!str::parse_u64(argv[2], str::length(argv[2]), &vcpu) || vcpu > last)
            return shell.fail("vcpu-pin: domain {} has no vCPU {} (0 to {}, or all)", domid, argv[2], last);
        first = last = static_cast<u32>(vcpu);
    }
    lamina_host_info host;
    if (!read_host_info(shell, argv[0], &host)) return 1;
    toolstack::CpuSet hard;
    if (!toolstack::parse_cpu_list(argv[3], host_cpus(host), hard, error))
        return shell.fail("vcpu-pin: {}", error.text());
    auto failed = [&](u32 vcpu, const char* call, i64 result) {
        return shell.fail("vcpu-pin: domain {} vCPU {}: {}: {}", domid, vcpu, call, lamina_errno_name(result));
    };
    for (u32 vcpu = first; vcpu <= last; ++vcpu) {
        lamina_sched_affinity affinity;
        const i64 got = lamina_hc_sched_get_affinity(domid, vcpu, gpa(&affinity));
        if (got < 0) return failed(vcpu, "sched_get_affinity", got);
        toolstack::store_cpu_set(hard, affinity.hard);
        const i64 set = lamina_hc_sched_set_affinity(domid, vcpu, gpa(&affinity));
        if (set < 0) return failed(vcpu, "sched_set_affinity", set);
    }
    return 0;
}

// xl vcpu-list's columns, as far as the ABI has them: no vCPU's current CPU ("-"), and time only
// per domain (lamina_domain_info.cpu_time_ns), so each row shows its domain's, all vCPUs together.
void print_vcpus(Shell& shell, const lamina_domain_info& info, u32 cpus) {
    const Seconds time(info.cpu_time_ns);
    for (u32 vcpu = 0; vcpu < info.max_vcpus; ++vcpu) {
        shell.print("{:<32} {:>5} {:>5} {:>5} {:>5} {:>7}.{}  ", FieldText(info.name).text, info.domid, vcpu, "-",
                    toolstack::vcpu_state(info, vcpu), time.whole, time.tenths);
        lamina_sched_affinity affinity;
        if (lamina_hc_sched_get_affinity(info.domid, vcpu, gpa(&affinity)) < 0) {
            shell.print("- / -\n");
            continue;
        }
        toolstack::format_affinity(shell.out(), toolstack::cpu_set_of(affinity.hard), cpus);
        shell.print(" / ");
        toolstack::format_affinity(shell.out(), toolstack::cpu_set_of(affinity.soft), cpus);
        shell.print("\n");
    }
}

int vcpu_list_command(Shell& shell, int argc, const char* const* argv) {
    lamina_host_info host;
    if (!read_host_info(shell, argv[0], &host)) return 1;
    return named_domain_or_all(
        shell, argc, argv,
        [&] {
            shell.print("{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n", "Name", "ID", "VCPU", "CPU", "State",
                        "Time(s)", "Affinity (Hard / Soft)");
        },
        [&](const lamina_domain_info& info) { print_vcpus(shell, info, host_cpus(host)); });
}

int images_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 1) return shell.usage_error(argv[0]);
    if (boot_images().count() == 0) {
        shell.print("no boot images (the hypervisor passed Dom0 no modules)\n");
        return 0;
    }
    shell.print("{:<24} {:>10}  {}\n", "Name", "Size", "Kind");
    for (const toolstack::BootImage& image : boot_images())
        shell.print("{:<24} {:>10}  {}\n", image.name, image.size, image_kind_name(classify(image)));
    return 0;
}

// The control domain ends the machine by shutting itself down, as Xen's Dom0 does
// (SCHEDOP_shutdown with SHUTDOWN_poweroff): the hypervisor powers off.
int poweroff_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 1) return shell.usage_error(argv[0]);
    shell.print("Powering off.\n");
    console().flush();
    const i64 result = lamina_hc_shutdown(LAMINA_SHUTDOWN_POWEROFF);
    return shell.fail("poweroff: shutdown: {}", lamina_errno_name(result));
}

constexpr Command kSchedCredits[] = {
    {"info", "info", "show the host: hypervisor, CPUs, memory", info_command},
    {"list", "list [domain]", "list the domains (or one)", list_command},
    {"images", "images", "list the boot images (kernels, configs) domains are created from", images_command},
    {"create", "create [-p] <config|image> [key=value...]",
     "create a domain from a config or a kernel image; key=value overrides the config (-p: leave it paused)",
     create_command},
    {"destroy", "destroy <domain>", "end a domain at once and free its memory", destroy_command},
    {"shutdown", "shutdown <domain>", "power a domain off; its config's on_poweroff follows", shutdown_command},
    {"reboot", "reboot <domain>", "reboot a domain; its config's on_reboot follows", reboot_command},
    {"pause", "pause <domain>", "stop running a domain's vCPUs", pause_command},
    {"unpause", "unpause <domain>", "run a paused (or just created) domain's vCPUs", unpause_command},
    {"console", "console [-n] <domain>",
     "show a domain's console and type into it, Ctrl-] returns (-n: print its output so far and return)",
     console_command},
    {"top", "top [-n iterations] [-d seconds]",
     "show each domain's CPU share and VM exits every -d seconds (2) until a key, or -n times", top_command},
    {"sched-credit", "sched-credit [-d <domain> [-w <weight>] [-c <cap>]] [-s [-t <tslice_ms>] [-r <ratelimit_us>]]",
     "show or set domains' credit weight (1 to 65535) and cap (% of a CPU, 0: none), or the pool's (-s) time slice "
     "and rate limit",
     sched_credit_command},
    {"vcpu-pin", "vcpu-pin <domain> <vcpu|all> <cpus>",
     "pin vCPUs to host CPUs (hard affinity): cpus as in xl, \"all\", \"0-3,5\", \"all,^1\"", vcpu_pin_command},
    {"vcpu-list", "vcpu-list [domain]", "list every domain's vCPUs (or one's): state, time and CPU affinity",
     vcpu_list_command},
    {"dmesg", "dmesg", "print the hypervisor's log", dmesg_command},
    {"bench", "bench [wake]",
     "measure hypercalls, domain creation and a domain's cost, or (wake) how late Dom0 wakes from its timer",
     bench_command},
    {"conformance", "conformance [-q] [-t seconds] [-a \"key=value ...\"] [pattern]",
     "run the conformance test kernels (images test-*, those matching pattern) as domains, one at a time",
     conformance_command},
    {"poweroff", "poweroff", "end every domain and power the machine off", poweroff_command},
};

}  // namespace

CommandTable command_table() { return {kSchedCredits, array_size(kSchedCredits)}; }

shell::DomainDirectory& domain_directory() {
    static HypervisorDomains directory;
    return directory;
}

toolstack::ImageDirectory& boot_images() {
    static toolstack::ImageDirectory directory;
    return directory;
}

}  // namespace lamina::dom0
