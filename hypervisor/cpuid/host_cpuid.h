// The host's CPUID for CpuidPolicy::init in the image: the CPUID instruction on the CPU that
// builds the policy. Image only (the host tests bring a table).
#pragma once

#include <arch/x86_64/cpu.h>
#include <hypervisor/cpuid/cpuid_policy.h>

namespace lamina::cpuid {

class HardwareCpuid final : public HostCpuid {
public:
    Registers query(u32 leaf, u32 subleaf) const override {
        const x86::CpuidResult result = x86::cpuid(leaf, subleaf);
        return {result.eax, result.ebx, result.ecx, result.edx};
    }
};

}  // namespace lamina::cpuid
