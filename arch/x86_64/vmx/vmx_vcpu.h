// The Intel VT-x backend of the vendor-neutral vCPU (SDM Vol. 3C chapters 25-29): one VMCS per
// vCPU, a guest with EPT and its own VPID in unrestricted-guest mode, I/O and MSR bitmaps (the
// guest-owned MSRs of arch/x86_64/guest_msrs.h pass through).
//
// A vCPU lives on the CPU that created it: its VMCS is active there (VMCLEAR + VMPTRLD at
// creation) and its host state is that CPU's (GS base, TSS, GDT). run(), the accessors and
// destroy_vmx_vcpu must be called on that CPU. Moving a vCPU (migration) will need VMCLEAR on
// the old CPU, VMPTRLD plus a fresh host state on the new one, VMLAUNCH instead of VMRESUME,
// and INVEPT/INVVPID there (both act on the executing CPU only).
#pragma once

#include <hypervisor/vcpu.h>

namespace lamina {

// A vCPU whose guest-physical space is the 4-level EPT of `stage2`, tagged in the TLB with
// `vpid` (non-zero, unique among the vCPUs that may share a CPU). Starts at `entry`. nullptr
// when out of memory or when VMX cannot run it (a missing capability, VPID 0, a real-mode entry
// above 1 MiB); the log says why. Call on a CPU with VMX on, with interrupts off or on.
Vcpu* create_vmx_vcpu(const Stage2Binding& stage2, u16 vpid, const EntryState& entry);
// Frees everything create_vmx_vcpu allocated; call on the vCPU's CPU, never while it runs.
void destroy_vmx_vcpu(Vcpu* vcpu);

}  // namespace lamina
