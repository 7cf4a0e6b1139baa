// A discrete-event simulator around the credit scheduler's policy: N CPUs, domains of vCPUs with
// scripted behaviour, an event queue ordered by time. It plays the hypervisor's part: arms each
// CPU's one-shot timer at Decision::next_event_ns, delivers reschedule IPIs after a latency,
// runs vCPUs for the CPU time their script needs, and calls block()/wake() when they halt or
// get an event. What it measures is measured on its own clock (not taken from the scheduler's
// statistics): CPU time per vCPU, wake-to-run latency, decisions and the run-queue elements each
// decision inspected. Host-only (tests and tests/sched_bench).
#pragma once

#include <hypervisor/sched/credit_scheduler.h>

#include <memory>
#include <queue>
#include <vector>

namespace lamina::sched::sim {

struct Config {
    u32 cpus = 2;
    u64 ipi_latency_ns = 2 * kNsPerUs;
    u64 decision_cost_ns = 0;  // CPU time each schedule() call takes before the vCPU runs
    PoolParams pool = {};
};

enum class Behaviour : u8 {
    Hog,           // always runnable
    IoBound,       // runs run_ns, blocks for sleep_ns (a timer wakes it), again and again
    EventHandler,  // runs run_ns, then blocks until an event, again and again
    Waker,         // always runnable; every interval_ns of its CPU time sends an event to target
};

struct LatencySummary {
    u64 count = 0;
    u64 max_ns = 0;
    u64 p99_ns = 0;
    u64 mean_ns = 0;
};

struct WorkSummary {
    u64 decisions = 0;
    u64 inspected = 0;      // run-queue elements, over all decisions
    u64 max_inspected = 0;  // the most in one decision
};

class Simulator {
public:
    explicit Simulator(const Config& config);
    Simulator(const Simulator&) = delete;
    Simulator& operator=(const Simulator&) = delete;

    u32 add_domain(u32 weight = CreditScheduler::kDefaultWeight, u32 cap = 0);
    u32 add_hog(u32 domain);
    u32 add_io_bound(u32 domain, u64 run_ns, u64 sleep_ns);
    u32 add_event_handler(u32 domain, u64 run_ns);
    u32 add_waker(u32 domain, u32 target_vcpu, u64 interval_ns);
    void set_affinity(u32 vcpu, const CpuSet& hard, const CpuSet& soft = CpuSet());

    // Wakes every vCPU at the current time (not counted as wake-up latency).
    void start();
    void run_for(u64 duration_ns);
    u64 now() const { return now_; }

    // Measurements cover the time since the last reset (or the start).
    void reset_measurements();
    u64 measured_ns() const { return now_ - measure_start_; }
    u64 vcpu_run_ns(u32 vcpu) const;
    u64 domain_run_ns(u32 domain) const;
    // CPU time of the domain over the measured time, in CPUs (1.0 = one whole CPU).
    double domain_cpus(u32 domain) const;
    LatencySummary wake_latency(u32 vcpu) const;
    WorkSummary work(u32 cpu) const;
    WorkSummary work_all() const;
    u64 affinity_violations() const { return affinity_violations_; }

    CreditScheduler& scheduler() { return *scheduler_; }
    SchedVcpu& sched_vcpu(u32 vcpu) { return vcpus_[vcpu]->sched; }
    SchedDomain& sched_domain(u32 domain) { return domains_[domain]->sched; }

private:
    struct Domain {
        SchedDomain sched;
        std::vector<u32> vcpus;
    };
    struct Vcpu {
        SchedVcpu sched;
        Behaviour behaviour = Behaviour::Hog;
        u32 domain = 0;
        u64 run_ns = 0;       // per burst (IoBound, EventHandler)
        u64 sleep_ns = 0;     // IoBound
        u64 interval_ns = 0;  // Waker
        u32 target = 0;       // Waker
        u64 remaining_ns = 0; // CPU time until its next action
        bool blocked = true;
        bool awaiting_dispatch = false;
        u64 woken_at = 0;
        u64 executed_ns = 0;  // measured
        std::vector<u64> latencies;
        CpuSet hard;          // to check every dispatch against
    };
    struct Cpu {
        int current = -1;     // vCPU index
        u64 dispatched_at = 0;
        u64 dispatch_generation = 0;
        u64 timer_generation = 0;
        WorkSummary work;
    };
    enum class EventKind : u8 { Timer, Ipi, Action, WakeTimer };
    struct Event {
        u64 time;
        u64 sequence;
        EventKind kind;
        u32 index;       // CPU (Timer, Ipi, Action) or vCPU (WakeTimer)
        u64 generation;  // Timer, Action: stale when it differs from the CPU's
        bool operator>(const Event& other) const {
            return time != other.time ? time > other.time : sequence > other.sequence;
        }
    };

    u32 add_vcpu(u32 domain, Behaviour behaviour);
    void post(u64 time, EventKind kind, u32 index, u64 generation = 0);
    void handle(const Event& event);
    void settle(u32 cpu);
    void reschedule(u32 cpu);
    void deliver(const Tickle& tickle, u32 from_cpu);
    void wake(u32 vcpu, u32 from_cpu);
    void act(u32 cpu);

    Config config_;
    std::unique_ptr<CreditScheduler> scheduler_;
    std::vector<std::unique_ptr<Domain>> domains_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    std::vector<Cpu> cpus_;
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
    u64 now_ = 0;
    u64 sequence_ = 0;
    u64 measure_start_ = 0;
    u64 affinity_violations_ = 0;
};

// ---- Scenarios behind the figures (tests assert them, tests/sched_bench prints them).

struct HogDomain {
    u32 weight = CreditScheduler::kDefaultWeight;
    u32 cap = 0;
    u32 hogs = 1;
};

struct ShareFigure {
    double cpus;           // measured
    double expected_cpus;  // by weight, caps and vCPU counts
};

struct HogMixResult {
    std::vector<ShareFigure> domains;
    WorkSummary work;
    u64 affinity_violations = 0;
};

// What each domain of CPU-bound vCPUs should get on `cpus` CPUs: shares by weight x vCPUs, no
// domain beyond its cap or its vCPU count, the excess shared among the others.
std::vector<double> expected_cpus(u32 cpus, const std::vector<HogDomain>& domains);

// Every domain's hogs start together and run for duration_ns.
HogMixResult run_hog_mix(const Config& config, const std::vector<HogDomain>& domains, u64 duration_ns);

struct LatencyResult {
    LatencySummary timer_wakes;  // an I/O-bound vCPU: runs 20 us, sleeps 2 ms
    LatencySummary event_wakes;  // an event handler (runs 20 us) woken every 3 ms by a hog
};

// `hogs` CPU-bound vCPUs (one domain each, one of them the waker) beside the two vCPUs whose
// wake-to-run latency is measured (a domain each, default weight). Those two use about 1% of
// a CPU each, below their share even among 128 vCPUs on 4 CPUs: a vCPU that uses more than its
// share has no credit when it wakes, and waits its turn like any other.
LatencyResult run_latency(const Config& config, u32 hogs, u64 duration_ns);

// CPU 0 runs local_hogs pinned to it; remote_hogs may run on every CPU but 0, so they sit in the
// other CPUs' queues as migratable work CPU 0 must look at (and may not take) when it steals.
WorkSummary run_remote_load(const Config& config, u32 local_hogs, u32 remote_hogs, u64 duration_ns);

}  // namespace lamina::sched::sim
