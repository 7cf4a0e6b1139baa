// The AMD-V (SVM) backend of the vendor-neutral vCPU (AMD APM Vol. 2 chapter 15): a guest with
// nested paging, its own ASID, IOPM and MSRPM (the guest-owned MSRs of
// arch/x86_64/guest_msrs.h pass through).
#pragma once

#include <hypervisor/vcpu.h>

namespace lamina {

// A vCPU whose guest-physical space is the nested page table of `stage2` (the x86 long-mode
// format with U=1 on every entry, APM Vol. 2 15.25.5), tagged in the TLB with `asid` (non-zero,
// below the CPU's ASID count, unique among the vCPUs that may share a CPU). Starts at `entry`.
// nullptr when out of memory or when SVM cannot run it (a bad ASID). Call on a CPU with SVM on.
Vcpu* create_svm_vcpu(const Stage2Binding& stage2, u16 asid, const EntryState& entry);
// Frees everything create_svm_vcpu allocated; the vCPU must not be running.
void destroy_svm_vcpu(Vcpu* vcpu);

}  // namespace lamina
