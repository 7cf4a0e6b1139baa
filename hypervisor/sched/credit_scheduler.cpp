#include <hypervisor/sched/credit_scheduler.h>

#include <lamina/assert.h>

namespace lamina::sched {

namespace {

// Saturating: per-CPU clocks may be a few nanoseconds apart.
u64 elapsed_since(u64 now_ns, u64 then_ns) { return now_ns > then_ns ? now_ns - then_ns : 0; }

// amount * part / whole, exact, without 128-bit division (none in the freestanding image):
// with part <= whole < 2^32, (amount % whole) * part < 2^64.
u64 scale(u64 amount, u64 part, u64 whole) {
    LAMINA_ASSERT(part <= whole && whole <= 0xffffffffu);
    return amount / whole * part + amount % whole * part / whole;
}

// Lowers an atomic credit-like value to `limit` if above it (a concurrent burn only lowers it).
void clamp_down(Atomic<i64>& value, i64 limit) {
    i64 current = value.load(MemoryOrder::Relaxed);
    while (current > limit && !value.compare_exchange(current, limit, MemoryOrder::Relaxed)) {
    }
}

// Raises it to `limit` if below it (a concurrent burn can only make that more needed);
// returns by how much.
u64 clamp_up(Atomic<i64>& value, i64 limit) {
    i64 current = value.load(MemoryOrder::Relaxed);
    while (current < limit) {
        if (value.compare_exchange(current, limit, MemoryOrder::Relaxed)) return static_cast<u64>(limit - current);
    }
    return 0;
}

void bump(Atomic<u64>& counter, u64 amount = 1) { counter.fetch_add(amount, MemoryOrder::Relaxed); }

// What a capped domain may spend per accounting period.
i64 cap_budget_per_period(u32 cap) {
    return static_cast<i64>(u64{cap} * CreditScheduler::kAccountingPeriodNs / 100);
}

}  // namespace

// ---- CpuSet ----------------------------------------------------------------------------------

CpuSet CpuSet::of(u32 cpu) {
    CpuSet set;
    set.set(cpu);
    return set;
}

CpuSet CpuSet::first_n(u32 count) {
    LAMINA_ASSERT(count <= kMaxCpus);
    CpuSet set;
    for (u32 w = 0; w < kWords; ++w) {
        const u32 low = w * 64;
        if (count >= low + 64) {
            set.words_[w] = ~u64{0};
        } else if (count > low) {
            set.words_[w] = (u64{1} << (count - low)) - 1;
        }
    }
    return set;
}

void CpuSet::set(u32 cpu) {
    LAMINA_ASSERT(cpu < kMaxCpus);
    words_[cpu / 64] |= u64{1} << (cpu % 64);
}

void CpuSet::clear(u32 cpu) {
    LAMINA_ASSERT(cpu < kMaxCpus);
    words_[cpu / 64] &= ~(u64{1} << (cpu % 64));
}

bool CpuSet::empty() const {
    for (u64 word : words_) {
        if (word != 0) return false;
    }
    return true;
}

u32 CpuSet::count() const {
    u32 total = 0;
    for (u64 word : words_) total += static_cast<u32>(__builtin_popcountll(word));
    return total;
}

u32 CpuSet::next_from(u32 cpu) const {
    if (cpu >= kMaxCpus) return kNoCpu;
    u32 w = cpu / 64;
    u64 bits = words_[w] & (~u64{0} << (cpu % 64));
    for (;;) {
        if (bits != 0) return w * 64 + static_cast<u32>(__builtin_ctzll(bits));
        if (++w == kWords) return kNoCpu;
        bits = words_[w];
    }
}

u32 CpuSet::cycle_from(u32 cpu) const {
    const u32 found = next_from(cpu);
    return found != kNoCpu ? found : next_from(0);
}

CpuSet CpuSet::operator&(const CpuSet& other) const {
    CpuSet result;
    for (u32 w = 0; w < kWords; ++w) result.words_[w] = words_[w] & other.words_[w];
    return result;
}

CpuSet CpuSet::operator|(const CpuSet& other) const {
    CpuSet result;
    for (u32 w = 0; w < kWords; ++w) result.words_[w] = words_[w] | other.words_[w];
    return result;
}

bool CpuSet::operator==(const CpuSet& other) const {
    for (u32 w = 0; w < kWords; ++w) {
        if (words_[w] != other.words_[w]) return false;
    }
    return true;
}

void CpuSet::set_word(u32 index, u64 bits) {
    LAMINA_ASSERT(index < kWords);
    words_[index] = bits;
}

const char* priority_name(Priority priority) {
    switch (priority) {
        case Priority::Idle: return "idle";
        case Priority::Over: return "over";
        case Priority::Under: return "under";
        case Priority::Boost: return "boost";
    }
    return "?";
}

// ---- Idle CPUs --------------------------------------------------------------------------------

void CreditScheduler::IdleSet::set(u32 cpu) {
    words_[cpu / 64].fetch_or(u64{1} << (cpu % 64), MemoryOrder::Release);
}

void CreditScheduler::IdleSet::clear(u32 cpu) {
    const u64 bit = u64{1} << (cpu % 64);
    // Plain load first: a busy CPU's bit is already clear, and this runs at every decision.
    if (words_[cpu / 64].load(MemoryOrder::Relaxed) & bit) words_[cpu / 64].fetch_and(~bit, MemoryOrder::AcqRel);
}

bool CreditScheduler::IdleSet::claim(u32 cpu) {
    const u64 bit = u64{1} << (cpu % 64);
    return (words_[cpu / 64].fetch_and(~bit, MemoryOrder::AcqRel) & bit) != 0;
}

CpuSet CreditScheduler::IdleSet::snapshot() const {
    CpuSet set;
    for (u32 w = 0; w < CpuSet::kWords; ++w) set.set_word(w, words_[w].load(MemoryOrder::Acquire));
    return set;
}

// ---- Configuration ----------------------------------------------------------------------------

void CreditScheduler::init(u32 cpu_count, u64 now_ns) {
    LAMINA_ASSERT(cpu_count >= 1 && cpu_count <= kMaxCpus && cpu_count_ == 0);
    cpu_count_ = cpu_count;
    online_ = CpuSet::first_n(cpu_count);
    for (u32 cpu = 0; cpu < cpu_count; ++cpu) idle_.set(cpu);
    last_accounting_ns_ = now_ns;
    next_accounting_ns_.store(now_ns + kAccountingPeriodNs, MemoryOrder::Relaxed);
}

Status CreditScheduler::set_pool_params(const PoolParams& params) {
    if (params.timeslice_ns < kTimesliceRange.min || params.timeslice_ns > kTimesliceRange.max) {
        return Status::out_of_range("timeslice_ns", kTimesliceRange);
    }
    const ValueRange ratelimits = ratelimit_range(params.timeslice_ns);
    if (params.ratelimit_ns != 0 &&
        (params.ratelimit_ns < ratelimits.min || params.ratelimit_ns > ratelimits.max)) {
        return Status::out_of_range("ratelimit_ns", ratelimits);
    }
    LockGuard guard(pool_lock_);
    timeslice_ns_.store(params.timeslice_ns, MemoryOrder::Relaxed);
    ratelimit_ns_.store(params.ratelimit_ns, MemoryOrder::Relaxed);
    return {};
}

PoolParams CreditScheduler::pool_params() const { return {timeslice_ns(), ratelimit_ns()}; }

u64 CreditScheduler::min_slice_ns() const { return max(ratelimit_ns(), kMinSliceNs); }

Status CreditScheduler::add_domain(SchedDomain& domain, u32 id, u32 weight, u32 cap) {
    if (weight < kWeightRange.min || weight > kWeightRange.max) return Status::out_of_range("weight", kWeightRange);
    if (cap > cap_range().max) return Status::out_of_range("cap", cap_range());
    LockGuard guard(pool_lock_);
    LAMINA_ASSERT(!domain.pool_link_.linked());
    domain.id_ = id;
    domain.weight_.store(weight, MemoryOrder::Relaxed);
    domain.cap_.store(cap, MemoryOrder::Relaxed);
    domain.budget_ns_.store(cap_budget_per_period(cap), MemoryOrder::Relaxed);
    domain.parked_vcpus_.store(0, MemoryOrder::Relaxed);
    domain.run_ns_.store(0, MemoryOrder::Relaxed);
    domain.wakeups_.store(0, MemoryOrder::Relaxed);
    domain.context_switches_.store(0, MemoryOrder::Relaxed);
    domains_.push_back(domain);
    return {};
}

Status CreditScheduler::remove_domain(SchedDomain& domain) {
    LockGuard guard(pool_lock_);
    if (!domain.vcpus_.empty()) return {StatusCode::Busy};
    domains_.remove(domain);
    return {};
}

Status CreditScheduler::set_weight(SchedDomain& domain, u32 weight) {
    if (weight < kWeightRange.min || weight > kWeightRange.max) return Status::out_of_range("weight", kWeightRange);
    LockGuard guard(pool_lock_);
    domain.weight_.store(weight, MemoryOrder::Relaxed);
    return {};
}

Status CreditScheduler::set_cap(SchedDomain& domain, u32 cap) {
    if (cap > cap_range().max) return Status::out_of_range("cap", cap_range());
    LockGuard guard(pool_lock_);
    // A newly capped domain starts with one period's budget; a changed cap keeps its balance
    // (the next accounting clips it to the new carry-over).
    if (domain.cap_.load(MemoryOrder::Relaxed) == 0) {
        domain.budget_ns_.store(cap_budget_per_period(cap), MemoryOrder::Relaxed);
    }
    domain.cap_.store(cap, MemoryOrder::Relaxed);
    return {};
}

Status CreditScheduler::add_vcpu(SchedDomain& domain, SchedVcpu& vcpu, u32 id) {
    LockGuard guard(pool_lock_);
    if (vcpu_count_ == kMaxVcpus) return {StatusCode::Full};
    LAMINA_ASSERT(domain.pool_link_.linked() && !vcpu.domain_link_.linked() && !vcpu.queue_link_.linked());
    vcpu.domain_ = &domain;
    vcpu.id_ = id;
    vcpu.cpu_.store(next_home_cpu_, MemoryOrder::Relaxed);
    next_home_cpu_ = next_home_cpu_ + 1 == cpu_count_ ? 0 : next_home_cpu_ + 1;
    set_state(vcpu, State::Blocked);
    vcpu.priority_ = Priority::Under;
    vcpu.boosted_ = vcpu.blocking_ = vcpu.yielding_ = false;
    vcpu.hard_affinity_ = online_;
    vcpu.soft_affinity_ = CpuSet();
    vcpu.pinned_ = cpu_count_ == 1;
    vcpu.has_run_ = false;
    vcpu.run_start_ns_.store(0, MemoryOrder::Relaxed);
    vcpu.credit_ns_.store(kStartCreditNs, MemoryOrder::Relaxed);
    vcpu.ran_or_woke_.store(0, MemoryOrder::Relaxed);
    vcpu.slept_.store(0, MemoryOrder::Relaxed);
    vcpu.run_ns_.store(0, MemoryOrder::Relaxed);
    vcpu.wakeups_.store(0, MemoryOrder::Relaxed);
    vcpu.context_switches_.store(0, MemoryOrder::Relaxed);
    vcpu.migrations_.store(0, MemoryOrder::Relaxed);
    domain.vcpus_.push_back(vcpu);
    ++vcpu_count_;
    return {};
}

Status CreditScheduler::remove_vcpu(SchedVcpu& vcpu) {
    LAMINA_ASSERT(vcpu.domain_ != nullptr);
    LockGuard guard(pool_lock_);
    const u32 owner = lock_owner(vcpu);
    const bool blocked = state_of(vcpu) == State::Blocked;
    if (blocked) {
        vcpu.domain_->vcpus_.remove(vcpu);
        vcpu.domain_ = nullptr;
        --vcpu_count_;
    }
    run_queue(owner).lock.unlock();
    return blocked ? Status{} : Status{StatusCode::Busy};
}

Status CreditScheduler::set_affinity(SchedVcpu& vcpu, const CpuSet& hard, const CpuSet& soft, u64 now_ns,
                                     Tickle* tickle) {
    LAMINA_ASSERT(vcpu.domain_ != nullptr);
    const CpuSet allowed = hard & online_;
    if (allowed.empty()) return {StatusCode::NoOnlineCpu};
    Tickle result;
    const u32 owner = lock_owner(vcpu);
    RunQueue& queue = run_queue(owner);
    const bool was_pinned = vcpu.pinned_;
    vcpu.hard_affinity_ = allowed;
    vcpu.soft_affinity_ = soft & allowed;
    vcpu.pinned_ = allowed.count() == 1;
    const State state = state_of(vcpu);
    if (state == State::Queued && was_pinned != vcpu.pinned_) {
        if (vcpu.pinned_) {
            queue.migratable_queued.fetch_sub(1, MemoryOrder::Relaxed);
        } else {
            queue.migratable_queued.fetch_add(1, MemoryOrder::Relaxed);
        }
    }
    if (allowed.test(owner) || state == State::Blocked || state == State::Migrating) {
        // Where it is (or will be placed) is allowed.
        queue.lock.unlock();
    } else if (state == State::Running) {
        result.cpu = owner;  // its next decision sends it away
        queue.lock.unlock();
    } else {
        if (state == State::Queued) {
            dequeue(queue, vcpu);
        } else {
            unpark(queue, vcpu);
        }
        set_state(vcpu, State::Migrating);
        result = place_locked(vcpu, owner, now_ns);
    }
    if (tickle) *tickle = result;
    return {};
}

CpuSet CreditScheduler::hard_affinity(SchedVcpu& vcpu) {
    const u32 owner = lock_owner(vcpu);
    const CpuSet mask = vcpu.hard_affinity_;
    run_queue(owner).lock.unlock();
    return mask;
}

CpuSet CreditScheduler::soft_affinity(SchedVcpu& vcpu) {
    const u32 owner = lock_owner(vcpu);
    const CpuSet mask = vcpu.soft_affinity_;
    run_queue(owner).lock.unlock();
    return mask;
}

// ---- Run-queue helpers ------------------------------------------------------------------------

usize CreditScheduler::queue_index(Priority priority) {
    LAMINA_ASSERT(priority != Priority::Idle);
    return static_cast<usize>(Priority::Boost) - static_cast<usize>(priority);
}

bool CreditScheduler::over_cap(const SchedDomain& domain) {
    return domain.cap_.load(MemoryOrder::Relaxed) != 0 && domain.budget_ns_.load(MemoryOrder::Relaxed) <= 0;
}

Priority CreditScheduler::credit_priority(const SchedVcpu& vcpu) {
    return vcpu.credit_ns_.load(MemoryOrder::Relaxed) >= 0 ? Priority::Under : Priority::Over;
}

u32 CreditScheduler::lock_owner(SchedVcpu& vcpu) {
    for (;;) {
        const u32 cpu = vcpu.cpu_.load(MemoryOrder::Acquire);
        RunQueue& queue = run_queue(cpu);
        queue.lock.lock();
        if (vcpu.cpu_.load(MemoryOrder::Relaxed) == cpu) return cpu;
        queue.lock.unlock();  // stolen or moved meanwhile
    }
}

void CreditScheduler::lock_pair(u32 a, u32 b) {
    if (a == b) {
        run_queue(a).lock.lock();
        return;
    }
    run_queue(min(a, b)).lock.lock();
    run_queue(max(a, b)).lock.lock();
}

void CreditScheduler::unlock_pair(u32 a, u32 b) {
    run_queue(a).lock.unlock();
    if (a != b) run_queue(b).lock.unlock();
}

void CreditScheduler::enqueue(RunQueue& queue, SchedVcpu& vcpu) {
    set_state(vcpu, State::Queued);
    queue.queues[queue_index(vcpu.priority_)].push_back(vcpu);
    queue.queued.fetch_add(1, MemoryOrder::Relaxed);
    if (!vcpu.pinned_) queue.migratable_queued.fetch_add(1, MemoryOrder::Relaxed);
}

void CreditScheduler::dequeue(RunQueue& queue, SchedVcpu& vcpu) {
    queue.queues[queue_index(vcpu.priority_)].remove(vcpu);
    queue.queued.fetch_sub(1, MemoryOrder::Relaxed);
    if (!vcpu.pinned_) queue.migratable_queued.fetch_sub(1, MemoryOrder::Relaxed);
}

void CreditScheduler::make_blocked(SchedVcpu& vcpu) {
    set_state(vcpu, State::Blocked);
    vcpu.blocking_ = false;
    vcpu.boosted_ = false;
    vcpu.slept_.store(1, MemoryOrder::Relaxed);
}

void CreditScheduler::park(RunQueue& queue, SchedVcpu& vcpu) {
    set_state(vcpu, State::Parked);
    vcpu.boosted_ = false;  // Xen: an unparked vCPU has not earned a boost
    queue.parked.push_back(vcpu);
    queue.parked_count.fetch_add(1, MemoryOrder::Relaxed);
    vcpu.domain_->parked_vcpus_.fetch_add(1, MemoryOrder::Relaxed);
}

void CreditScheduler::unpark(RunQueue& queue, SchedVcpu& vcpu) {
    queue.parked.remove(vcpu);
    queue.parked_count.fetch_sub(1, MemoryOrder::Relaxed);
    vcpu.domain_->parked_vcpus_.fetch_sub(1, MemoryOrder::Relaxed);
}

void CreditScheduler::charge(SchedVcpu& vcpu, u64 now_ns) {
    const u64 ran = elapsed_since(now_ns, vcpu.run_start_ns_.load(MemoryOrder::Relaxed));
    vcpu.run_start_ns_.store(now_ns, MemoryOrder::Relaxed);
    if (ran == 0) return;
    SchedDomain& domain = *vcpu.domain_;
    vcpu.credit_ns_.fetch_sub(static_cast<i64>(ran), MemoryOrder::Relaxed);
    if (domain.cap_.load(MemoryOrder::Relaxed) != 0) {
        domain.budget_ns_.fetch_sub(static_cast<i64>(ran), MemoryOrder::Relaxed);
    }
    bump(vcpu.run_ns_, ran);
    bump(domain.run_ns_, ran);
    vcpu.ran_or_woke_.store(1, MemoryOrder::Relaxed);
}

// ---- Wake, block, yield -----------------------------------------------------------------------

Tickle CreditScheduler::wake(SchedVcpu& vcpu, u64 now_ns) {
    LAMINA_ASSERT(vcpu.domain_ != nullptr);
    const u32 owner = lock_owner(vcpu);
    const State state = state_of(vcpu);
    if (state != State::Blocked) {
        // Already runnable; a block() not yet acted on is simply cancelled.
        if (vcpu.blocking_) {
            vcpu.blocking_ = false;
            bump(vcpu.wakeups_);
            bump(vcpu.domain_->wakeups_);
        }
        run_queue(owner).lock.unlock();
        return {};
    }
    bump(vcpu.wakeups_);
    bump(vcpu.domain_->wakeups_);
    vcpu.ran_or_woke_.store(1, MemoryOrder::Relaxed);
    // BOOST (Xen): a vCPU waking with credit left runs soon, so I/O-bound guests stay
    // responsive; it pays for that time like any other, so fairness does not suffer.
    vcpu.boosted_ = vcpu.has_run_ && credit_priority(vcpu) == Priority::Under && !over_cap(*vcpu.domain_);
    // In transit from here on: a concurrent wake() finds it runnable, a block() marks it.
    set_state(vcpu, State::Migrating);
    return place_locked(vcpu, owner, now_ns);
}

Tickle CreditScheduler::block(SchedVcpu& vcpu, u64 now_ns) {
    LAMINA_ASSERT(vcpu.domain_ != nullptr);
    const u32 owner = lock_owner(vcpu);
    RunQueue& queue = run_queue(owner);
    Tickle tickle;
    switch (state_of(vcpu)) {
        case State::Running:
            vcpu.blocking_ = true;
            tickle.cpu = owner;
            break;
        case State::Migrating:
            vcpu.blocking_ = true;
            break;
        case State::Queued:
            dequeue(queue, vcpu);
            make_blocked(vcpu);
            break;
        case State::Parked:
            unpark(queue, vcpu);
            make_blocked(vcpu);
            break;
        case State::Blocked:
            break;
    }
    queue.lock.unlock();
    return tickle;
}

Tickle CreditScheduler::yield(SchedVcpu& vcpu, u64 now_ns) {
    LAMINA_ASSERT(vcpu.domain_ != nullptr);
    const u32 owner = lock_owner(vcpu);
    Tickle tickle;
    if (state_of(vcpu) == State::Running && !vcpu.blocking_) {
        vcpu.yielding_ = true;
        tickle.cpu = owner;
    }
    run_queue(owner).lock.unlock();
    return tickle;
}

Tickle CreditScheduler::place_locked(SchedVcpu& vcpu, u32 owner, u64 now_ns) {
    for (;;) {
        if (vcpu.blocking_) {
            make_blocked(vcpu);
            run_queue(owner).lock.unlock();
            return {};
        }
        const bool parks = over_cap(*vcpu.domain_);
        const Priority priority = vcpu.boosted_ ? Priority::Boost : credit_priority(vcpu);
        const CpuSet& hard = vcpu.hard_affinity_;
        // A vCPU that must wait for its domain's budget waits wherever it may run.
        const u32 cpu = parks ? (hard.test(owner) ? owner : hard.cycle_from(owner))
                              : choose_cpu(vcpu, priority, owner, now_ns);
        if (cpu > owner) {
            run_queue(cpu).lock.lock();  // CPU-index order holds
        } else if (cpu < owner) {
            run_queue(owner).lock.unlock();
            lock_pair(cpu, owner);
            // While it was unlocked its affinity may have changed or a block() come; it cannot
            // have moved (only its placer moves a Migrating vCPU).
            if (vcpu.blocking_ || !vcpu.hard_affinity_.test(cpu)) {
                run_queue(cpu).lock.unlock();
                continue;
            }
        }
        if (cpu != owner) {
            vcpu.cpu_.store(cpu, MemoryOrder::Release);
            bump(vcpu.migrations_);
        }
        RunQueue& target = run_queue(cpu);
        vcpu.priority_ = priority;
        if (parks) {
            park(target, vcpu);
        } else {
            enqueue(target, vcpu);
        }
        // Judged under the target's lock, on what it runs now (choose_cpu() read hints): an idle
        // CPU is always interrupted (it may have gone idle since, and must also arm its timer
        // for the accounting that unparks), a busy one if the newcomer beats its current vCPU.
        const auto running = static_cast<Priority>(target.current_priority.load(MemoryOrder::Relaxed));
        const bool tickle = target.current == nullptr || (!parks && priority > running);
        if (tickle) idle_.claim(cpu);  // so that a second waker looks for another idle CPU
        unlock_pair(owner, cpu);
        return tickle ? Tickle{cpu} : Tickle{};
    }
}

u32 CreditScheduler::choose_cpu(SchedVcpu& vcpu, Priority priority, u32 last_cpu, u64 now_ns) {
    const CpuSet& hard = vcpu.hard_affinity_;
    const CpuSet& soft = vcpu.soft_affinity_.empty() ? hard : vcpu.soft_affinity_;
    const CpuSet idle = idle_.snapshot();

    // An idle CPU: the last one (cache-warm) first, soft affinity before hard.
    const CpuSet* preferences[] = {&soft, &hard};
    for (const CpuSet* allowed : preferences) {
        const CpuSet candidates = *allowed & idle;
        if (!candidates.empty()) return candidates.test(last_cpu) ? last_cpu : candidates.cycle_from(last_cpu);
    }

    // A CPU running something it beats. Preferred, in order: within soft affinity, running
    // OVER rather than UNDER, past its rate limit (so the preemption happens now), the last CPU.
    const u64 ratelimit = ratelimit_ns();
    u32 best_cpu = kNoCpu;
    u32 best_score = ~u32{0};
    for (u32 cpu = hard.first(); cpu != kNoCpu; cpu = hard.next_from(cpu + 1)) {
        const RunQueue& queue = run_queue(cpu);
        const auto running = static_cast<Priority>(queue.current_priority.load(MemoryOrder::Relaxed));
        if (running >= priority) continue;
        const bool rate_limited =
            ratelimit != 0 && elapsed_since(now_ns, queue.current_since_ns.load(MemoryOrder::Relaxed)) < ratelimit;
        const u32 score = (soft.test(cpu) ? 0 : 8) + (running == Priority::Under ? 4 : 0) +
                          (rate_limited ? 2 : 0) + (cpu == last_cpu ? 0 : 1);
        if (score < best_score) {
            best_score = score;
            best_cpu = cpu;
        }
    }
    if (best_cpu != kNoCpu) return best_cpu;

    // Nobody to preempt: wait in line where it ran last, if still allowed.
    return hard.test(last_cpu) ? last_cpu : soft.cycle_from(last_cpu);
}

// ---- schedule() -------------------------------------------------------------------------------

Decision CreditScheduler::schedule(u32 cpu, u64 now_ns) {
    LAMINA_ASSERT(cpu < cpu_count_);
    Decision decision;

    // The accounting runs on whichever CPU notices its period is over, before this CPU's lock
    // is taken (pool lock first); a CPU that finds another one at it goes on without waiting.
    if (now_ns >= next_accounting_ns_.load(MemoryOrder::Relaxed) && pool_lock_.try_lock()) {
        if (now_ns >= next_accounting_ns_.load(MemoryOrder::Relaxed)) account(cpu, now_ns, decision.reschedule);
        pool_lock_.unlock();
    }

    RunQueue& queue = run_queue(cpu);
    queue.lock.lock();
    u64 work = 0;
    SchedVcpu* const prev = queue.current;
    SchedVcpu* yielder = nullptr;
    SchedVcpu* leaving = nullptr;  // its hard affinity no longer allows this CPU

    if (prev) {
        charge(*prev, now_ns);  // exactly the nanoseconds it ran since the last decision
        const bool yielded = prev->yielding_;
        prev->yielding_ = false;
        const u64 ratelimit = ratelimit_ns();
        if (prev->blocking_) {
            make_blocked(*prev);
        } else if (!prev->hard_affinity_.test(cpu)) {
            prev->boosted_ = false;
            set_state(*prev, State::Migrating);
            leaving = prev;
        } else if (over_cap(*prev->domain_)) {
            prev->priority_ = credit_priority(*prev);
            park(queue, *prev);
        } else if (!yielded && ratelimit != 0 && elapsed_since(now_ns, queue.switched_in_ns) < ratelimit) {
            // Rate limit: a vCPU switched in less than ratelimit_ns ago keeps its CPU (unless it
            // blocks or yields), so a storm of wake-ups cannot thrash the caches.
            decision.next = prev;
            decision.next_event_ns = queue.switched_in_ns + ratelimit;
            bump(queue.decisions);
            queue.lock.unlock();
            return decision;
        } else {
            // BOOST lasts until the vCPU is charged still runnable: it has had its turn.
            prev->boosted_ = false;
            prev->priority_ = credit_priority(*prev);
            if (yielded) {
                yielder = prev;  // queued behind whatever runs instead, below
            } else {
                enqueue(queue, *prev);
            }
        }
        queue.current = nullptr;
    }

    refresh(queue, work);
    SchedVcpu* next = pick_local(queue, work);
    const Priority local_best = next ? next->priority_ : Priority::Idle;
    SchedVcpu* stolen = nullptr;
    if (local_best == Priority::Idle) {
        stolen = steal(cpu, local_best, work);
    } else if (local_best == Priority::Over && elapsed_since(now_ns, queue.last_steal_ns) >= queue.steal_interval_ns) {
        queue.last_steal_ns = now_ns;
        stolen = steal(cpu, local_best, work);
        queue.steal_interval_ns = stolen ? kStealIntervalNs : min(2 * queue.steal_interval_ns, kMaxStealIntervalNs);
    }
    if (stolen) {
        next = stolen;
    } else if (next) {
        dequeue(queue, *next);
    }
    if (yielder) {
        if (next) {
            enqueue(queue, *yielder);
        } else {
            next = yielder;  // nothing else wants this CPU
        }
    }

    if (!next) {
        queue.current_priority.store(static_cast<u8>(Priority::Idle), MemoryOrder::Relaxed);
        idle_.set(cpu);
        // Parked vCPUs get their budget back at the next accounting; be there for it.
        if (queue.parked_count.load(MemoryOrder::Relaxed) != 0) {
            decision.next_event_ns = max(next_accounting_ns_.load(MemoryOrder::Relaxed), now_ns + kMinSliceNs);
        }
    } else {
        idle_.clear(cpu);
        set_state(*next, State::Running);
        next->has_run_ = true;
        next->run_start_ns_.store(now_ns, MemoryOrder::Relaxed);
        if (next != prev) {
            queue.switched_in_ns = now_ns;
            bump(next->context_switches_);
            bump(next->domain_->context_switches_);
        }
        queue.current = next;
        queue.current_priority.store(static_cast<u8>(next->priority_), MemoryOrder::Relaxed);
        queue.current_since_ns.store(queue.switched_in_ns, MemoryOrder::Relaxed);
        decision.next = next;
        decision.next_event_ns = slice_end(*next, next->priority_, now_ns);
        kick_idle_for_leftovers(cpu, queue, decision.reschedule, work);
    }

    bump(queue.decisions);
    bump(queue.inspected, work);
    if (work > queue.max_inspected.load(MemoryOrder::Relaxed)) queue.max_inspected.store(work, MemoryOrder::Relaxed);
    queue.lock.unlock();

    if (leaving) {
        const u32 owner = lock_owner(*leaving);
        const Tickle tickle = place_locked(*leaving, owner, now_ns);
        if (tickle.needed()) decision.reschedule.set(tickle.cpu);
    }
    return decision;
}

void CreditScheduler::refresh(RunQueue& queue, u64& work) {
    // After an accounting: OVER vCPUs whose credit came back move up (Xen's runq_sort), UNDER
    // ones the normalization took below 0 move down; once per period, over this CPU's own
    // queue only.
    const u64 account_epoch = account_epoch_.load(MemoryOrder::Acquire);
    if (queue.seen_account_epoch != account_epoch) {
        queue.seen_account_epoch = account_epoch;
        queue.steal_interval_ns = kStealIntervalNs;
        const Priority sorted[] = {Priority::Under, Priority::Over};
        for (const Priority listed : sorted) {
            VcpuList& list = queue.queues[queue_index(listed)];
            for (SchedVcpu *vcpu = list.front(), *end = list.back(); vcpu;) {
                SchedVcpu* following = vcpu == end ? nullptr : list.next(*vcpu);  // moved ones come after end
                ++work;
                const Priority now_is = credit_priority(*vcpu);
                if (now_is != listed) {
                    dequeue(queue, *vcpu);
                    vcpu->priority_ = now_is;
                    enqueue(queue, *vcpu);
                }
                vcpu = following;
            }
        }
    }
    // After a domain got budget back (or lost its cap): its parked vCPUs return.
    const u64 unpark_epoch = unpark_epoch_.load(MemoryOrder::Acquire);
    if (queue.seen_unpark_epoch != unpark_epoch) {
        queue.seen_unpark_epoch = unpark_epoch;
        for (SchedVcpu* vcpu = queue.parked.front(); vcpu;) {
            SchedVcpu* following = queue.parked.next(*vcpu);
            ++work;
            if (!over_cap(*vcpu->domain_)) {
                unpark(queue, *vcpu);
                vcpu->priority_ = credit_priority(*vcpu);
                enqueue(queue, *vcpu);
            }
            vcpu = following;
        }
    }
}

SchedVcpu* CreditScheduler::pick_local(RunQueue& queue, u64& work) {
    for (VcpuList& list : queue.queues) {
        while (SchedVcpu* vcpu = list.front()) {
            ++work;
            if (!over_cap(*vcpu->domain_)) return vcpu;
            dequeue(queue, *vcpu);  // its domain overdrew its cap since it was queued
            park(queue, *vcpu);
        }
    }
    return nullptr;
}

SchedVcpu* CreditScheduler::steal(u32 cpu, Priority local_best, u64& work) {
    RunQueue& self = run_queue(cpu);
    for (u32 offset = 1; offset <= cpu_count_; ++offset) {
        const u32 peer_cpu = (self.steal_cursor + offset) % cpu_count_;
        if (peer_cpu == cpu) continue;
        RunQueue& peer = run_queue(peer_cpu);
        if (peer.migratable_queued.load(MemoryOrder::Relaxed) == 0) continue;
        // Never wait for a peer: it may be stealing from us (Xen does the same).
        if (!peer.lock.try_lock()) {
            bump(self.trylock_failures);
            continue;
        }
        SchedVcpu* vcpu = steal_candidate(peer, cpu, local_best, work);
        if (vcpu) {
            dequeue(peer, *vcpu);
            vcpu->cpu_.store(cpu, MemoryOrder::Release);
            bump(vcpu->migrations_);
        }
        peer.lock.unlock();
        if (vcpu) {
            self.steal_cursor = peer_cpu;  // start after it next time, to spread the steals
            bump(self.steals);
            return vcpu;
        }
    }
    return nullptr;
}

SchedVcpu* CreditScheduler::steal_candidate(RunQueue& peer, u32 cpu, Priority local_best, u64& work) {
    for (usize index = 0; index < kQueueCount; ++index) {
        VcpuList& list = peer.queues[index];
        const auto list_priority = static_cast<Priority>(static_cast<usize>(Priority::Boost) - index);
        SchedVcpu* fallback = nullptr;  // allowed here, but prefers elsewhere
        u32 seen = 0;
        for (SchedVcpu* vcpu = list.front(); vcpu && seen < kStealScanLimit; vcpu = list.next(*vcpu), ++seen) {
            ++work;
            // The peer may not have moved up the OVER vCPUs an accounting just paid.
            const Priority effective = list_priority == Priority::Over ? credit_priority(*vcpu) : list_priority;
            if (effective <= local_best || vcpu->pinned_ || !vcpu->hard_affinity_.test(cpu) ||
                over_cap(*vcpu->domain_)) {
                continue;
            }
            if (vcpu->soft_affinity_.empty() || vcpu->soft_affinity_.test(cpu)) return vcpu;
            if (!fallback) fallback = vcpu;
        }
        if (fallback) return fallback;
    }
    return nullptr;
}

u64 CreditScheduler::slice_end(const SchedVcpu& vcpu, Priority priority, u64 now_ns) const {
    const u64 floor = min_slice_ns();
    // UNDER runs until its credit is spent (at most a timeslice): then others with credit go
    // first. A boost is for answering an event, not for running on: one rate-limit period,
    // which also bounds how long a boosted vCPU holds up the next one. OVER work runs in
    // rate-limit periods too, round-robin, so that the time left over once credit is spent is
    // shared (a vCPU deep in debt repays it instead of keeping the leftovers) and a CPU running
    // OVER work looks for better work elsewhere that often.
    u64 slice = floor;
    if (priority == Priority::Under) {
        const i64 credit = vcpu.credit_ns_.load(MemoryOrder::Relaxed);
        if (credit > static_cast<i64>(floor)) slice = min(static_cast<u64>(credit), timeslice_ns());
    }
    if (vcpu.domain_->cap_.load(MemoryOrder::Relaxed) != 0) {
        const i64 budget = vcpu.domain_->budget_ns_.load(MemoryOrder::Relaxed);
        slice = min(slice, budget <= static_cast<i64>(floor) ? floor : static_cast<u64>(budget));
    }
    u64 end = now_ns + slice;
    // Stop at the next accounting too, so that someone runs it on time.
    const u64 accounting = next_accounting_ns_.load(MemoryOrder::Relaxed);
    if (accounting < end) end = max(accounting, now_ns + kMinSliceNs);
    return end;
}

void CreditScheduler::kick_idle_for_leftovers(u32 cpu, RunQueue& queue, CpuSet& reschedule, u64& work) {
    // Work left waiting here while a CPU that may run it sleeps: wake that CPU to steal it
    // (covers a waker that lost the race for an idle CPU, and work queued by preemption).
    if (queue.migratable_queued.load(MemoryOrder::Relaxed) == 0) return;
    CpuSet idle = idle_.snapshot() & online_;
    idle.clear(cpu);
    if (idle.empty()) return;
    for (VcpuList& list : queue.queues) {
        u32 seen = 0;
        for (SchedVcpu* vcpu = list.front(); vcpu && seen < kStealScanLimit; vcpu = list.next(*vcpu), ++seen) {
            ++work;
            if (vcpu->pinned_) continue;
            const CpuSet where = vcpu->hard_affinity_ & idle;
            if (where.empty()) continue;
            const u32 target = where.cycle_from(cpu);
            if (idle_.claim(target)) reschedule.set(target);
            return;
        }
    }
}

// ---- Accounting -------------------------------------------------------------------------------

void CreditScheduler::account(u32 cpu, u64 now_ns, CpuSet& reschedule) {
    // Hand out the CPU time that elapsed (a late accounting loses nothing), but not a long idle
    // stretch's worth.
    const u64 elapsed = min(elapsed_since(now_ns, last_accounting_ns_), 2 * kAccountingPeriodNs);
    last_accounting_ns_ = now_ns;
    next_accounting_ns_.store(now_ns + kAccountingPeriodNs, MemoryOrder::Relaxed);
    bump(run_queue(cpu).accountings);

    measure_demand(now_ns, elapsed);
    bump(accountings_);
    bump(unused_supply_ns_, grant_domains(elapsed * cpu_count_));

    bool budget_returned = false;
    for (SchedDomain& domain : domains_) {
        grant_vcpus(domain, -credit_bound_ns());
        const u32 cap = domain.cap_.load(MemoryOrder::Relaxed);
        if (cap != 0) {
            const i64 refill = static_cast<i64>(u64{cap} * elapsed / 100);
            domain.budget_ns_.fetch_add(refill, MemoryOrder::Relaxed);
            clamp_down(domain.budget_ns_, static_cast<i64>(kCapCarryPeriods) * cap_budget_per_period(cap));
        }
        if (domain.parked_vcpus_.load(MemoryOrder::Relaxed) != 0 && !over_cap(domain)) budget_returned = true;
    }

    // Publish: each CPU re-sorts its queue (and unparks) at its next decision. CPUs running
    // OVER work while others wait may now have better work; CPUs holding parked vCPUs of a
    // domain with budget again must take them back.
    account_epoch_.fetch_add(1, MemoryOrder::Release);
    if (budget_returned) unpark_epoch_.fetch_add(1, MemoryOrder::Release);
    for (u32 other = 0; other < cpu_count_; ++other) {
        if (other == cpu) continue;
        const RunQueue& queue = run_queue(other);
        const bool parked_return = budget_returned && queue.parked_count.load(MemoryOrder::Relaxed) != 0;
        const bool over_with_waiters =
            queue.current_priority.load(MemoryOrder::Relaxed) == static_cast<u8>(Priority::Over) &&
            queue.queued.load(MemoryOrder::Relaxed) != 0;
        if (parked_return || over_with_waiters) reschedule.set(other);
    }
}

void CreditScheduler::measure_demand(u64 now_ns, u64 elapsed_ns) {
    const i64 ceiling = credit_bound_ns();

    // Who competed: a vCPU is active if it was runnable at some time this period, saturated if
    // it was runnable all the time. A running vCPU's credit counts the time it has run since
    // its last charge (read without its CPU's lock: an estimate, good to a few nanoseconds).
    i64 saturated_credit = 0;
    i64 saturated = 0;
    for (SchedDomain& domain : domains_) {
        for (SchedVcpu& vcpu : domain.vcpus_) {
            const State state = state_of(vcpu);
            const bool slept = vcpu.slept_.exchange(0, MemoryOrder::Relaxed) != 0;
            vcpu.acct_active_ = vcpu.ran_or_woke_.exchange(0, MemoryOrder::Relaxed) != 0 || state != State::Blocked;
            if (!vcpu.acct_active_) continue;
            vcpu.acct_credit_ns_ = vcpu.credit_ns_.load(MemoryOrder::Relaxed);
            if (state == State::Running) {
                vcpu.acct_credit_ns_ -= static_cast<i64>(elapsed_since(now_ns, vcpu.run_start_ns_.load(MemoryOrder::Relaxed)));
            }
            if (!slept && state != State::Blocked) {
                saturated_credit += vcpu.acct_credit_ns_;
                ++saturated;
            }
        }
    }

    // Credit is conserved while every CPU is busy (handed out = burnt), so an offset common to
    // all (the start credit, a transient's debt) would never go away, and UNDER (credit >= 0)
    // would stop meaning "has not had its share". Shifting every active vCPU by the mean of the
    // saturated ones keeps the differences (the fairness) and puts that mean back at 0.
    const i64 shift = saturated != 0 ? saturated_credit / saturated : 0;

    for (SchedDomain& domain : domains_) {
        u64 room = 0;
        domain.acct_active_ = 0;
        for (SchedVcpu& vcpu : domain.vcpus_) {
            vcpu.acct_settled_ = !vcpu.acct_active_;
            if (!vcpu.acct_active_) continue;
            if (shift != 0) {
                vcpu.credit_ns_.fetch_sub(shift, MemoryOrder::Relaxed);
                vcpu.acct_credit_ns_ -= shift;
            }
            // What it can take before reaching the ceiling.
            vcpu.acct_room_ns_ = vcpu.acct_credit_ns_ < ceiling ? static_cast<u64>(ceiling - vcpu.acct_credit_ns_) : 0;
            room += vcpu.acct_room_ns_;
            ++domain.acct_active_;
        }
        domain.acct_peak_ns_ = room;
        const u32 cap = domain.cap_.load(MemoryOrder::Relaxed);
        if (cap != 0) domain.acct_peak_ns_ = min(room, u64{cap} * elapsed_ns / 100);
        domain.acct_grant_ns_ = 0;
        domain.acct_settled_ = domain.acct_peak_ns_ == 0;
    }
}

u64 CreditScheduler::grant_domains(u64 supply_ns) {
    // Water-filling: each unsettled domain's fair share is supply x weight x active vCPUs /
    // total; a domain whose share exceeds its peak gets its peak, and the rest is shared again
    // among the others (so a capped or lightly loaded domain's part goes to the busy ones).
    u64 remaining = supply_ns;
    for (;;) {
        u64 total_weight = 0;
        for (SchedDomain& domain : domains_) {
            if (!domain.acct_settled_) total_weight += u64{domain.weight_.load(MemoryOrder::Relaxed)} * domain.acct_active_;
        }
        if (total_weight == 0) return remaining;
        u64 taken = 0;
        bool clamped = false;
        for (SchedDomain& domain : domains_) {
            if (domain.acct_settled_) continue;
            const u64 fair = scale(remaining, u64{domain.weight_.load(MemoryOrder::Relaxed)} * domain.acct_active_, total_weight);
            if (fair >= domain.acct_peak_ns_) {
                domain.acct_grant_ns_ = domain.acct_peak_ns_;
                domain.acct_settled_ = true;
                taken += domain.acct_peak_ns_;
                clamped = true;
            }
        }
        if (!clamped) {
            u64 granted = 0;
            for (SchedDomain& domain : domains_) {
                if (domain.acct_settled_) continue;
                domain.acct_grant_ns_ = scale(remaining, u64{domain.weight_.load(MemoryOrder::Relaxed)} * domain.acct_active_, total_weight);
                domain.acct_settled_ = true;
                granted += domain.acct_grant_ns_;
            }
            return remaining - granted;  // rounding: less than a nanosecond per domain
        }
        remaining -= taken;  // each clamped peak was at most its fair share of `remaining`
    }
}

void CreditScheduler::grant_vcpus(SchedDomain& domain, i64 floor_ns) {
    // The domain's grant in equal parts to its active vCPUs, none beyond its room (the same
    // water-filling, with equal weights), then old debt beyond the floor is forgiven.
    u64 remaining = domain.acct_grant_ns_;
    for (;;) {
        u64 open = 0;
        for (SchedVcpu& vcpu : domain.vcpus_) open += vcpu.acct_settled_ ? 0 : 1;
        if (open == 0 || remaining == 0) break;
        const u64 share = remaining / open;
        bool clamped = false;
        for (SchedVcpu& vcpu : domain.vcpus_) {
            if (vcpu.acct_settled_ || vcpu.acct_room_ns_ > share) continue;
            vcpu.credit_ns_.fetch_add(static_cast<i64>(vcpu.acct_room_ns_), MemoryOrder::Relaxed);
            vcpu.acct_settled_ = true;
            remaining -= vcpu.acct_room_ns_;
            clamped = true;
        }
        if (clamped) continue;
        // Nobody is limited by its room: equal parts, the remainder a nanosecond each to the
        // first ones (each has room for share + 1).
        u64 leftover = remaining - share * open;
        for (SchedVcpu& vcpu : domain.vcpus_) {
            if (vcpu.acct_settled_) continue;
            const u64 extra = leftover != 0 ? 1 : 0;
            leftover -= extra;
            vcpu.credit_ns_.fetch_add(static_cast<i64>(share + extra), MemoryOrder::Relaxed);
        }
        break;
    }
    for (SchedVcpu& vcpu : domain.vcpus_) {
        if (vcpu.acct_active_) bump(forgiven_debt_ns_, clamp_up(vcpu.credit_ns_, floor_ns));
    }
}

// ---- Introspection ----------------------------------------------------------------------------

VcpuStats CreditScheduler::stats(const SchedVcpu& vcpu) const {
    return {vcpu.run_ns_.load(MemoryOrder::Relaxed), vcpu.wakeups_.load(MemoryOrder::Relaxed),
            vcpu.context_switches_.load(MemoryOrder::Relaxed), vcpu.migrations_.load(MemoryOrder::Relaxed)};
}

DomainStats CreditScheduler::stats(const SchedDomain& domain) const {
    return {domain.run_ns_.load(MemoryOrder::Relaxed), domain.wakeups_.load(MemoryOrder::Relaxed),
            domain.context_switches_.load(MemoryOrder::Relaxed)};
}

CpuStats CreditScheduler::cpu_stats(u32 cpu) const {
    LAMINA_ASSERT(cpu < cpu_count_);
    const RunQueue& queue = run_queues_[cpu];
    return {queue.decisions.load(MemoryOrder::Relaxed),     queue.inspected.load(MemoryOrder::Relaxed),
            queue.max_inspected.load(MemoryOrder::Relaxed), queue.steals.load(MemoryOrder::Relaxed),
            queue.trylock_failures.load(MemoryOrder::Relaxed), queue.accountings.load(MemoryOrder::Relaxed)};
}

PoolStats CreditScheduler::pool_stats() const {
    return {accountings_.load(MemoryOrder::Relaxed), unused_supply_ns_.load(MemoryOrder::Relaxed),
            forgiven_debt_ns_.load(MemoryOrder::Relaxed)};
}

u32 CreditScheduler::weight(const SchedDomain& domain) const { return domain.weight_.load(MemoryOrder::Relaxed); }

Priority CreditScheduler::priority(SchedVcpu& vcpu) {
    const u32 owner = lock_owner(vcpu);
    const State state = state_of(vcpu);
    const Priority result = state == State::Queued || state == State::Running ? vcpu.priority_ : credit_priority(vcpu);
    run_queue(owner).lock.unlock();
    return result;
}

bool CreditScheduler::is_parked(SchedVcpu& vcpu) { return state_of(vcpu) == State::Parked; }

SchedVcpu* CreditScheduler::current(u32 cpu) {
    LAMINA_ASSERT(cpu < cpu_count_);
    RunQueue& queue = run_queue(cpu);
    LockGuard guard(queue.lock);
    return queue.current;
}

SpinLock& CreditScheduler::run_queue_lock(u32 cpu) {
    LAMINA_ASSERT(cpu < cpu_count_);
    return run_queue(cpu).lock;
}

}  // namespace lamina::sched
