#include <hypervisor/sched/cpu_scheduler.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <arch/x86_64/interrupts.h>
#include <arch/x86_64/smp.h>
#include <hypervisor/console.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/percpu.h>
#include <hypervisor/time.h>
#include <lamina/abi/event_channel.h>

namespace lamina::scheduler {
namespace {

constexpr u32 kNoCpu = DomainVcpu::kNoCpu;
// Typed input wakes the control domain. Its interrupt does that on Bochs; QEMU 7.2 never
// delivers it (hypervisor/console.cpp), so the boot CPU also looks this often.
constexpr u64 kConsolePollNs = 10 * sched::kNsPerMs;
constexpr u32 kConsoleCpu = 0;  // the UART's interrupt is routed there

sched::CreditScheduler credit;

// One CPU's share of the loop's state.
struct CpuState {
    SpinLock timer_lock;
    // Its vCPUs with a timer armed, earliest deadline first.
    IntrusiveList<DomainVcpu, &DomainVcpu::timer_link> timers;
    u64 armed_ns = 0;      // what its one-shot timer is armed for (its own CPU only)
    Atomic<u64> passes{0};  // times through its loop (quiesce waits for it to move)
};
CpuState cpus[sched::kMaxCpus];

DomainVcpu& owner(sched::SchedVcpu* vcpu) { return *owner_of(vcpu, &DomainVcpu::sched); }

bool may_run(const DomainVcpu& vcpu) {
    return vcpu.domain().state() == LAMINA_DOMAIN_RUNNING && vcpu.started() && !vcpu.sleeping && !vcpu.halted &&
           !vcpu.down;
}

void reschedule_interrupt(x86::InterruptFrame&) {
    this_cpu()->reschedule_pending.store(true, MemoryOrder::Relaxed);
    apic::end_of_interrupt();
}

void reschedule(u32 cpu) {
    PerCpu& self = *this_cpu();
    if (cpu == self.index) {
        self.reschedule_pending.store(true, MemoryOrder::Relaxed);
    } else if (PerCpu* other = smp::cpu(cpu)) {
        apic::send_ipi(other->apic_id, x86::vector::kReschedule);
    }
}

// The CPU's one-shot timer for `deadline_ns`, or stopped for kNever.
void arm(CpuState& state, u64 deadline_ns, u64 now_ns) {
    if (deadline_ns == sched::kNever) {
        apic::stop_timer();
        state.armed_ns = 0;
        return;
    }
    state.armed_ns = deadline_ns;
    apic::arm_timer(deadline_ns > now_ns ? deadline_ns - now_ns : 0);
}

void fire_due_timers(CpuState& state, u64 now_ns) {
    for (;;) {
        DomainVcpu* due;
        {
            LockGuard guard(state.timer_lock);
            due = state.timers.front();
            if (!due || due->timer_deadline() > now_ns) return;
            state.timers.remove(*due);
            due->timer_cpu = kNoCpu;
        }
        due->fire_timer_if_due(now_ns);
    }
}

u64 earliest_timer(CpuState& state) {
    LockGuard guard(state.timer_lock);
    const DomainVcpu* first = state.timers.front();
    return first ? first->timer_deadline() : sched::kNever;
}

void deliver_console_input() {
    Domain* control = domains().control_domain();
    if (!control || !console::take_arrival()) return;
    if (!control->events().raise_virq(LAMINA_VIRQ_CONSOLE, 0)) control->vcpu(0)->notify(0);
}

u64 earliest(u64 a, u64 b) { return a < b ? a : b; }

// The CPU that ran `vcpu` lets it go, so that any CPU may load it.
void release(DomainVcpu& vcpu) {
    vcpu.hardware().release();
    vcpu.loaded_on.store(kNoCpu, MemoryOrder::Release);
}

}  // namespace

void init() {
    credit.init(smp::online_count(), time::now_ns());
    x86::set_interrupt_handler(x86::vector::kReschedule, reschedule_interrupt);
}

sched::CreditScheduler& policy() { return credit; }

bool add(Domain& domain) { return credit.add_domain(domain.sched, domain.id()).ok(); }

bool add_vcpu(DomainVcpu& vcpu) { return credit.add_vcpu(vcpu.domain().sched, vcpu.sched, vcpu.index()).ok(); }

void remove(Domain& domain) {
    for (u32 i = 0; i < domain.max_vcpus(); ++i) {
        DomainVcpu* vcpu = domain.vcpu(i);
        if (!vcpu) continue;
        update(*vcpu);  // not runnable any more: DYING
        if (vcpu->timer_cpu != kNoCpu) {
            CpuState& state = cpus[vcpu->timer_cpu];
            LockGuard guard(state.timer_lock);
            if (vcpu->timer_link.linked()) state.timers.remove(*vcpu);
            vcpu->timer_cpu = kNoCpu;
        }
        (void)credit.remove_vcpu(vcpu->sched);
    }
    (void)credit.remove_domain(domain.sched);
}

void update(DomainVcpu& vcpu) {
    sched::Tickle tickle;
    {
        LockGuard guard(vcpu.state_lock);
        const bool runnable = may_run(vcpu);
        if (runnable == vcpu.runnable) return;
        vcpu.runnable = runnable;
        const u64 now = time::now_ns();
        tickle = runnable ? credit.wake(vcpu.sched, now) : credit.block(vcpu.sched, now);
    }
    if (tickle.needed()) reschedule(tickle.cpu);
}

void timer_changed(DomainVcpu& vcpu) {
    if (vcpu.timer_cpu != kNoCpu) {
        CpuState& old = cpus[vcpu.timer_cpu];
        LockGuard guard(old.timer_lock);
        if (vcpu.timer_link.linked()) old.timers.remove(vcpu);
        vcpu.timer_cpu = kNoCpu;
    }
    const u64 deadline = vcpu.timer_deadline();
    if (!deadline) return;
    // On the list of the CPU it runs on, which arms its own timer.
    const u32 me = this_cpu()->index;
    CpuState& mine = cpus[me];
    {
        LockGuard guard(mine.timer_lock);
        DomainVcpu* later = mine.timers.front();
        while (later && later->timer_deadline() <= deadline) later = mine.timers.next(*later);
        if (later) mine.timers.insert_before(*later, vcpu);
        else mine.timers.push_back(vcpu);
        vcpu.timer_cpu = me;
    }
    // Sooner than the CPU's timer (or that one went off already): it has to come out of the
    // guest for it.
    const u64 now = time::now_ns();
    if (!mine.armed_ns || deadline < mine.armed_ns || mine.armed_ns <= now) arm(mine, deadline, now);
}

void yield(DomainVcpu& vcpu) {
    const sched::Tickle tickle = credit.yield(vcpu.sched, time::now_ns());
    if (tickle.needed()) reschedule(tickle.cpu);
}

sched::Status set_affinity(DomainVcpu& vcpu, const sched::CpuSet& hard, const sched::CpuSet& soft) {
    sched::Tickle tickle;
    const sched::Status status = credit.set_affinity(vcpu.sched, hard, soft, time::now_ns(), &tickle);
    if (status.ok() && tickle.needed()) reschedule(tickle.cpu);
    return status;
}

void quiesce(Domain& domain) {
    const u32 me = this_cpu()->index;
    u64 seen[sched::kMaxCpus];
    for (u32 cpu = 0; cpu < credit.cpu_count(); ++cpu) {
        if (cpu == me) continue;
        seen[cpu] = cpus[cpu].passes.load(MemoryOrder::Acquire);
        reschedule(cpu);
    }
    for (u32 cpu = 0; cpu < credit.cpu_count(); ++cpu) {
        if (cpu == me) continue;
        while (cpus[cpu].passes.load(MemoryOrder::Acquire) == seen[cpu]) x86::pause();
    }
    // A CPU that went past its loop runs another vCPU or idles: it released this domain's.
    for (u32 i = 0; i < domain.max_vcpus(); ++i) {
        if (DomainVcpu* vcpu = domain.vcpu(i)) {
            while (vcpu->loaded_on.load(MemoryOrder::Acquire) != kNoCpu) x86::pause();
        }
    }
}

void run_this_cpu() {
    PerCpu& cpu = *this_cpu();
    const u32 me = cpu.index;
    CpuState& state = cpus[me];
    DomainVcpu* loaded = nullptr;
    for (;;) {
        x86::disable_interrupts();
        cpu.reschedule_pending.store(false, MemoryOrder::Relaxed);
        state.passes.fetch_add(1, MemoryOrder::Release);
        const u64 now = time::now_ns();
        fire_due_timers(state, now);
        if (me == kConsoleCpu) deliver_console_input();
        const sched::Decision decision = credit.schedule(me, now);
        for (u32 other = decision.reschedule.first(); other != sched::kNoCpu; other = decision.reschedule.next_from(other + 1))
            reschedule(other);
        DomainVcpu* next = decision.next ? &owner(decision.next) : nullptr;
        if (loaded && loaded != next) {
            release(*loaded);
            loaded = nullptr;
        }
        u64 wake = earliest(decision.next_event_ns, earliest_timer(state));
        // Input reaches the control domain through this loop on the console's CPU, idle or not.
        if (me == kConsoleCpu && domains().control_domain()) wake = earliest(wake, now + kConsolePollNs);
        if (!next) {
            arm(state, wake, now);
            // STI's shadow covers HLT: an interrupt cannot slip in between and be missed.
            x86::enable_interrupts_and_halt();
            continue;
        }
        // The CPU that ran it last releases it just after its own decision.
        while (next->loaded_on.load(MemoryOrder::Acquire) != kNoCpu && next->loaded_on.load(MemoryOrder::Acquire) != me)
            x86::pause();
        next->loaded_on.store(me, MemoryOrder::Relaxed);
        loaded = next;
        arm(state, wake, now);
        const VcpuStop stop = next->run(~u64{0});
        x86::disable_interrupts();
        if (stop == VcpuStop::Blocked) {
            if (next->try_sleep()) update(*next);
        } else if (stop == VcpuStop::Yielded) {
            yield(*next);
        }
    }
}

}  // namespace lamina::scheduler
