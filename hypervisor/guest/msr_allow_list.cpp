#include <hypervisor/guest/msr_allow_list.h>

#include <arch/x86_64/registers.h>

namespace lamina {
namespace {

using namespace x86;

// EFER bits a guest may set: SCE, LME, NXE. LMA is the CPU's; SVME is never the guest's.
constexpr u64 kEferGuestWritable = kEferSce | kEferLme | kEferNxe;

constexpr u64 kApicBaseBootstrap = u64{1} << 8;
constexpr u64 kApicBaseEnable = u64{1} << 11;

// IA32_MISC_ENABLE (SDM Vol. 4 table 2-2): fast strings on; branch trace and PEBS unavailable.
constexpr u64 kMiscEnable = (u64{1} << 0) | (u64{1} << 11) | (u64{1} << 12);
constexpr u64 kFeatureControlLocked = 1;

// IA32_MTRR_DEF_TYPE (SDM Vol. 3A 12.11.2.1): the default type and E; FE is refused, as
// MTRRCAP offers no fixed ranges.
constexpr u64 kMtrrDefTypeEnable = u64{1} << 11;
constexpr u64 kMtrrDefTypeMask = 0xff;

// Memory types (SDM Vol. 3A table 12-8, 12-10): MTRRs take UC WC WT WP WB, PAT also UC-.
bool valid_mtrr_type(u64 type) { return type == 0 || type == 1 || type == 4 || type == 5 || type == 6; }
bool valid_pat(u64 pat) {
    for (u32 entry = 0; entry < 8; ++entry) {
        const u64 type = (pat >> (8 * entry)) & 0xff;
        if (!valid_mtrr_type(type) && type != 7) return false;
    }
    return true;
}

}  // namespace

VirtualMsrs::Read VirtualMsrs::read(const Vcpu& vcpu, MsrContext context, u32 msr) const {
    constexpr Read kFault{Result::Fault, 0};
    switch (msr) {
        case msr_index::kEfer: return {Result::Done, vcpu.efer()};
        case msr_index::kPat: return {Result::Done, vcpu.pat()};
        case msr_index::kTsc: return {Result::Done, context.tsc};
        case msr_index::kApicBase:
            return {Result::Done, kApicBaseDefault | kApicBaseEnable | (context.bootstrap ? kApicBaseBootstrap : 0)};
        case msr_index::kMtrrCap: return {Result::Done, 0};  // no variable, fixed or WC ranges
        case msr_index::kMtrrDefType: return {Result::Done, mtrr_def_type_};
        case msr_index::kMcgCap:
        case msr_index::kMcgStatus: return {Result::Done, 0};  // no banks, nothing in progress
        case msr_index::kBiosSignId: return {Result::Done, 0};  // no microcode revision to report
        case msr_index::kMiscEnable: return context.amd ? kFault : Read{Result::Done, kMiscEnable};
        // Locked with VMX off: the guest's CPUID has no VMX either.
        case msr_index::kFeatureControl: return context.amd ? kFault : Read{Result::Done, kFeatureControlLocked};
        default: return kFault;
    }
}

VirtualMsrs::Result VirtualMsrs::write(Vcpu& vcpu, MsrContext context, u32 msr, u64 value) {
    switch (msr) {
        case msr_index::kEfer:
            if (value & ~(kEferGuestWritable | kEferLma)) return Result::Fault;
            vcpu.set_efer((value & kEferGuestWritable) | (vcpu.efer() & kEferLma));
            return Result::Done;
        case msr_index::kPat:
            if (!valid_pat(value)) return Result::Fault;
            vcpu.set_pat(value);
            return Result::Done;
        case msr_index::kMtrrDefType:
            if ((value & ~(kMtrrDefTypeEnable | kMtrrDefTypeMask)) || !valid_mtrr_type(value & kMtrrDefTypeMask))
                return Result::Fault;
            mtrr_def_type_ = value;
            return Result::Done;
        // Linux writes 0 here before CPUID to learn the microcode revision.
        case msr_index::kBiosSignId: return Result::Done;
        case msr_index::kMcgStatus: return value == 0 ? Result::Done : Result::Fault;
        case msr_index::kApicBase:
        case msr_index::kMiscEnable: {
            // Rewriting the value it reads is accepted; changing it is not emulated.
            const Read current = read(vcpu, context, msr);
            return current.result == Result::Done && value == current.value ? Result::Done : Result::Fault;
        }
        default: return Result::Fault;  // read-only (MTRRCAP, MCG_CAP, TSC, FEATURE_CONTROL) or absent
    }
}

}  // namespace lamina
