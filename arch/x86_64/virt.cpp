// Detects and enables the machine's virtualization extension: the one place that chooses
// between the VMX and SVM backends.
#include <hypervisor/virt.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <arch/x86_64/svm/svm_capabilities.h>
#include <arch/x86_64/svm/svm_vcpu.h>
#include <arch/x86_64/vmx/vmx_capabilities.h>
#include <arch/x86_64/vmx/vmx_vcpu.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/percpu.h>

namespace lamina::virt {
namespace {

Summary detected;
vmx::Capabilities vmx_caps;
svm::Capabilities svm_caps;

constexpr u64 kFeatureControlLocked = 1u << 0;
constexpr u64 kFeatureControlVmxOutsideSmx = 1u << 2;

const char* yes_no(bool v) { return v ? "yes" : "no"; }

void report_vmx(const vmx::Capabilities& c) {
    log::info("vmx: revision {:#x} region {} bytes, true controls {}, WB regions {}", c.revision_id,
              c.region_size, yes_no(c.true_controls), yes_no(c.write_back_regions));
    log::info("vmx: pin {:#010x}/{:#010x} proc {:#010x}/{:#010x} proc2 {:#010x}/{:#010x}",
              c.pin_based.must_be_one, c.pin_based.may_be_one, c.primary.must_be_one,
              c.primary.may_be_one, c.secondary.must_be_one, c.secondary.may_be_one);
    log::info("vmx: exit {:#010x}/{:#010x} entry {:#010x}/{:#010x} misc {:#x} ept/vpid {:#x}",
              c.exit.must_be_one, c.exit.may_be_one, c.entry.must_be_one, c.entry.may_be_one,
              c.misc, c.ept_vpid);
    log::info("vmx: EPT {} (4-level {}, WB {}, 2M {}, 1G {}, A/D {}, INVEPT single {} all {}), "
              "VPID {} (INVVPID addr {} single {} all {})",
              yes_no(c.ept), yes_no(c.ept_walk_4), yes_no(c.ept_wb), yes_no(c.ept_2m), yes_no(c.ept_1g),
              yes_no(c.ept_ad), yes_no(c.invept_single), yes_no(c.invept_all), yes_no(c.vpid),
              yes_no(c.invvpid_address), yes_no(c.invvpid_single), yes_no(c.invvpid_all));
    log::info("vmx: unrestricted guest {}, preemption timer {}, PML {}", yes_no(c.unrestricted_guest),
              yes_no(c.preemption_timer), yes_no(c.pml));
}

void report_svm(const svm::Capabilities& c) {
    log::info("svm: revision {} ASIDs {} features {:#x}: NPT {} NRIP save {} VMCB clean {} "
              "decode assists {} flush-by-ASID {} VGIF {} AVIC {} pause filter {}",
              c.revision, c.asid_count, c.features, yes_no(c.npt), yes_no(c.nrip_save),
              yes_no(c.vmcb_clean), yes_no(c.decode_assists), yes_no(c.flush_by_asid),
              yes_no(c.vgif), yes_no(c.avic), yes_no(c.pause_filter));
}

bool enable_vmx() {
    u64 control = x86::rdmsr(x86::msr::kFeatureControl);
    if (!(control & kFeatureControlLocked)) {
        control |= kFeatureControlLocked | kFeatureControlVmxOutsideSmx;
        x86::wrmsr(x86::msr::kFeatureControl, control);
    }
    if (!(control & kFeatureControlVmxOutsideSmx)) {
        log::error("vmx: disabled by firmware (IA32_FEATURE_CONTROL locked without VMX)");
        return false;
    }
    // CR0/CR4 must honour the VMX fixed bits in VMX operation (SDM Vol. 3C 24.8).
    x86::write_cr4((x86::read_cr4() | x86::kCr4Vmxe | vmx_caps.cr4_fixed0) & vmx_caps.cr4_fixed1);
    x86::write_cr0((x86::read_cr0() | vmx_caps.cr0_fixed0) & vmx_caps.cr0_fixed1);

    u64 region = memory::allocate_frames(1, 1, vmx_caps.regions_below_4g ? 4 * GiB : memory::kNoLimit);
    if (!region) {
        log::error("vmx: no memory for the VMXON region");
        return false;
    }
    *static_cast<u32*>(memory::phys_to_virt(region)) = vmx_caps.revision_id;
    bool failed;
    asm volatile("vmxon %1" : "=@ccbe"(failed) : "m"(region) : "memory", "cc");
    if (failed) {
        log::error("vmx: VMXON failed");
        memory::free_frames(region);
        return false;
    }
    return true;
}

bool enable_svm() {
    u64 host_save_area = memory::allocate_frames(1);
    if (!host_save_area) {
        log::error("svm: no memory for the host save area");
        return false;
    }
    x86::wrmsr(x86::msr::kEfer, x86::rdmsr(x86::msr::kEfer) | x86::kEferSvme);
    x86::wrmsr(x86::msr::kVmHsavePa, host_save_area);
    return true;
}

}  // namespace

const Summary& summary() { return detected; }

const char* vendor_name(Vendor v) { return v == Vendor::Vmx ? "vmx" : v == Vendor::Svm ? "svm" : "none"; }
const char* stage2_name(Vendor v) { return v == Vendor::Vmx ? "ept" : v == Vendor::Svm ? "npt" : "none"; }

Summary detect() {
    const x86::CpuFeatures& cpu = x86::cpu_features();
    const char* missing = "";
    if (cpu.vmx) {
        vmx::read_capabilities(vmx_caps);
        report_vmx(vmx_caps);
        if (vmx::sufficient_for_lamina(vmx_caps, &missing)) detected = {Vendor::Vmx, true, ""};
        else detected.reason = missing;
    } else if (cpu.svm) {
        svm::read_capabilities(svm_caps);
        report_svm(svm_caps);
        if (svm::sufficient_for_lamina(svm_caps, &missing)) detected = {Vendor::Svm, true, ""};
        else detected.reason = missing;
    } else {
        detected.reason = "neither VMX nor SVM";
    }
    detected.physical_address_bits = cpu.physical_address_bits;
    if (detected.vendor == Vendor::Vmx) {
        detected.stage2_1g_pages = vmx_caps.ept_1g;
        detected.stage2_execute_only = vmx_caps.ept_vpid & 1;
        detected.tlb_tags = 0xffff;
    } else if (detected.vendor == Vendor::Svm) {
        detected.stage2_1g_pages = cpu.pages_1g;
        detected.tlb_tags = svm_caps.asid_count - 1;
    }
    if (detected.vendor == Vendor::None) log::error("virtualization unavailable: missing {}", detected.reason);
    return detected;
}

bool enable_on_this_cpu() {
    bool on = false;
    switch (detected.vendor) {
        case Vendor::Vmx: on = enable_vmx(); break;
        case Vendor::Svm: on = enable_svm(); break;
        case Vendor::None: return false;
    }
    this_cpu()->virtualization_on = on;
    if (on) log::debug("{} on", vendor_name(detected.vendor));
    return on;
}

Vcpu* create_vcpu(const Stage2Binding& stage2, u16 tag, const EntryState& entry) {
    switch (detected.vendor) {
        case Vendor::Vmx: return create_vmx_vcpu(stage2, tag, entry);
        case Vendor::Svm: return create_svm_vcpu(stage2, tag, entry);
        case Vendor::None: break;
    }
    log::error("no vCPU without virtualization: missing {}", detected.reason);
    return nullptr;
}

void destroy_vcpu(Vcpu* vcpu) {
    if (!vcpu) return;
    switch (detected.vendor) {
        case Vendor::Vmx: destroy_vmx_vcpu(vcpu); break;
        case Vendor::Svm: destroy_svm_vcpu(vcpu); break;
        case Vendor::None: break;
    }
}

}  // namespace lamina::virt

namespace lamina::vmx {
const Capabilities& capabilities() { return virt::vmx_caps; }
}  // namespace lamina::vmx
