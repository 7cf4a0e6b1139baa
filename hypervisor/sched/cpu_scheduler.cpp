#include <hypervisor/sched/cpu_scheduler.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <hypervisor/console.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/percpu.h>
#include <hypervisor/time.h>
#include <lamina/abi/event_channel.h>

namespace lamina::scheduler {
namespace {

// The CPU that runs vCPUs (cpu_scheduler.h says why only one).
constexpr u32 kVcpuCpu = 0;
// Typed input wakes the control domain. Its interrupt does that on Bochs; QEMU 7.2 never
// delivers it (hypervisor/console.cpp), so an idle CPU also looks this often.
constexpr u64 kConsolePollNs = 10 * sched::kNsPerMs;

sched::CreditScheduler credit;
// The vCPUs of this CPU with a timer armed, earliest deadline first.
IntrusiveList<DomainVcpu, &DomainVcpu::timer_link> timers;
u64 armed_ns = 0;  // what the CPU's timer is armed for; 0: nothing

DomainVcpu& owner(sched::SchedVcpu* vcpu) { return *owner_of(vcpu, &DomainVcpu::sched); }

bool may_run(const DomainVcpu& vcpu) {
    return vcpu.domain().state() == LAMINA_DOMAIN_RUNNING && vcpu.started() && !vcpu.sleeping && !vcpu.halted && !vcpu.down;
}

void arm(u64 deadline_ns, u64 now_ns) {
    armed_ns = deadline_ns;
    apic::arm_timer(deadline_ns > now_ns ? deadline_ns - now_ns : 0);
}

void fire_due_timers(u64 now_ns) {
    while (DomainVcpu* vcpu = timers.front()) {
        if (vcpu->timer_deadline() > now_ns) break;
        vcpu->fire_timer_if_due(now_ns);  // takes it off the list (timer_changed)
    }
}

void deliver_console_input() {
    Domain* control = domains().control_domain();
    if (!control || !console::take_arrival()) return;
    if (!control->events().raise_virq(LAMINA_VIRQ_CONSOLE, 0)) control->vcpu(0)->notify(0);
}

u64 earliest(u64 a, u64 b) { return a < b ? a : b; }

}  // namespace

void init() { credit.init(1, time::now_ns()); }

sched::CreditScheduler& policy() { return credit; }

bool add(Domain& domain) { return credit.add_domain(domain.sched, domain.id()).ok(); }

bool add_vcpu(DomainVcpu& vcpu) { return credit.add_vcpu(vcpu.domain().sched, vcpu.sched, vcpu.index()).ok(); }

void remove(Domain& domain) {
    for (u32 i = 0; i < domain.max_vcpus(); ++i) {
        DomainVcpu* vcpu = domain.vcpu(i);
        if (!vcpu) continue;
        if (vcpu->runnable) {
            vcpu->runnable = false;
            (void)credit.block(vcpu->sched, time::now_ns());
        }
        if (vcpu->timer_link.linked()) timers.remove(*vcpu);
        (void)credit.remove_vcpu(vcpu->sched);
    }
    (void)credit.remove_domain(domain.sched);
}

void update(DomainVcpu& vcpu) {
    const bool runnable = may_run(vcpu);
    if (runnable == vcpu.runnable) return;
    vcpu.runnable = runnable;
    const u64 now = time::now_ns();
    const sched::Tickle tickle = runnable ? credit.wake(vcpu.sched, now) : credit.block(vcpu.sched, now);
    if (tickle.needed()) this_cpu()->reschedule_pending.store(true, MemoryOrder::Relaxed);
}

void timer_changed(DomainVcpu& vcpu) {
    if (vcpu.timer_link.linked()) timers.remove(vcpu);
    const u64 deadline = vcpu.timer_deadline();
    if (!deadline) return;
    DomainVcpu* later = timers.front();
    while (later && later->timer_deadline() <= deadline) later = timers.next(*later);
    if (later) timers.insert_before(*later, vcpu);
    else timers.push_back(vcpu);
    // Sooner than the CPU's timer: it has to come out of the guest for it.
    if (!armed_ns || deadline < armed_ns) arm(deadline, time::now_ns());
}

void yield(DomainVcpu& vcpu) {
    if (credit.yield(vcpu.sched, time::now_ns()).needed()) this_cpu()->reschedule_pending.store(true, MemoryOrder::Relaxed);
}

void run_this_cpu() {
    PerCpu& cpu = *this_cpu();
    for (;;) {
        x86::disable_interrupts();
        cpu.reschedule_pending.store(false, MemoryOrder::Relaxed);
        u64 now = time::now_ns();
        fire_due_timers(now);
        deliver_console_input();
        const sched::Decision decision = credit.schedule(kVcpuCpu, now);
        const u64 next_timer = timers.empty() ? sched::kNever : timers.front()->timer_deadline();
        u64 wake = earliest(decision.next_event_ns, next_timer);
        if (!decision.next) {
            if (domains().control_domain()) wake = earliest(wake, now + kConsolePollNs);
            if (wake != sched::kNever) arm(wake, now);
            // STI's shadow covers HLT: an interrupt cannot slip in between and be missed.
            x86::enable_interrupts_and_halt();
            continue;
        }
        if (wake != sched::kNever) arm(wake, now);
        DomainVcpu& vcpu = owner(decision.next);
        const VcpuStop stop = vcpu.run(~u64{0});
        x86::disable_interrupts();
        if (stop == VcpuStop::Blocked) {
            vcpu.sleeping = true;
            update(vcpu);
        } else if (stop == VcpuStop::Yielded) {
            yield(vcpu);
        }
    }
}

}  // namespace lamina::scheduler
