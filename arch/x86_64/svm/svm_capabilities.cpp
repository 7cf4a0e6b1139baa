#include <arch/x86_64/svm/svm_capabilities.h>

#include <arch/x86_64/cpu.h>

namespace lamina::svm {
namespace {
constexpr u64 kVmCrSvmDisable = 1u << 4;
bool bit(u32 value, unsigned n) { return (value >> n) & 1; }
}  // namespace

void read_capabilities(Capabilities& c) {
    x86::CpuidResult leaf = x86::cpuid(0x8000000a);
    c.revision = leaf.eax & 0xff;
    c.asid_count = leaf.ebx;
    c.features = leaf.edx;
    c.npt = bit(leaf.edx, 0);
    c.lbr_virt = bit(leaf.edx, 1);
    c.svm_lock = bit(leaf.edx, 2);
    c.nrip_save = bit(leaf.edx, 3);
    c.tsc_rate = bit(leaf.edx, 4);
    c.vmcb_clean = bit(leaf.edx, 5);
    c.flush_by_asid = bit(leaf.edx, 6);
    c.decode_assists = bit(leaf.edx, 7);
    c.pause_filter = bit(leaf.edx, 10);
    c.avic = bit(leaf.edx, 13);
    c.vmsave_virt = bit(leaf.edx, 15);
    c.vgif = bit(leaf.edx, 16);
    c.disabled_by_firmware = x86::rdmsr(x86::msr::kVmCr) & kVmCrSvmDisable;
}

bool sufficient_for_lamina(const Capabilities& c, const char** missing) {
    if (c.disabled_by_firmware) *missing = "SVM (disabled by firmware: VM_CR.SVMDIS)";
    else if (!c.npt) *missing = "nested paging (NPT)";
    else if (c.asid_count < 2) *missing = "ASIDs";
    else return true;
    return false;
}

}  // namespace lamina::svm
