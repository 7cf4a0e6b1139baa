// The MSRs a guest may touch through an exit, and what each one reads and accepts. The hot,
// guest-owned MSRs never exit (arch/x86_64/guest_msrs.h); EFER and PAT exit so that what is
// written is checked first; the rest are read-mostly answers that tell a guest "no MTRR ranges,
// no machine-check banks, the local APIC at its reset base". Any other MSR is #GP, as for an
// MSR the CPU lacks. Hardware-independent (Catch2 tests with a fake vCPU).
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/types.h>

namespace lamina {

namespace msr_index {
constexpr u32 kTsc = 0x10;
constexpr u32 kApicBase = 0x1b;
constexpr u32 kFeatureControl = 0x3a;
constexpr u32 kBiosSignId = 0x8b;
constexpr u32 kMtrrCap = 0xfe;
constexpr u32 kMcgCap = 0x179;
constexpr u32 kMcgStatus = 0x17a;
constexpr u32 kMiscEnable = 0x1a0;
constexpr u32 kPat = 0x277;
constexpr u32 kMtrrDefType = 0x2ff;
constexpr u32 kEfer = 0xc0000080;
}  // namespace msr_index

// What the guest's CPU is, as far as its MSRs go.
struct MsrContext {
    bool amd = false;         // the CPUID vendor the guest sees: Intel-only MSRs are #GP on AMD
    bool bootstrap = false;   // vCPU 0: APIC_BASE.BSP
    u64 tsc = 0;              // the TSC now (RDMSR 0x10 reads what RDTSC would)
};

// The MSR state of one vCPU that lives in the core, not in the VMCS / VMCB.
class VirtualMsrs {
public:
    enum class Result : u8 { Done, Fault };  // Fault: the core injects #GP(0)
    struct Read {
        Result result;
        u64 value;
    };

    // Both small enough to travel in registers: no stack slot (nor stack-protector check) on
    // the MSR exit path.
    Read read(const Vcpu& vcpu, MsrContext context, u32 msr) const;
    Result write(Vcpu& vcpu, MsrContext context, u32 msr, u64 value);

    static constexpr u64 kApicBaseDefault = 0xfee00000;

private:
    u64 mtrr_def_type_ = 0;  // reset: MTRRs disabled, default type UC
};

}  // namespace lamina
