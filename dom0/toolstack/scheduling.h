// The credit scheduler's parameters as Dom0 sets and shows them (sched-credit, vcpu-pin,
// vcpu-list, and the builder's cpu_weight, cap and cpus). The hypervisor answers -EINVAL to a
// value out of its range; Dom0 checks first, so that a refusal names the range.
#pragma once

#include <dom0/toolstack/message.h>
#include <dom0/toolstack/xl_config.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/sched.h>

namespace lamina::toolstack {

// A domain's weight (LAMINA_SCHED_WEIGHT_MIN to LAMINA_SCHED_WEIGHT_MAX) and cap (percent of one
// CPU: 0 to 100 for each of the host's `host_cpus`). False with `error`, one line without the
// command: "weight 0 is out of range (1 to 65535)".
bool check_domain_params(u64 weight, u64 cap, u32 host_cpus, Message& error);

// The pool's time slice (LAMINA_SCHED_TIMESLICE_MIN_MS to LAMINA_SCHED_TIMESLICE_MAX_MS) and rate
// limit (0: off, or LAMINA_SCHED_RATELIMIT_MIN_US to the time slice). False with `error`, as above.
bool check_pool_params(u64 timeslice_ms, u64 ratelimit_us, Message& error);

// CpuSet keeps its CPUs as the ABI's affinity bitmaps do.
static_assert(CpuSet::kMaxCpus == LAMINA_MAX_HOST_CPUS);
CpuSet cpu_set_of(const u64 (&bitmap)[CpuSet::kWords]);
void store_cpu_set(const CpuSet& cpus, u64 (&bitmap)[CpuSet::kWords]);

// An affinity as vcpu-list shows it, xl's way: "all" when it holds every host CPU, else its CPU
// list. An empty set, a soft affinity's "no preference", is "all" too.
void format_affinity(Sink& sink, const CpuSet& cpus, u32 host_cpus);

// xl vcpu-list's State of a vCPU ("r--" running, "-b-" blocked, "--p" paused or offline), as far
// as the ABI tells: it has the domain's state and how many vCPUs are up, nothing per vCPU.
const char* vcpu_state(const lamina_domain_info& info, u32 vcpu);

}  // namespace lamina::toolstack
