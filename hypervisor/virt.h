// The vendor-neutral view of hardware virtualization: which extension this machine has, and
// turning it on per CPU. The core sees only this; VMX and SVM live in arch/x86_64/{vmx,svm}.
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/types.h>

namespace lamina::virt {

enum class Vendor : u8 { None, Vmx, Svm };

struct Summary {
    Vendor vendor = Vendor::None;
    bool stage2 = false;  // EPT or NPT usable
    const char* reason = "";  // why virtualization is unavailable, when vendor == None
    // What the stage-2 tables support (hypervisor/stage2 Stage2Limits): 1 GiB leaves (EPT
    // capability bit 17; NPT uses the host's Page1GB, CPUID Fn8000_0001 EDX[26]), execute-only
    // entries (EPT capability bit 0), and the host's MAXPHYADDR.
    bool stage2_1g_pages = false;
    bool stage2_execute_only = false;
    u8 physical_address_bits = 36;
    // TLB tags create_vcpu takes: 1 to tlb_tags (VPIDs; or ASIDs, of which QEMU has only 15).
    u32 tlb_tags = 0;
};

// Boot CPU: reads the capability MSRs or feature leaves, logs a report, picks the backend.
Summary detect();
const Summary& summary();
const char* vendor_name(Vendor vendor);      // "vmx", "svm", "none"
const char* stage2_name(Vendor vendor);      // "ept", "npt", "none"

// Each CPU: VMXON with its region, or EFER.SVME with its host save area. Logs what it has.
bool enable_on_this_cpu();

// A vCPU of this machine's backend on the calling CPU, which it stays on: its guest-physical
// space is `stage2` (EPT or NPT, see hypervisor/stage2), `tag` its TLB
// tag (VPID or ASID: non-zero, unique among the vCPUs that may share a CPU). nullptr when out
// of memory, without virtualization, or when the backend cannot run it (the log says why).
Vcpu* create_vcpu(const Stage2Binding& stage2, u16 tag, const EntryState& entry);
// Frees everything create_vcpu allocated; on the vCPU's CPU, never while it runs.
void destroy_vcpu(Vcpu* vcpu);

}  // namespace lamina::virt
