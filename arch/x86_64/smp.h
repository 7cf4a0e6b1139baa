// Bringing up the application processors (INIT-SIPI-SIPI, SDM Vol. 3A 9.4.4 and 11.6) and the
// table of per-CPU blocks.
#pragma once

#include <hypervisor/percpu.h>

namespace lamina::smp {

// The boot CPU's per-CPU block, usable before memory management exists.
PerCpu& boot_cpu();
// Sets up the calling CPU's descriptors with guard-paged IST stacks (needs memory).
void init_cpu_descriptors(PerCpu& cpu);

// Starts every CPU whose APIC id is listed (the boot CPU's own id is skipped), at most
// max_cpus in all. Each started CPU enables its APIC and virtualization and then idles.
void start_application_processors(const u32* apic_ids, u32 count, u32 max_cpus);

u32 online_count();
// CPUs the firmware lists as usable (counted by the caller from the MADT).
PerCpu* cpu(u32 index);

// Runs fn(argument) on another CPU's idle loop, in thread context with interrupts on (where a
// vCPU may run, unlike in an IPI handler). False if that CPU is offline or still busy.
enum class WorkState : u32 { Idle, Pending, Running, Done };
bool start_on(u32 cpu_index, void (*fn)(void*), void* argument);
// Waits until the work given to that CPU has finished; false on timeout.
bool wait_for_work(u32 cpu_index, u64 timeout_us);

// Calls fn on every online CPU but the caller, by IPI, and waits until all have run it;
// false if some CPU did not answer within timeout_us.
bool run_on_others(void (*fn)(), u64 timeout_us = 1000000);

}  // namespace lamina::smp
