// A vCPU's FPU/SSE/AVX registers (its XSAVE area). VM entry and exit switch none of them, and the
// hypervisor uses none itself, so a guest's values stay in the CPU while it runs and are saved,
// then scrubbed, when it stops: the next guest on that CPU never sees them (SDM Vol. 1 ch. 13).
#pragma once

#include <lamina/types.h>

namespace lamina::x86 {

class ExtendedState {
public:
    // Allocates the area (CPUID 0Dh ECX bytes, every component the CPU has), in the init state.
    bool init();
    void destroy();
    // Loads the guest's XCR0 and registers into this CPU.
    void load(u64 xcr0);
    // Saves them, then leaves this CPU with init-state registers and the host's XCR0.
    void save_and_scrub();

private:
    u64 area_ = 0;  // physical address, 64-byte aligned (a frame)
    usize frames_ = 0;
};

}  // namespace lamina::x86
