#include <arch/x86_64/tsc.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/memory.h>

namespace lamina::tsc {
namespace {

// Short, since boot waits on it; HPET and PIT resolution keep the error below 0.1%.
constexpr u64 kCalibrationMs = 2;

// HPET registers (IA-PC HPET spec 1.0a, 2.3).
constexpr usize kHpetCapabilities = 0x0, kHpetConfiguration = 0x10, kHpetCounter = 0xf0;
constexpr u64 kHpetEnable = 1;
constexpr u64 kFemtosecondsPerMs = 1000000000000;

u64 measure_with_hpet(u64 base) {
    auto* regs = static_cast<volatile u64*>(memory::map_device(base, 1024));
    if (!regs) return 0;
    u64 period_fs = regs[kHpetCapabilities / 8] >> 32;
    if (period_fs == 0 || period_fs > 100000000) return 0;  // the spec caps it at 100 ns
    regs[kHpetConfiguration / 8] = regs[kHpetConfiguration / 8] | kHpetEnable;
    u64 ticks = kCalibrationMs * kFemtosecondsPerMs / period_fs;
    u64 start = regs[kHpetCounter / 8];
    u64 tsc_start = x86::rdtsc();
    while (regs[kHpetCounter / 8] - start < ticks) x86::pause();
    return (x86::rdtsc() - tsc_start) * (1000 / kCalibrationMs);
}

// PIT channel 2 in mode 0, gated through port 0x61, counting down 10 ms at 1.193182 MHz.
u64 measure_with_pit() {
    constexpr u32 kPitHz = 1193182;
    constexpr u16 kCount = kPitHz / (1000 / kCalibrationMs);
    u8 gate = x86::inb(0x61);
    x86::outb(0x61, static_cast<u8>((gate & ~0x02) | 0x01));  // gate on, speaker off
    x86::outb(0x43, 0xb0);                                    // channel 2, lo/hi, mode 0
    x86::outb(0x42, kCount & 0xff);
    x86::outb(0x42, kCount >> 8);
    u64 tsc_start = x86::rdtsc();
    u64 spins = 0;
    while (!(x86::inb(0x61) & 0x20) && ++spins < 100000000) x86::pause();
    u64 hz = (x86::rdtsc() - tsc_start) * (1000 / kCalibrationMs);
    x86::outb(0x61, gate);
    return hz;
}

}  // namespace

const char* source_name(Source source) {
    switch (source) {
        case Source::Cpuid: return "CPUID";
        case Source::Hpet: return "HPET";
        case Source::Pit: return "PIT";
    }
    return "?";
}

Calibration calibrate(u64 hpet_base) {
    // Measure whenever a reference timer exists: CPUID's figures are exact on real hardware
    // but emulators report them while running the TSC at another rate (Bochs: at its ips).
    Calibration measured{0, Source::Hpet};
    if (hpet_base) measured.hz = measure_with_hpet(hpet_base);
    if (!measured.hz) measured = {measure_with_pit(), Source::Pit};

    const x86::CpuFeatures& cpu = x86::cpu_features();
    u64 stated = cpu.tsc_hz_from_cpuid ? cpu.tsc_hz_from_cpuid : cpu.base_hz_from_cpuid;
    if (!measured.hz) return {stated, Source::Cpuid};
    // Within 1%: trust CPUID's exact value over a 2 ms measurement.
    if (stated && (stated > measured.hz ? stated - measured.hz : measured.hz - stated) <= measured.hz / 100)
        return {stated, Source::Cpuid};
    return measured;
}

}  // namespace lamina::tsc
