#include "sched_simulator.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace lamina::sched::sim {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::logic_error("sched simulator: " + what); }

}  // namespace

Simulator::Simulator(const Config& config)
    : config_(config), scheduler_(std::make_unique<CreditScheduler>()), cpus_(config.cpus) {
    scheduler_->init(config.cpus, 0);
    const Status status = scheduler_->set_pool_params(config.pool);
    if (!status.ok()) fail("pool parameters refused");
}

u32 Simulator::add_domain(u32 weight, u32 cap) {
    const u32 index = static_cast<u32>(domains_.size());
    domains_.push_back(std::make_unique<Domain>());
    if (!scheduler_->add_domain(domains_.back()->sched, index, weight, cap).ok()) fail("domain refused");
    return index;
}

u32 Simulator::add_vcpu(u32 domain, Behaviour behaviour) {
    const u32 index = static_cast<u32>(vcpus_.size());
    vcpus_.push_back(std::make_unique<Vcpu>());
    Vcpu& vcpu = *vcpus_.back();
    vcpu.behaviour = behaviour;
    vcpu.domain = domain;
    vcpu.hard = CpuSet::first_n(config_.cpus);
    if (!scheduler_->add_vcpu(domains_.at(domain)->sched, vcpu.sched, index).ok()) fail("vCPU refused");
    domains_[domain]->vcpus.push_back(index);
    return index;
}

u32 Simulator::add_hog(u32 domain) { return add_vcpu(domain, Behaviour::Hog); }

u32 Simulator::add_io_bound(u32 domain, u64 run_ns, u64 sleep_ns) {
    const u32 index = add_vcpu(domain, Behaviour::IoBound);
    vcpus_[index]->run_ns = run_ns;
    vcpus_[index]->sleep_ns = sleep_ns;
    return index;
}

u32 Simulator::add_event_handler(u32 domain, u64 run_ns) {
    const u32 index = add_vcpu(domain, Behaviour::EventHandler);
    vcpus_[index]->run_ns = run_ns;
    return index;
}

u32 Simulator::add_waker(u32 domain, u32 target_vcpu, u64 interval_ns) {
    const u32 index = add_vcpu(domain, Behaviour::Waker);
    vcpus_[index]->target = target_vcpu;
    vcpus_[index]->interval_ns = interval_ns;
    vcpus_[index]->remaining_ns = interval_ns;
    return index;
}

void Simulator::set_affinity(u32 vcpu, const CpuSet& hard, const CpuSet& soft) {
    Vcpu& v = *vcpus_.at(vcpu);
    Tickle tickle;
    if (!scheduler_->set_affinity(v.sched, hard, soft, now_, &tickle).ok()) fail("affinity refused");
    v.hard = hard & CpuSet::first_n(config_.cpus);
    deliver(tickle, kNoCpu);
}

void Simulator::start() {
    // Every vCPU boots (an event handler runs one burst, then waits for events); these first
    // wakes start vCPUs, they are not events, so their latency is not measured.
    for (u32 index = 0; index < vcpus_.size(); ++index) {
        wake(index, kNoCpu);
        vcpus_[index]->awaiting_dispatch = false;
    }
}

void Simulator::run_for(u64 duration_ns) {
    const u64 end = now_ + duration_ns;
    while (!events_.empty() && events_.top().time <= end) {
        const Event event = events_.top();
        events_.pop();
        now_ = event.time;
        handle(event);
    }
    now_ = end;
    for (u32 cpu = 0; cpu < cpus_.size(); ++cpu) settle(cpu);
}

void Simulator::reset_measurements() {
    for (u32 cpu = 0; cpu < cpus_.size(); ++cpu) {
        settle(cpu);
        cpus_[cpu].work = {};
    }
    for (auto& vcpu : vcpus_) {
        vcpu->executed_ns = 0;
        vcpu->latencies.clear();
    }
    measure_start_ = now_;
}

void Simulator::post(u64 time, EventKind kind, u32 index, u64 generation) {
    events_.push(Event{time, sequence_++, kind, index, generation});
}

void Simulator::handle(const Event& event) {
    switch (event.kind) {
        case EventKind::Timer:
            if (event.generation == cpus_[event.index].timer_generation) reschedule(event.index);
            break;
        case EventKind::Ipi:
            reschedule(event.index);
            break;
        case EventKind::Action:
            if (event.generation == cpus_[event.index].dispatch_generation) act(event.index);
            break;
        case EventKind::WakeTimer:
            wake(event.index, kNoCpu);
            break;
    }
}

void Simulator::settle(u32 cpu) {
    Cpu& c = cpus_[cpu];
    if (c.current < 0 || now_ <= c.dispatched_at) return;
    Vcpu& vcpu = *vcpus_[static_cast<u32>(c.current)];
    const u64 ran = now_ - c.dispatched_at;
    vcpu.executed_ns += now_ - std::max(c.dispatched_at, measure_start_);
    if (vcpu.behaviour != Behaviour::Hog) vcpu.remaining_ns -= std::min(ran, vcpu.remaining_ns);
    c.dispatched_at = now_;
}

void Simulator::reschedule(u32 cpu) {
    settle(cpu);
    Cpu& c = cpus_[cpu];
    const u64 inspected_before = scheduler_->cpu_stats(cpu).inspected;
    const Decision decision = scheduler_->schedule(cpu, now_);
    const u64 inspected = scheduler_->cpu_stats(cpu).inspected - inspected_before;
    ++c.work.decisions;
    c.work.inspected += inspected;
    c.work.max_inspected = std::max(c.work.max_inspected, inspected);

    const int next = decision.next ? static_cast<int>(decision.next->id()) : -1;
    if (next >= 0) {
        Vcpu& vcpu = *vcpus_[static_cast<u32>(next)];
        if (vcpu.blocked) fail("a blocked vCPU was picked");
        for (u32 other = 0; other < cpus_.size(); ++other) {
            if (other != cpu && cpus_[other].current == next) fail("a vCPU was picked by two CPUs");
        }
        if (!vcpu.hard.test(cpu)) ++affinity_violations_;
    }
    c.current = next;
    c.dispatched_at = now_ + config_.decision_cost_ns;
    ++c.dispatch_generation;
    if (next >= 0) {
        Vcpu& vcpu = *vcpus_[static_cast<u32>(next)];
        if (vcpu.awaiting_dispatch) {
            vcpu.awaiting_dispatch = false;
            if (vcpu.woken_at >= measure_start_) vcpu.latencies.push_back(c.dispatched_at - vcpu.woken_at);
        }
        if (vcpu.behaviour != Behaviour::Hog) {
            post(c.dispatched_at + vcpu.remaining_ns, EventKind::Action, cpu, c.dispatch_generation);
        }
    }

    ++c.timer_generation;
    if (decision.next_event_ns != kNever) {
        if (decision.next_event_ns <= now_) fail("a timer in the past");
        post(decision.next_event_ns, EventKind::Timer, cpu, c.timer_generation);
    }
    for (u32 other = decision.reschedule.first(); other != kNoCpu; other = decision.reschedule.next_from(other + 1)) {
        deliver(Tickle{other}, cpu);
    }
}

void Simulator::deliver(const Tickle& tickle, u32 from_cpu) {
    if (!tickle.needed()) return;
    // A CPU interrupting itself reschedules on its way back to the guest: no IPI.
    post(now_ + (tickle.cpu == from_cpu ? 0 : config_.ipi_latency_ns), EventKind::Ipi, tickle.cpu);
}

void Simulator::wake(u32 index, u32 from_cpu) {
    Vcpu& vcpu = *vcpus_[index];
    if (!vcpu.blocked) return;  // an event for a vCPU that is running anyway
    vcpu.blocked = false;
    if (vcpu.behaviour == Behaviour::IoBound || vcpu.behaviour == Behaviour::EventHandler) {
        vcpu.remaining_ns = vcpu.run_ns;
    }
    vcpu.woken_at = now_;
    vcpu.awaiting_dispatch = true;
    deliver(scheduler_->wake(vcpu.sched, now_), from_cpu);
}

void Simulator::act(u32 cpu) {
    settle(cpu);
    Cpu& c = cpus_[cpu];
    Vcpu& vcpu = *vcpus_[static_cast<u32>(c.current)];
    switch (vcpu.behaviour) {
        case Behaviour::Hog:
            fail("a hog has no actions");
        case Behaviour::IoBound:
        case Behaviour::EventHandler: {
            vcpu.blocked = true;
            const Tickle tickle = scheduler_->block(vcpu.sched, now_);
            if (tickle.cpu != cpu) fail("block() did not name the vCPU's own CPU");
            if (vcpu.behaviour == Behaviour::IoBound) post(now_ + vcpu.sleep_ns, EventKind::WakeTimer, c.current);
            reschedule(cpu);
            break;
        }
        case Behaviour::Waker:
            vcpu.remaining_ns = vcpu.interval_ns;
            post(now_ + vcpu.interval_ns, EventKind::Action, cpu, c.dispatch_generation);
            wake(vcpu.target, cpu);
            break;
    }
}

u64 Simulator::vcpu_run_ns(u32 vcpu) const { return vcpus_.at(vcpu)->executed_ns; }

u64 Simulator::domain_run_ns(u32 domain) const {
    u64 total = 0;
    for (u32 vcpu : domains_.at(domain)->vcpus) total += vcpus_[vcpu]->executed_ns;
    return total;
}

double Simulator::domain_cpus(u32 domain) const {
    return measured_ns() == 0 ? 0.0 : static_cast<double>(domain_run_ns(domain)) / static_cast<double>(measured_ns());
}

LatencySummary Simulator::wake_latency(u32 vcpu) const {
    std::vector<u64> sorted = vcpus_.at(vcpu)->latencies;
    LatencySummary summary;
    if (sorted.empty()) return summary;
    std::sort(sorted.begin(), sorted.end());
    summary.count = sorted.size();
    summary.max_ns = sorted.back();
    summary.p99_ns = sorted[(sorted.size() * 99 + 99) / 100 - 1];
    u64 total = 0;
    for (u64 latency : sorted) total += latency;
    summary.mean_ns = total / sorted.size();
    return summary;
}

WorkSummary Simulator::work(u32 cpu) const { return cpus_.at(cpu).work; }

WorkSummary Simulator::work_all() const {
    WorkSummary total;
    for (const Cpu& cpu : cpus_) {
        total.decisions += cpu.work.decisions;
        total.inspected += cpu.work.inspected;
        total.max_inspected = std::max(total.max_inspected, cpu.work.max_inspected);
    }
    return total;
}

std::vector<double> expected_cpus(u32 cpus, const std::vector<HogDomain>& domains) {
    std::vector<double> result(domains.size(), 0.0);
    std::vector<bool> settled(domains.size(), false);
    double remaining = cpus;
    for (;;) {
        double total_weight = 0;
        for (usize i = 0; i < domains.size(); ++i) {
            if (!settled[i]) total_weight += double(domains[i].weight) * domains[i].hogs;
        }
        if (total_weight == 0) return result;
        bool clamped = false;
        double taken = 0;
        for (usize i = 0; i < domains.size(); ++i) {
            if (settled[i]) continue;
            double peak = domains[i].hogs;
            if (domains[i].cap != 0) peak = std::min(peak, domains[i].cap / 100.0);
            const double fair = remaining * domains[i].weight * domains[i].hogs / total_weight;
            if (fair >= peak) {
                result[i] = peak;
                settled[i] = true;
                taken += peak;
                clamped = true;
            }
        }
        if (!clamped) {
            for (usize i = 0; i < domains.size(); ++i) {
                if (!settled[i]) result[i] = remaining * domains[i].weight * domains[i].hogs / total_weight;
            }
            return result;
        }
        remaining -= taken;
    }
}

HogMixResult run_hog_mix(const Config& config, const std::vector<HogDomain>& domains, u64 duration_ns) {
    Simulator sim(config);
    std::vector<u32> ids;
    for (const HogDomain& spec : domains) {
        ids.push_back(sim.add_domain(spec.weight, spec.cap));
        for (u32 i = 0; i < spec.hogs; ++i) sim.add_hog(ids.back());
    }
    sim.start();
    sim.run_for(duration_ns);
    HogMixResult result;
    const std::vector<double> expected = expected_cpus(config.cpus, domains);
    for (usize i = 0; i < domains.size(); ++i) result.domains.push_back({sim.domain_cpus(ids[i]), expected[i]});
    result.work = sim.work_all();
    result.affinity_violations = sim.affinity_violations();
    return result;
}

LatencyResult run_latency(const Config& config, u32 hogs, u64 duration_ns) {
    Simulator sim(config);
    const u32 io = sim.add_io_bound(sim.add_domain(), 20 * kNsPerUs, 2 * kNsPerMs);
    const u32 handler = sim.add_event_handler(sim.add_domain(), 20 * kNsPerUs);
    sim.add_waker(sim.add_domain(), handler, 3 * kNsPerMs);
    for (u32 i = 1; i < hogs; ++i) sim.add_hog(sim.add_domain());
    sim.start();
    sim.run_for(duration_ns);
    return {sim.wake_latency(io), sim.wake_latency(handler)};
}

WorkSummary run_remote_load(const Config& config, u32 local_hogs, u32 remote_hogs, u64 duration_ns) {
    Simulator sim(config);
    const u32 domain = sim.add_domain();
    CpuSet others = CpuSet::first_n(config.cpus);
    others.clear(0);
    for (u32 i = 0; i < local_hogs; ++i) sim.set_affinity(sim.add_hog(domain), CpuSet::of(0));
    for (u32 i = 0; i < remote_hogs; ++i) sim.set_affinity(sim.add_hog(domain), others);
    sim.start();
    sim.run_for(duration_ns);
    return sim.work(0);
}

}  // namespace lamina::sched::sim
