// Intel VT-x capabilities from the VMX capability MSRs (SDM Vol. 3D appendix A). Every VMCS
// control is later derived from these, never from constants.
#pragma once

#include <lamina/types.h>

namespace lamina::vmx {

// A VMX control MSR: bits that must be 1 (allowed-0 settings) and bits that may be 1.
struct ControlMask {
    u32 must_be_one = 0;
    u32 may_be_one = 0;
    static ControlMask from_msr(u64 value) {
        return {static_cast<u32>(value), static_cast<u32>(value >> 32)};
    }
    bool allows(u32 bits) const { return (may_be_one & bits) == bits; }
    // The closest legal value to `wanted` (SDM Vol. 3D A.3.1).
    u32 adjust(u32 wanted) const { return (wanted | must_be_one) & may_be_one; }
};

struct Capabilities {
    u32 revision_id = 0;
    u32 region_size = 0;
    bool write_back_regions = false;  // VMCS memory type WB (IA32_VMX_BASIC[53:50] = 6)
    bool true_controls = false;
    bool regions_below_4g = false;  // IA32_VMX_BASIC[48]: VMXON/VMCS addresses limited to 32 bits
    ControlMask pin_based, primary, secondary, exit, entry;
    u64 misc = 0;
    u64 ept_vpid = 0;
    u64 cr0_fixed0 = 0, cr0_fixed1 = 0, cr4_fixed0 = 0, cr4_fixed1 = 0;

    bool ept = false, vpid = false, unrestricted_guest = false, preemption_timer = false, pml = false;
    bool ept_walk_4 = false, ept_wb = false, ept_2m = false, ept_1g = false, ept_ad = false;
    bool invept = false, invept_single = false, invept_all = false;
    bool invvpid = false, invvpid_address = false, invvpid_single = false, invvpid_all = false;
};

// Reads every capability MSR. Call only when CPUID says VMX exists.
void read_capabilities(Capabilities& caps);
// What virt::detect() read on the boot CPU (arch/x86_64/virt.cpp); every CPU is alike.
const Capabilities& capabilities();
// The EPT features the stage-2 code needs (4-level walks, WB, 2 MiB pages, INVEPT) and
// unrestricted guest.
bool sufficient_for_lamina(const Capabilities& caps, const char** missing);

}  // namespace lamina::vmx
