#include <arch/x86_64/extended_state.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/memory.h>

namespace lamina::x86 {
namespace {

constexpr u64 kXcr0X87 = 1;
constexpr usize kMxcsrOffset = 24;
constexpr u32 kMxcsrInit = 0x1f80;  // all SIMD exceptions masked (SDM Vol. 1 10.2.3.1)

// The legacy region and the XSAVE header with XSTATE_BV = 0: XRSTOR from it puts every
// component in its init state (SDM Vol. 1 13.8.1) and MXCSR at its reset value.
struct alignas(64) CleanArea {
    u8 bytes[512 + 64];
    CleanArea() : bytes{} {
        bytes[kMxcsrOffset] = kMxcsrInit & 0xff;
        bytes[kMxcsrOffset + 1] = kMxcsrInit >> 8;
    }
};
const CleanArea clean_area;

// Every component the CPU supports (CPUID 0Dh subleaf 0 EDX:EAX), read once.
u64 all_components() {
    static const u64 mask = [] {
        CpuidResult r = cpuid(0xd, 0);
        return (u64{r.edx} << 32) | r.eax;
    }();
    return mask;
}

// RFBM = XCR0 & EDX:EAX: all ones asks for every component XCR0 enables.
void xrstor(const void* area) { asm volatile("xrstor64 (%0)" : : "r"(area), "a"(~0u), "d"(~0u) : "memory"); }
void xsave(void* area) { asm volatile("xsave64 (%0)" : : "r"(area), "a"(~0u), "d"(~0u) : "memory"); }

}  // namespace

bool ExtendedState::init() {
    if (!cpu_features().xsave) return true;  // then neither the guest nor the host has any
    usize bytes = cpuid(0xd, 0).ecx;
    frames_ = (bytes + 4095) / 4096;
    area_ = memory::allocate_frames(frames_);  // zeroed: XSTATE_BV = 0, the init state
    if (!area_) return false;
    static_cast<u8*>(memory::phys_to_virt(area_))[kMxcsrOffset] = kMxcsrInit & 0xff;
    static_cast<u8*>(memory::phys_to_virt(area_))[kMxcsrOffset + 1] = kMxcsrInit >> 8;
    return true;
}

void ExtendedState::destroy() {
    if (area_) memory::free_frames(area_, frames_);
    area_ = 0;
}

// XSAVE and XRSTOR move only the components XCR0 enables, and a guest may run with SSE or AVX
// while its XCR0 says x87 only (legacy FXSR use): the moves run with every component enabled,
// the guest with its own XCR0.
void ExtendedState::load(u64 xcr0) {
    if (!area_) return;
    xsetbv(0, all_components());
    xrstor(memory::phys_to_virt(area_));
    xsetbv(0, xcr0);
}

void ExtendedState::save_and_scrub() {
    if (!area_) return;
    xsetbv(0, all_components());
    xsave(memory::phys_to_virt(area_));
    xrstor(&clean_area);
    xsetbv(0, kXcr0X87);
}

}  // namespace lamina::x86
