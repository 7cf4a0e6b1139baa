// The credit scheduler's policy: which vCPU each physical CPU runs, for how long, and which CPU
// to interrupt when a vCPU wakes. Xen's credit scheduler (xen/common/sched/credit.c) is the
// model: per-domain weight and cap, credits handed out every accounting period in proportion to
// weight, BOOST > UNDER > OVER, per-CPU run queues, work stealing. Where this one differs:
//   - credit is burnt for exactly the nanoseconds a vCPU ran, at every deschedule (Xen samples
//     at ticks), so yielding just before a tick escapes nothing;
//   - an UNDER vCPU's slice ends when its credit does, so shares track weights within one slice
//     instead of drifting until the next accounting;
//   - accounting hands out the CPU time that actually elapsed, and never more to a vCPU than
//     brings it to the credit ceiling: what an I/O-bound vCPU leaves goes to the others in the
//     same period, so no credit is lost and the hogs beside it keep their weights;
//   - credit is conserved while the CPUs are busy, so an offset common to all vCPUs (a start,
//     a transient) would never go away; each accounting shifts the vCPUs that competed all
//     period back to a mean of 0, which keeps UNDER meaning "has not had its share";
//   - caps are a per-domain budget of nanoseconds (debt carries over, savings for two periods),
//     exact in the long run;
//   - every decision looks at a bounded number of queue elements: the local queue is one FIFO
//     per priority, a steal scans at most kStealScanLimit elements of each peer queue and only
//     peers with migratable work, and peer locks are only ever try-locked.
//
// Pure logic: the caller passes the time (u64 nanoseconds, monotonic), owns every object
// (SchedDomain and SchedVcpu are embedded in the hypervisor's domain and vCPU) and carries out
// the decisions (context switch, one-shot timer, reschedule IPIs). No allocation, no floating
// point, no clock reads.
//
// Locking: one SpinLock per CPU run queue guards the vCPUs that queue owns (SchedVcpu::cpu_)
// and the queue itself; the pool lock guards the domain list, weights and the accounting. The
// pool lock comes first (pool -> run queue), two run queues are taken in CPU-index order, and a
// path holding a run-queue lock only ever try-locks another. Every entry point may be called
// concurrently from any CPU; the hypervisor calls them with interrupts disabled, because wake()
// runs from interrupt handlers and takes run-queue locks.
#pragma once

#include <lamina/atomic.h>
#include <lamina/list.h>
#include <lamina/spinlock.h>
#include <lamina/types.h>

namespace lamina::sched {

constexpr u32 kMaxCpus = 256;  // as many as the hypervisor brings up
constexpr u32 kNoCpu = ~u32{0};
constexpr u64 kNever = ~u64{0};
constexpr u64 kNsPerUs = 1000;
constexpr u64 kNsPerMs = 1000 * kNsPerUs;

// A set of physical CPUs (affinity masks, reschedule targets).
class CpuSet {
public:
    static constexpr u32 kWords = kMaxCpus / 64;

    constexpr CpuSet() = default;
    static CpuSet of(u32 cpu);
    static CpuSet first_n(u32 count);  // CPUs 0..count-1

    bool test(u32 cpu) const { return cpu < kMaxCpus && ((words_[cpu / 64] >> (cpu % 64)) & 1) != 0; }
    void set(u32 cpu);
    void clear(u32 cpu);
    bool empty() const;
    u32 count() const;
    // The first member at or after `cpu` (kNoCpu if none); cycle_from wraps around to 0.
    u32 next_from(u32 cpu) const;
    u32 cycle_from(u32 cpu) const;
    u32 first() const { return next_from(0); }

    CpuSet operator&(const CpuSet& other) const;
    CpuSet operator|(const CpuSet& other) const;
    bool operator==(const CpuSet& other) const;
    bool intersects(const CpuSet& other) const { return !(*this & other).empty(); }

    // Raw words, for hypercall bitmaps (bit n of word n/64 is CPU n).
    u64 word(u32 index) const { return index < kWords ? words_[index] : 0; }
    void set_word(u32 index, u64 bits);

private:
    u64 words_[kWords] = {};
};

// Highest runs first. A running vCPU's priority is the one it was picked with.
enum class Priority : u8 { Idle, Over, Under, Boost };
const char* priority_name(Priority priority);

enum class StatusCode : u8 {
    Ok,
    OutOfRange,   // `parameter` outside `valid`
    NoOnlineCpu,  // a hard affinity without an online CPU
    Busy,         // the object is in use (a domain with vCPUs, a vCPU that is not blocked)
    Full,         // kMaxVcpus vCPUs already
};

struct ValueRange {
    u64 min;
    u64 max;
};

struct Status {
    StatusCode code = StatusCode::Ok;
    const char* parameter = nullptr;  // which value was refused, for OutOfRange
    ValueRange valid = {};            // the accepted range, for OutOfRange

    bool ok() const { return code == StatusCode::Ok; }
    static Status out_of_range(const char* parameter, ValueRange valid) {
        return {StatusCode::OutOfRange, parameter, valid};
    }
};

struct PoolParams {
    u64 timeslice_ns = 30 * kNsPerMs;
    u64 ratelimit_ns = 1 * kNsPerMs;  // 0: no rate limit
};

struct VcpuStats {
    u64 run_ns;
    u64 wakeups;
    u64 context_switches;  // times switched in
    u64 migrations;        // times it changed CPU
};

struct DomainStats {
    u64 run_ns;
    u64 wakeups;
    u64 context_switches;
};

struct CpuStats {
    u64 decisions;          // schedule() calls
    u64 inspected;          // run-queue elements looked at by those calls (scale figure)
    u64 max_inspected;      // the most any one call looked at
    u64 steals;             // vCPUs taken from another CPU's queue
    u64 trylock_failures;   // peers skipped because their lock was busy
    u64 accountings;        // accounting periods this CPU ran
};

// Where credit went that no vCPU got to spend; both stay near 0 while every CPU is busy.
struct PoolStats {
    u64 accountings;
    u64 unused_supply_ns;  // CPU time nobody could take (idle CPUs, everyone at the ceiling)
    u64 forgiven_debt_ns;  // debt beyond the floor, dropped
};

// A CPU that must run schedule(): the caller sends it a reschedule IPI (or, for itself,
// reschedules before returning to the guest).
struct Tickle {
    u32 cpu = kNoCpu;
    bool needed() const { return cpu != kNoCpu; }
};

class SchedVcpu;

struct Decision {
    SchedVcpu* next = nullptr;  // null: idle (halt until an interrupt)
    u64 next_event_ns = kNever; // call schedule() on this CPU again at this time at the latest
    CpuSet reschedule;          // CPUs to send a reschedule IPI (rarely this one: reschedule again)
};


class SchedDomain;

// The scheduler's part of a vCPU, embedded in the hypervisor's vCPU. Everything here belongs to
// the CreditScheduler; the owner only reads id() and domain().
class SchedVcpu {
public:
    SchedVcpu() = default;
    SchedVcpu(const SchedVcpu&) = delete;
    SchedVcpu& operator=(const SchedVcpu&) = delete;

    u32 id() const { return id_; }
    SchedDomain* domain() const { return domain_; }

private:
    friend class CreditScheduler;
    friend class SchedDomain;  // names domain_link_ for its vCPU list

    enum class State : u8 {
        Blocked,    // not runnable (the guest halted, or the hypervisor paused it)
        Queued,     // in a priority queue of run queue cpu_
        Parked,     // runnable, but its capped domain has overdrawn: in cpu_'s parked list
        Running,    // current on cpu_
        Migrating,  // runnable, in transit from cpu_ to a CPU its hard affinity allows
    };

    ListNode queue_link_;   // a priority queue or the parked list of cpu_
    ListNode domain_link_;  // its domain's vCPU list (pool lock)
    SchedDomain* domain_ = nullptr;
    u32 id_ = 0;

    // Guarded by the lock of run queue cpu_ (cpu_ itself changes only with that lock and the
    // new queue's lock held, so it can be read first and checked again once locked).
    Atomic<u32> cpu_{0};
    Atomic<u8> state_{static_cast<u8>(State::Blocked)};  // also read, racily, by accounting
    Priority priority_ = Priority::Over;
    bool boosted_ = false;
    bool blocking_ = false;  // block() came while Running or Migrating: stop at the next decision
    bool yielding_ = false;
    bool pinned_ = false;    // hard affinity is one CPU: never a steal candidate
    bool has_run_ = false;   // its first wake is a start, not an event: no boost
    CpuSet hard_affinity_;
    CpuSet soft_affinity_;   // within hard_affinity_; empty: no preference
    Atomic<u64> run_start_ns_{0};  // start of the stretch not yet charged (Running)

    // Credit in nanoseconds of CPU time: handed out by accounting, burnt by running.
    Atomic<i64> credit_ns_{0};
    // Since the last accounting: runnable at some time / blocked at some time.
    Atomic<u8> ran_or_woke_{0};
    Atomic<u8> slept_{0};

    // Accounting scratch (pool lock).
    bool acct_active_ = false;
    bool acct_settled_ = false;
    i64 acct_credit_ns_ = 0;  // credit less the time it has run and not been charged for yet
    u64 acct_room_ns_ = 0;

    Atomic<u64> run_ns_{0};
    Atomic<u64> wakeups_{0};
    Atomic<u64> context_switches_{0};
    Atomic<u64> migrations_{0};
};

// The scheduler's part of a domain, embedded in the hypervisor's domain.
class SchedDomain {
public:
    SchedDomain() = default;
    SchedDomain(const SchedDomain&) = delete;
    SchedDomain& operator=(const SchedDomain&) = delete;

    u32 id() const { return id_; }

private:
    friend class CreditScheduler;

    ListNode pool_link_;
    IntrusiveList<SchedVcpu, &SchedVcpu::domain_link_> vcpus_;  // pool lock
    u32 id_ = 0;
    // Set under the pool lock, read without it.
    Atomic<u32> weight_{0};
    Atomic<u32> cap_{0};          // percent of one CPU, 0 = none
    Atomic<i64> budget_ns_{0};    // capped: CPU time it may still use; <= 0 parks its vCPUs
    Atomic<u32> parked_vcpus_{0};

    // Accounting scratch (pool lock).
    u32 acct_active_ = 0;
    bool acct_settled_ = false;
    u64 acct_peak_ns_ = 0;
    u64 acct_grant_ns_ = 0;

    Atomic<u64> run_ns_{0};
    Atomic<u64> wakeups_{0};
    Atomic<u64> context_switches_{0};
};

class CreditScheduler {
public:
    static constexpr u32 kDefaultWeight = 256;
    static constexpr ValueRange kWeightRange = {1, 65535};
    static constexpr ValueRange kTimesliceRange = {1 * kNsPerMs, 1000 * kNsPerMs};
    // Below this a timer costs more than the slice it ends (Xen's CSCHED_MIN_TIMER).
    static constexpr u64 kMinSliceNs = 100 * kNsPerUs;
    // Credit is handed out this often. A vCPU's credit stays between -(period + timeslice), the
    // most debt remembered, and +(period + timeslice), what it may save: a vCPU that waited a
    // period must still be able to hold a full timeslice.
    static constexpr u64 kAccountingPeriodNs = 30 * kNsPerMs;
    // A capped domain that could not spend its budget keeps at most this many periods of it.
    static constexpr u64 kCapCarryPeriods = 2;
    // A new vCPU starts a little ahead, so that it wakes boosted until its first accounting (at
    // most a period away) if it uses up to a tenth of a CPU; more would let every new vCPU run
    // that long, weight or not, before the credits take over.
    static constexpr i64 kStartCreditNs = static_cast<i64>(kAccountingPeriodNs / 10);
    // An OVER-only CPU looks for better work elsewhere at most this often (an idle one always),
    // twice as long after each try that found nothing, up to the maximum, until it finds some
    // or an accounting changes the picture.
    static constexpr u64 kStealIntervalNs = 1 * kNsPerMs;
    static constexpr u64 kMaxStealIntervalNs = 8 * kNsPerMs;
    // Elements of each priority queue of a peer that one steal looks at.
    static constexpr u32 kStealScanLimit = 4;
    // Keeps sum(weight x vCPUs) below 2^32, which the accounting arithmetic relies on.
    static constexpr u32 kMaxVcpus = 65535;

    CreditScheduler() = default;
    CreditScheduler(const CreditScheduler&) = delete;
    CreditScheduler& operator=(const CreditScheduler&) = delete;

    // CPUs 0..cpu_count-1 are online and idle; accounting starts at now_ns.
    void init(u32 cpu_count, u64 now_ns);
    u32 cpu_count() const { return cpu_count_; }

    // Pool parameters. The rate limit is 0 (off) or within ratelimit_range() for that timeslice.
    Status set_pool_params(const PoolParams& params);
    PoolParams pool_params() const;
    static ValueRange ratelimit_range(u64 timeslice_ns) { return {kMinSliceNs, timeslice_ns}; }
    ValueRange cap_range() const { return {0, 100 * u64{cpu_count_}}; }

    // Domains: weight within kWeightRange, cap (percent of one CPU) within cap_range().
    Status add_domain(SchedDomain& domain, u32 id, u32 weight = kDefaultWeight, u32 cap = 0);
    Status remove_domain(SchedDomain& domain);  // Busy while it has vCPUs
    Status set_weight(SchedDomain& domain, u32 weight);
    // Lifting or raising a cap takes effect at the next accounting.
    Status set_cap(SchedDomain& domain, u32 cap);
    u32 weight(const SchedDomain& domain) const;
    u32 cap(const SchedDomain& domain) const { return domain.cap_.load(MemoryOrder::Relaxed); }

    // vCPUs start Blocked with every online CPU allowed; wake() makes them runnable.
    Status add_vcpu(SchedDomain& domain, SchedVcpu& vcpu, u32 id);
    Status remove_vcpu(SchedVcpu& vcpu);  // Busy unless Blocked (and off its CPU)
    // Hard affinity is where the vCPU may run (at least one online CPU, else NoOnlineCpu), soft
    // where it prefers to (empty or disjoint from hard: no preference). A vCPU running or
    // queued where it may no longer run is moved; *tickle says which CPU must reschedule.
    Status set_affinity(SchedVcpu& vcpu, const CpuSet& hard, const CpuSet& soft, u64 now_ns,
                        Tickle* tickle);
    CpuSet hard_affinity(SchedVcpu& vcpu);
    CpuSet soft_affinity(SchedVcpu& vcpu);

    // The vCPU became runnable (event, interrupt, timer, unpause). Returns the CPU to interrupt:
    // its last CPU if allowed and idle, else an idle allowed CPU (soft affinity first), else one
    // running something it should preempt (BOOST beats UNDER beats OVER), else none.
    Tickle wake(SchedVcpu& vcpu, u64 now_ns);
    // The vCPU stops being runnable (HLT, a blocking hypercall, a pause). A running one stops at
    // its CPU's next schedule(): the returned CPU, which the caller reschedules.
    Tickle block(SchedVcpu& vcpu, u64 now_ns);
    // The running vCPU offers its CPU to anything else runnable (no rate limit applies).
    Tickle yield(SchedVcpu& vcpu, u64 now_ns);

    // Decides what `cpu` runs next. Charges the previous vCPU for exactly the time it ran,
    // honours the rate limit, runs the accounting when its period is over, and steals from
    // other CPUs when this one has nothing better than OVER.
    Decision schedule(u32 cpu, u64 now_ns);

    // Introspection (top, vcpu-list, tests).
    VcpuStats stats(const SchedVcpu& vcpu) const;
    DomainStats stats(const SchedDomain& domain) const;
    CpuStats cpu_stats(u32 cpu) const;
    PoolStats pool_stats() const;
    i64 credit_ns(const SchedVcpu& vcpu) const { return vcpu.credit_ns_.load(MemoryOrder::Relaxed); }
    i64 cap_budget_ns(const SchedDomain& domain) const { return domain.budget_ns_.load(MemoryOrder::Relaxed); }
    Priority priority(SchedVcpu& vcpu);
    bool is_parked(SchedVcpu& vcpu);
    u32 cpu_of(const SchedVcpu& vcpu) const { return vcpu.cpu_.load(MemoryOrder::Relaxed); }
    SchedVcpu* current(u32 cpu);
    // The run-queue lock of `cpu`, for callers that must hold it around their own per-CPU state
    // (and for tests that make a peer busy).
    SpinLock& run_queue_lock(u32 cpu);

private:
    using VcpuList = IntrusiveList<SchedVcpu, &SchedVcpu::queue_link_>;
    using DomainList = IntrusiveList<SchedDomain, &SchedDomain::pool_link_>;
    using State = SchedVcpu::State;

    static constexpr usize kQueueCount = 3;  // Boost, Under, Over

    struct LAMINA_ALIGNED(64) RunQueue {
        SpinLock lock;
        VcpuList queues[kQueueCount];  // one FIFO per priority, by queue_index()
        VcpuList parked;
        SchedVcpu* current = nullptr;
        u64 switched_in_ns = 0;     // when current was switched in (the rate limit counts from it)
        u64 seen_account_epoch = 0;
        u64 seen_unpark_epoch = 0;
        u64 last_steal_ns = 0;
        u64 steal_interval_ns = kStealIntervalNs;
        u32 steal_cursor = 0;
        // Hints read without the lock by wakers, stealers and the accounting.
        Atomic<u32> queued{0};
        Atomic<u32> migratable_queued{0};
        Atomic<u32> parked_count{0};
        Atomic<u8> current_priority{static_cast<u8>(Priority::Idle)};
        Atomic<u64> current_since_ns{0};
        // Statistics (written by this CPU's schedule()).
        Atomic<u64> decisions{0};
        Atomic<u64> inspected{0};
        Atomic<u64> max_inspected{0};
        Atomic<u64> steals{0};
        Atomic<u64> trylock_failures{0};
        Atomic<u64> accountings{0};
    };

    // Idle CPUs, set and claimed without locks.
    class IdleSet {
    public:
        void set(u32 cpu);
        void clear(u32 cpu);
        bool claim(u32 cpu);  // clears; true if it was set
        CpuSet snapshot() const;

    private:
        Atomic<u64> words_[CpuSet::kWords];
    };

    static usize queue_index(Priority priority);
    static State state_of(const SchedVcpu& vcpu) { return static_cast<State>(vcpu.state_.load(MemoryOrder::Relaxed)); }
    static void set_state(SchedVcpu& vcpu, State state) { vcpu.state_.store(static_cast<u8>(state), MemoryOrder::Relaxed); }
    RunQueue& run_queue(u32 cpu) { return run_queues_[cpu]; }
    u64 ratelimit_ns() const { return ratelimit_ns_.load(MemoryOrder::Relaxed); }
    u64 timeslice_ns() const { return timeslice_ns_.load(MemoryOrder::Relaxed); }
    u64 min_slice_ns() const;
    i64 credit_bound_ns() const { return static_cast<i64>(kAccountingPeriodNs + timeslice_ns()); }
    static bool over_cap(const SchedDomain& domain);
    static Priority credit_priority(const SchedVcpu& vcpu);

    // Locking the run queue that owns a vCPU, alone or with another (CPU-index order).
    u32 lock_owner(SchedVcpu& vcpu);
    void lock_pair(u32 a, u32 b);
    void unlock_pair(u32 a, u32 b);

    void enqueue(RunQueue& queue, SchedVcpu& vcpu);
    void dequeue(RunQueue& queue, SchedVcpu& vcpu);
    static void make_blocked(SchedVcpu& vcpu);
    void park(RunQueue& queue, SchedVcpu& vcpu);
    void unpark(RunQueue& queue, SchedVcpu& vcpu);
    void charge(SchedVcpu& vcpu, u64 now_ns);

    // Puts a Migrating vCPU (waking, or sent away by an affinity change) on a CPU its hard
    // affinity allows, or blocks it if a block() came meanwhile. Called with run queue `owner`
    // locked; returns with no lock held, and the CPU to tickle.
    Tickle place_locked(SchedVcpu& vcpu, u32 owner, u64 now_ns);
    // Where it should go, from lock-free hints: its last CPU if idle, an idle CPU (soft affinity
    // first), a CPU running something it beats, else its last CPU (if allowed).
    u32 choose_cpu(SchedVcpu& vcpu, Priority priority, u32 last_cpu, u64 now_ns);

    // schedule() parts, with the run-queue lock of `cpu` held.
    void refresh(RunQueue& queue, u64& work);
    SchedVcpu* pick_local(RunQueue& queue, u64& work);
    SchedVcpu* steal(u32 cpu, Priority local_best, u64& work);
    SchedVcpu* steal_candidate(RunQueue& peer, u32 cpu, Priority local_best, u64& work);
    u64 slice_end(const SchedVcpu& vcpu, Priority priority, u64 now_ns) const;
    void kick_idle_for_leftovers(u32 cpu, RunQueue& queue, CpuSet& reschedule, u64& work);

    // Accounting, with the pool lock held.
    void account(u32 cpu, u64 now_ns, CpuSet& reschedule);
    void measure_demand(u64 now_ns, u64 elapsed_ns);
    u64 grant_domains(u64 supply_ns);  // returns what it could not hand out
    void grant_vcpus(SchedDomain& domain, i64 floor_ns);

    RunQueue run_queues_[kMaxCpus];
    IdleSet idle_;
    u32 cpu_count_ = 0;
    CpuSet online_;

    SpinLock pool_lock_;
    DomainList domains_;         // pool lock
    u32 vcpu_count_ = 0;         // pool lock
    u32 next_home_cpu_ = 0;      // pool lock: where the next new vCPU starts
    u64 last_accounting_ns_ = 0; // pool lock
    Atomic<u64> next_accounting_ns_{0};
    Atomic<u64> account_epoch_{0};
    Atomic<u64> unpark_epoch_{0};
    Atomic<u64> timeslice_ns_{PoolParams{}.timeslice_ns};
    Atomic<u64> ratelimit_ns_{PoolParams{}.ratelimit_ns};
    Atomic<u64> accountings_{0};
    Atomic<u64> unused_supply_ns_{0};
    Atomic<u64> forgiven_debt_ns_{0};
};

}  // namespace lamina::sched
