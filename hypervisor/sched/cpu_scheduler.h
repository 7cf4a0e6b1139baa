// The credit scheduler at work: every CPU's loop asks the policy (credit_scheduler.h) what to
// run, runs that vCPU until its slice ends, it blocks or yields, or a wake-up should preempt it,
// and halts when nothing is runnable. Each CPU's one-shot timer serves its slice end and the
// earliest vCPU timer on its list, whichever comes first; a wake-up for another CPU is a
// reschedule IPI. A vCPU runs on any CPU: the CPU that ran it releases it (Vcpu::release)
// before another loads it.
#pragma once

#include <hypervisor/domain/domain.h>
#include <hypervisor/sched/credit_scheduler.h>

namespace lamina::scheduler {

// Before the first domain is added: the policy starts with every online CPU.
void init();
sched::CreditScheduler& policy();

// A domain and its vCPUs join or leave the policy. remove() needs every vCPU stopped and
// released (quiesce).
bool add(Domain& domain);
void remove(Domain& domain);
bool add_vcpu(DomainVcpu& vcpu);

// Recomputes whether the vCPU may run (its domain is RUNNING, it is started, up, and does not
// sleep) and tells the policy when that changed; the CPU that must reschedule is told.
void update(DomainVcpu& vcpu);
// Its timer deadline changed: the timer lists and, if earlier, this CPU's timer follow.
void timer_changed(DomainVcpu& vcpu);
// The running vCPU offers its CPU (vcpu_yield).
void yield(DomainVcpu& vcpu);
// Its hard and soft affinity; a vCPU running or queued where it may no longer run moves (its CPU
// is told to reschedule). The policy's status: NoOnlineCpu for a hard set without an online CPU.
sched::Status set_affinity(DomainVcpu& vcpu, const sched::CpuSet& hard, const sched::CpuSet& soft);

// For destruction, once the domain's vCPUs can no longer become runnable: returns when every
// other CPU has been through its loop since the call (so no CPU still uses what it found
// before, as after an RCU grace period) and none of the vCPUs is loaded anywhere.
void quiesce(Domain& domain);

// This CPU runs the scheduled domains from now on.
[[noreturn]] void run_this_cpu();

}  // namespace lamina::scheduler
