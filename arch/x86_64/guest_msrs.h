// The MSRs a guest reads and writes without an exit on both backends: their state is switched
// per vCPU in hardware or by the backend, and the CPU itself checks what is written (a
// non-canonical base is #GP in the guest). Every other MSR exits to the core's allow-list.
//   VMX: FS/GS base and SYSENTER_* are VMCS guest-state fields; KERNEL_GS_BASE and the SYSCALL
//        MSRs are not, so the backend switches them lazily (the host never uses them).
//   SVM: VMLOAD/VMSAVE move all of them with the VMCB (APM Vol. 2 15.5.2).
#pragma once

#include <arch/x86_64/cpu.h>

namespace lamina::x86 {

constexpr u32 kGuestOwnedMsrs[] = {msr::kFsBase,     msr::kGsBase,     msr::kKernelGsBase, msr::kStar,
                                   msr::kLstar,      msr::kCstar,      msr::kSfmask,       msr::kSysenterCs,
                                   msr::kSysenterEsp, msr::kSysenterEip};

// The ones VMX switches itself, in this order (VmxVcpu's lazy MSR switch).
constexpr u32 kVmxLazyMsrs[] = {msr::kKernelGsBase, msr::kStar, msr::kLstar, msr::kCstar, msr::kSfmask};

}  // namespace lamina::x86
