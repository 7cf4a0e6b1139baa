// Under QEMU -icount the TSC counts instructions, so these figures are guest instructions and
// the same on every run; elsewhere they are TSC ticks (the µs figures convert with tsc_khz).
#include <dom0/kernel/bench.h>

#include <dom0/kernel/domains.h>
#include <dom0/kernel/events.h>
#include <dom0/kernel/memory.h>
#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {
namespace {

constexpr u64 kNullCalls = 10000;
constexpr const char* kDomain = "lamina-bench";
// A ticker that keeps ticking, in the least RAM a domain can have (its RAM is 2 MiB pages).
constexpr const char* kCreatePaused = "create -p ticker name=lamina-bench memory=2";
constexpr const char* kCreate = "create ticker name=lamina-bench memory=2";
constexpr const char* kDestroy = "destroy lamina-bench";
constexpr u64 kOutputTimeoutNs = 10'000'000'000;

u64 rdtsc() {
    u32 low, high;
    asm volatile("rdtsc" : "=a"(low), "=d"(high));
    return (u64{high} << 32) | low;
}

bool host(lamina_host_info& info) { return lamina_hc_host_info(gpa(&info)) == 0; }

toolstack::ManagedDomain* bench_domain(shell::Shell& shell) {
    const i64 domid = shell.domains().find_by_name(kDomain);
    return domid < 0 ? nullptr : toolstack().find(static_cast<u16>(domid));
}

// How late Dom0's vCPU runs after its one-shot timer's deadline, with whatever else runs
// meanwhile: the wake-up latency of a vCPU that sleeps while others compute.
constexpr u64 kWakeSamples = 50;
constexpr u64 kWakePeriodUs = 7000;  // not a divisor of the 30 ms time slice

int wake_latency(shell::Shell& shell, const lamina_host_info& host) {
    const u64 period_ticks = kWakePeriodUs * host.tsc_khz / 1000;
    u64 worst = 0, total = 0;
    for (u64 sample = 0; sample < kWakeSamples; ++sample) {
        const u64 deadline = rdtsc() + period_ticks;
        // Other events (console input, a domain's output) may end a wait early: wait again.
        for (u64 now = rdtsc(); now < deadline; now = rdtsc())
            wait_for_event((deadline - now) * 1000000 / host.tsc_khz);
        const u64 late = rdtsc() - deadline;
        worst = max(worst, late);
        total += late;
    }
    shell.print("LAMINA STAT wake_latency_max_us={} wake_latency_mean_us={}\n", worst * 1000 / host.tsc_khz,
                total / kWakeSamples * 1000 / host.tsc_khz);
    return 0;
}

}  // namespace

int bench_command(shell::Shell& shell, int argc, const char* const* argv) {
    if (argc == 2 && str::equal(argv[1], "wake")) {
        lamina_host_info info;
        return host(info) ? wake_latency(shell, info) : shell.fail("bench: host_info failed");
    }
    if (argc != 1) return shell.usage_error(argv[0]);
    lamina_host_info before, after;
    if (!host(before)) return shell.fail("bench: host_info failed");

    // The cheapest call there is, from Dom0's kernel: VMCALL/VMMCALL, dispatch, back.
    const u64 start = rdtsc();
    for (u64 i = 0; i < kNullCalls; ++i) (void)lamina_hc_version();
    shell.print("LAMINA STAT dom0_null_hypercall={}\n", (rdtsc() - start) / kNullCalls);

    // What a domain costs the hypervisor beyond its RAM: free pages before and while it exists,
    // less the pages it owns. A first create and destroy makes the tables and slabs that stay.
    if (shell.run(kCreatePaused) != 0 || shell.run(kDestroy) != 0 || !host(before) || shell.run(kCreatePaused) != 0)
        return shell.fail("bench: could not create the bench domain");
    lamina_domain_info info;
    toolstack::ManagedDomain* domain = bench_domain(shell);
    const bool measured = domain && host(after) && domain_control().get_info(domain->built.domid, info) >= 0;
    if (shell.run(kDestroy) != 0 || !measured) return shell.fail("bench: the bench domain went wrong");
    const u64 overhead_pages = before.free_pages - after.free_pages - info.pages;
    shell.print("LAMINA STAT domain_overhead_kib={}\n", overhead_pages * 4);

    // From the create command to the first byte of the domain's console in Dom0.
    const u64 create_start = rdtsc();
    if (shell.run(kCreate) != 0 || !(domain = bench_domain(shell))) return shell.fail("bench: create failed");
    const u64 deadline = create_start + kOutputTimeoutNs / 1000000 * before.tsc_khz;
    for (;;) {
        toolstack().drain_consoles();
        if (domain->history.total() != 0 || rdtsc() >= deadline) break;
        wait_for_event(1'000'000);
    }
    const u64 output = rdtsc();
    const bool spoke = domain->history.total() != 0;
    shell.run(kDestroy);
    if (!spoke) return shell.fail("bench: the bench domain said nothing within 10 s");
    shell.print("LAMINA STAT create_to_output_tsc={} create_to_output_us={}\n", output - create_start,
                (output - create_start) * 1000 / before.tsc_khz);
    return 0;
}

}  // namespace lamina::dom0
