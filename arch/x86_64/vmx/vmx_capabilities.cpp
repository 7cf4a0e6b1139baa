#include <arch/x86_64/vmx/vmx_capabilities.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/vmx/vmcs_fields.h>

namespace lamina::vmx {
namespace {
constexpr u64 kMemoryTypeWriteBack = 6;

bool bit(u64 value, unsigned n) { return (value >> n) & 1; }
}  // namespace

void read_capabilities(Capabilities& c) {
    using namespace x86::msr;
    u64 basic = x86::rdmsr(kVmxBasic);
    c.revision_id = static_cast<u32>(basic & 0x7fffffff);
    c.region_size = static_cast<u32>((basic >> 32) & 0x1fff);
    c.write_back_regions = ((basic >> 50) & 0xf) == kMemoryTypeWriteBack;
    c.true_controls = bit(basic, 55);
    c.regions_below_4g = bit(basic, 48);

    // With true controls, the TRUE_* MSRs say which default-1 bits may be cleared.
    c.pin_based = ControlMask::from_msr(x86::rdmsr(c.true_controls ? kVmxTruePinbasedCtls : kVmxPinbasedCtls));
    c.primary = ControlMask::from_msr(x86::rdmsr(c.true_controls ? kVmxTrueProcbasedCtls : kVmxProcbasedCtls));
    c.exit = ControlMask::from_msr(x86::rdmsr(c.true_controls ? kVmxTrueExitCtls : kVmxExitCtls));
    c.entry = ControlMask::from_msr(x86::rdmsr(c.true_controls ? kVmxTrueEntryCtls : kVmxEntryCtls));
    c.misc = x86::rdmsr(kVmxMisc);
    c.cr0_fixed0 = x86::rdmsr(kVmxCr0Fixed0);
    c.cr0_fixed1 = x86::rdmsr(kVmxCr0Fixed1);
    c.cr4_fixed0 = x86::rdmsr(kVmxCr4Fixed0);
    c.cr4_fixed1 = x86::rdmsr(kVmxCr4Fixed1);

    c.preemption_timer = c.pin_based.allows(pin::kPreemptionTimer);
    if (c.primary.allows(primary::kActivateSecondary)) {
        c.secondary = ControlMask::from_msr(x86::rdmsr(kVmxProcbasedCtls2));
        c.ept = c.secondary.allows(secondary::kEnableEpt);
        c.vpid = c.secondary.allows(secondary::kEnableVpid);
        c.unrestricted_guest = c.secondary.allows(secondary::kUnrestrictedGuest);
        c.pml = c.secondary.allows(secondary::kEnablePml);
    }
    if (c.ept || c.vpid) {
        // IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D A.10).
        u64 cap = c.ept_vpid = x86::rdmsr(kVmxEptVpidCap);
        c.ept_walk_4 = bit(cap, 6);
        c.ept_wb = bit(cap, 14);
        c.ept_2m = bit(cap, 16);
        c.ept_1g = bit(cap, 17);
        c.invept = bit(cap, 20);
        c.ept_ad = bit(cap, 21);
        c.invept_single = bit(cap, 25);
        c.invept_all = bit(cap, 26);
        c.invvpid = bit(cap, 32);
        c.invvpid_address = bit(cap, 40);
        c.invvpid_single = bit(cap, 41);
        c.invvpid_all = bit(cap, 42);
    }
}

bool sufficient_for_lamina(const Capabilities& c, const char** missing) {
    if (!c.ept) *missing = "EPT";
    else if (!c.ept_walk_4) *missing = "4-level EPT walks";
    else if (!c.ept_wb) *missing = "write-back EPT structures";
    else if (!c.ept_2m) *missing = "2 MiB EPT pages";  // the stage-2 engine uses them wherever it can
    else if (!c.ept_2m) *missing = "2 MiB EPT pages";
    else if (!c.invept) *missing = "INVEPT";
    else if (!c.unrestricted_guest) *missing = "unrestricted guest";
    else return true;
    return false;
}

}  // namespace lamina::vmx
