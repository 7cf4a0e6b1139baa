// Prints the credit scheduler's figures, measured in the discrete-event simulator
// (tests/unit/sched_simulator.h): one `LAMINA STAT sched.<name>=<value>` line per figure, then
// a table for people. The unit tests (test_credit_scheduler.cpp) assert the same scenarios.
#include "sched_simulator.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace lamina {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    std::abort();
}
}  // namespace lamina

namespace {

using namespace lamina;
using namespace lamina::sched;
using namespace lamina::sched::sim;

constexpr u64 kDurationNs = 10'000 * kNsPerMs;  // 10 s simulated per scenario

struct Row {
    std::string key;
    std::string value;
    std::string unit;
    std::string what;
};

std::vector<Row> rows;

std::string fixed(double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

void add(const std::string& key, const std::string& value, const std::string& unit, const std::string& what) {
    rows.push_back({key, value, unit, what});
}

void share_rows(const std::string& prefix, const std::string& label, const std::vector<HogDomain>& specs,
                const HogMixResult& result) {
    for (usize i = 0; i < specs.size(); ++i) {
        std::string name = "w" + std::to_string(specs[i].weight);
        if (specs[i].cap != 0) name += "_cap" + std::to_string(specs[i].cap);
        add(prefix + "_" + name + "_pct", fixed(100 * result.domains[i].cpus, 2), "% of a CPU",
            label + ", " + std::to_string(specs[i].hogs) + " hogs, weight " + std::to_string(specs[i].weight) +
                (specs[i].cap ? ", cap " + std::to_string(specs[i].cap) : "") + " (expected " +
                fixed(100 * result.domains[i].expected_cpus, 2) + ")");
    }
}

void latency_rows(const std::string& prefix, const std::string& label, const LatencyResult& result) {
    add(prefix + "_timer_max_us", fixed(result.timer_wakes.max_ns / 1000.0, 1), "us", label + ": timer wake, max");
    add(prefix + "_timer_p99_us", fixed(result.timer_wakes.p99_ns / 1000.0, 1), "us", label + ": timer wake, p99");
    add(prefix + "_timer_mean_us", fixed(result.timer_wakes.mean_ns / 1000.0, 1), "us", label + ": timer wake, mean");
    add(prefix + "_event_max_us", fixed(result.event_wakes.max_ns / 1000.0, 1), "us", label + ": event wake, max");
    add(prefix + "_event_p99_us", fixed(result.event_wakes.p99_ns / 1000.0, 1), "us", label + ": event wake, p99");
    add(prefix + "_event_mean_us", fixed(result.event_wakes.mean_ns / 1000.0, 1), "us", label + ": event wake, mean");
}

void work_rows(const std::string& key, const std::string& label, const WorkSummary& work) {
    const double mean = work.decisions ? double(work.inspected) / double(work.decisions) : 0;
    add(key + "_mean", fixed(mean, 2), "elements", label + ": run-queue elements per decision, mean");
    add(key + "_max", std::to_string(work.max_inspected), "elements", label + ": most in one decision");
}

}  // namespace

int main() {
    Config two_cpus;
    two_cpus.cpus = 2;
    Config four_cpus;
    four_cpus.cpus = 4;

    const std::vector<HogDomain> fairness = {{256, 0, 2}, {512, 0, 2}, {1024, 0, 2}};
    share_rows("sched.fair_2cpu", "2 CPUs", fairness, run_hog_mix(two_cpus, fairness, kDurationNs));

    const std::vector<HogDomain> capped = {{256, 25, 2}, {256, 0, 2}, {512, 0, 2}};
    share_rows("sched.cap_2cpu", "2 CPUs", capped, run_hog_mix(two_cpus, capped, kDurationNs));

    latency_rows("sched.wake_2cpu", "2 CPUs, 6 hogs", run_latency(two_cpus, 6, kDurationNs));

    const std::vector<HogDomain> scale = {{256, 0, 32}, {512, 0, 32}, {1024, 0, 32}, {256, 25, 32}};
    const HogMixResult scale_result = run_hog_mix(four_cpus, scale, kDurationNs);
    share_rows("sched.scale_4cpu_128v", "4 CPUs, 128 vCPUs", scale, scale_result);
    latency_rows("sched.wake_4cpu_128v", "4 CPUs, 126 hogs", run_latency(four_cpus, 126, kDurationNs));

    const std::vector<HogDomain> small = {{256, 0, 2}, {512, 0, 2}, {1024, 0, 2}, {256, 25, 2}};
    work_rows("sched.work_4cpu_8v", "4 CPUs, 8 vCPUs", run_hog_mix(four_cpus, small, kDurationNs).work);
    work_rows("sched.work_4cpu_128v", "4 CPUs, 128 vCPUs", scale_result.work);
    // Grows until the peers' queues fill the scan window, then levels off.
    for (const u32 remote : {6u, 126u, 510u}) {
        work_rows("sched.work_cpu0_remote_" + std::to_string(remote) + "v",
                  "CPU 0 of 4, 2 local + " + std::to_string(remote) + " remote vCPUs",
                  run_remote_load(four_cpus, 2, remote, kDurationNs));
    }

    for (const Row& row : rows) std::printf("LAMINA STAT %s=%s\n", row.key.c_str(), row.value.c_str());
    std::printf("\nCredit scheduler figures (simulator, %llu s per scenario, IPI latency %llu us)\n",
                static_cast<unsigned long long>(kDurationNs / 1'000'000'000),
                static_cast<unsigned long long>(two_cpus.ipi_latency_ns / 1000));
    usize width = 0;
    for (const Row& row : rows) width = std::max(width, row.what.size());
    for (const Row& row : rows) {
        std::printf("  %-*s %10s %s\n", static_cast<int>(width), row.what.c_str(), row.value.c_str(), row.unit.c_str());
    }
    return 0;
}
