// The credit scheduler at work: each CPU's loop that asks the policy (credit_scheduler.h) what
// to run, runs that vCPU until its slice ends, it blocks or yields, or something wakes a vCPU
// that should preempt it, and halts when nothing is runnable. The CPU's one-shot timer serves
// the slice end and the earliest vCPU timer on this CPU, whichever comes first.
//
// For now one CPU, the boot CPU, runs the domains' vCPUs (they are created there and a VMX vCPU
// stays on the CPU that loaded its VMCS); the other CPUs idle until vCPUs can move.
#pragma once

#include <hypervisor/domain/domain.h>
#include <hypervisor/sched/credit_scheduler.h>

namespace lamina::scheduler {

// Before the first domain is added; the policy starts with the CPUs that run vCPUs.
void init();
sched::CreditScheduler& policy();

// A domain and its vCPUs join or leave the policy. remove() needs every vCPU not runnable.
bool add(Domain& domain);
void remove(Domain& domain);
bool add_vcpu(DomainVcpu& vcpu);

// Recomputes whether the vCPU may run (its domain is RUNNING, it is started, it does not
// sleep) and tells the policy when that changed; a wake-up that should preempt what this CPU
// runs makes it reschedule.
void update(DomainVcpu& vcpu);
// Its timer deadline changed: the CPU's timer list and, if earlier, the CPU's timer follow.
void timer_changed(DomainVcpu& vcpu);
// The running vCPU offers its CPU (vcpu_yield).
void yield(DomainVcpu& vcpu);

// This CPU runs the scheduled domains from now on.
[[noreturn]] void run_this_cpu();

}  // namespace lamina::scheduler
