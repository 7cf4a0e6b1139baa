// Per-CPU data, reached through the GS base: each CPU's GS points at its own PerCpu, whose first
// word points at itself, so this_cpu() is a single GS-relative load.
#pragma once

#include <arch/x86_64/descriptors.h>
#include <lamina/atomic.h>
#include <lamina/types.h>

namespace lamina {

constexpr u32 kMaxCpus = 256;

struct PerCpu {
    PerCpu* self;  // must stay at offset 0
    u32 index;     // must stay at offset 8: dense 0..n-1, 0 = the boot CPU
    u32 apic_id;
    x86::CpuDescriptors descriptors;
    u64 stack_top;
    Atomic<u32> ipi_count;  // test IPIs received (self-test)
    Atomic<u32> timer_ticks;
    // Set by the timer interrupt and by wake-ups: the vCPU running here returns to the
    // scheduler at its next exit.
    Atomic<bool> reschedule_pending;
    bool virtualization_on;
    // The VMX vCPU whose KERNEL_GS_BASE and SYSCALL MSRs are in this CPU (arch/x86_64/vmx).
    void* lazy_msr_owner;
    // Work handed to this CPU's idle loop (smp::start_on): runs in thread context.
    void (*work)(void*);
    void* work_argument;
    Atomic<u32> work_state;  // smp::WorkState
};

inline PerCpu* this_cpu() {
    PerCpu* cpu;
    asm volatile("movq %%gs:0, %0" : "=r"(cpu));
    return cpu;
}

// Safe before per-CPU data exists: GS base 0 means the boot CPU during early boot.
u32 this_cpu_index();

// Makes `cpu` the calling CPU's per-CPU block.
void install_percpu(PerCpu& cpu);

}  // namespace lamina
