#include <hypervisor/percpu.h>

#include <arch/x86_64/cpu.h>

namespace lamina {

static_assert(__builtin_offsetof(PerCpu, self) == 0);
static_assert(__builtin_offsetof(PerCpu, index) == 8);

u32 this_cpu_index() {
    if (x86::rdmsr(x86::msr::kGsBase) == 0) return 0;
    u32 index;
    asm volatile("movl %%gs:8, %0" : "=r"(index));
    return index;
}

void install_percpu(PerCpu& cpu) {
    cpu.self = &cpu;
    x86::wrmsr(x86::msr::kGsBase, reinterpret_cast<u64>(&cpu));
}

}  // namespace lamina
