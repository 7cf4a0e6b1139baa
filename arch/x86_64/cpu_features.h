// What the CPU offers, read once with CPUID on the boot CPU (all CPUs are assumed alike, as
// every x86 server hypervisor assumes; per-CPU virtualization checks run on each CPU anyway).
#pragma once

#include <lamina/types.h>

namespace lamina::x86 {

enum class CpuVendor : u8 { Unknown, Intel, Amd };

struct CpuFeatures {
    CpuVendor vendor = CpuVendor::Unknown;
    char vendor_string[13] = {};
    char brand[49] = {};
    u32 family = 0, model = 0, stepping = 0;
    u32 max_leaf = 0, max_extended_leaf = 0;
    u8 physical_address_bits = 36;
    u8 linear_address_bits = 48;
    bool x2apic = false;
    bool tsc_deadline = false;
    bool invariant_tsc = false;
    bool pages_1g = false;
    bool xsave = false;
    bool vmx = false;
    bool svm = false;
    bool running_under_hypervisor = false;
    u64 tsc_hz_from_cpuid = 0;       // leaf 0x15 (crystal clock and ratio), else 0
    u64 base_hz_from_cpuid = 0;      // leaf 0x16 processor base frequency, else 0
};

// Runs once on the boot CPU.
void detect_cpu_features();
// Every CPU: the CR4 bits the hypervisor relies on. CR4.OSXSAVE lets it load each guest's XCR0
// (XSETBV); the hypervisor itself uses no extended state.
void enable_cpu_features();
const CpuFeatures& cpu_features();

}  // namespace lamina::x86
