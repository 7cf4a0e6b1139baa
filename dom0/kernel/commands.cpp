#include <dom0/kernel/commands.h>

#include <dom0/kernel/console.h>
#include <dom0/shell/shell.h>
#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {
namespace {

using shell::Command;
using shell::Message;
using shell::Shell;

// Text from a fixed-size field the hypervisor filled: up to its NUL or the field's end, and
// anything a terminal would act on shown as '?'.
template <usize N>
struct FieldText {
    char text[N + 1];

    explicit FieldText(const char (&field)[N]) {
        const usize length = str::length_bounded(field, N);
        for (usize i = 0; i < length; ++i) text[i] = field[i] >= 0x20 && field[i] < 0x7f ? field[i] : '?';
        text[length] = '\0';
    }
};

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

// "Domain 3" does not exist, or the call about it failed: one line either way.
int domain_call_failed(Shell& shell, const char* command, u16 domid, i64 result) {
    if (result == -LAMINA_ESRCH) return shell.fail("{}: no domain {}", command, domid);
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

int list_command(Shell& shell, int argc, const char* const* argv) {
    if (argc > 2) return shell.usage_error(argv[0]);
    lamina_domain_info info;
    if (argc == 2) {
        u16 domid = 0;
        int status = 0;
        if (!one_domain(shell, argc, argv, &domid, &status)) return status;
        const i64 result = lamina_hc_domain_get_info(domid, gpa(&info));
        if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
    }
    shell.print("{:<32} {:>5} {:>8} {:>5}  {:<9} {:>9}\n", "Name", "ID", "Mem(MiB)", "VCPUs", "State", "Time(s)");
    if (argc == 2) {
        print_domain(shell, info);
        return 0;
    }
    const i64 result = for_each_domain([&](const lamina_domain_info& each) {
        print_domain(shell, each);
        return true;
    });
    if (result < 0) return shell.fail("list: domain_list: {}", lamina_errno_name(result));
    return 0;
}

int info_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 1) return shell.usage_error(argv[0]);
    lamina_host_info host;
    const i64 result = lamina_hc_host_info(gpa(&host));
    if (result < 0) return shell.fail("info: host_info: {}", lamina_errno_name(result));
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
    shell.print("{:<15}: {} MiB\n", "free_memory", host.free_pages / kPagesPerMiB);
    shell.print("{:<15}: {}\n", "max_domains", host.max_domains);
    shell.print("{:<15}: {}\n", "max_vcpus", host.max_vcpus);
    shell.print("{:<15}: {}.{} s\n", "uptime", uptime.whole, uptime.tenths);
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
    const i64 result = lamina_hc_domain_pause(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

int unpause_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    const i64 result = lamina_hc_domain_unpause(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

int destroy_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("destroy: domain 0 is Dom0; use poweroff");
    const i64 result = lamina_hc_domain_destroy(domid);
    return result < 0 ? domain_call_failed(shell, argv[0], domid, result) : 0;
}

// Not yet: guest consoles need Dom0's device models. Until then it says so about a real domain.
int console_command(Shell& shell, int argc, const char* const* argv) {
    u16 domid = 0;
    int status = 0;
    if (!one_domain(shell, argc, argv, &domid, &status)) return status;
    if (domid == LAMINA_DOMID_CONTROL) return shell.fail("console: domain 0 is this console");
    lamina_domain_info info;
    const i64 result = lamina_hc_domain_get_info(domid, gpa(&info));
    if (result < 0) return domain_call_failed(shell, argv[0], domid, result);
    return shell.fail("console: domain {} ({}): guest consoles are not available yet", domid,
                      FieldText(info.name).text);
}

// Not yet: the domain builder is the toolstack's next piece. Its arguments are checked already.
int create_command(Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "p");
    Message error;
    char letter;
    while ((letter = options.next(error)) != 0)
        if (letter == '?') return shell.fail("create: {}", error.text());
    if (options.operand_count() < 1) return shell.usage_error(argv[0]);
    for (int i = 1; i < options.operand_count(); ++i) {
        const char* assignment = options.operand(i);
        usize at = 0;
        while (assignment[at] && assignment[at] != '=') ++at;
        if (at == 0 || !assignment[at]) return shell.fail("create: \"{}\" is not key=value", assignment);
    }
    return shell.fail("create: {}: building domains is not available yet", options.operand(0));
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

constexpr Command kCommands[] = {
    {"info", "info", "show the host: hypervisor, CPUs, memory", info_command},
    {"list", "list [domain]", "list the domains (or one)", list_command},
    {"create", "create <config|image> [-p] [key=value...]",
     "create a domain from a config file or a kernel image (-p: leave it paused)", create_command},
    {"destroy", "destroy <domain>", "end a domain at once and free its memory", destroy_command},
    {"pause", "pause <domain>", "stop running a domain's vCPUs", pause_command},
    {"unpause", "unpause <domain>", "run a paused domain's vCPUs again", unpause_command},
    {"console", "console <domain>", "attach to a domain's console (Ctrl-] comes back)", console_command},
    {"dmesg", "dmesg", "print the hypervisor's log", dmesg_command},
    {"poweroff", "poweroff", "end every domain and power the machine off", poweroff_command},
};

}  // namespace

CommandTable command_table() { return {kCommands, array_size(kCommands)}; }

shell::DomainDirectory& domain_directory() {
    static HypervisorDomains directory;
    return directory;
}

}  // namespace lamina::dom0
