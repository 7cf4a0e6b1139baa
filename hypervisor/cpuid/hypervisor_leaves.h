// What a guest finds in the hypervisor CPUID leaves: 4000_0000 to 4FFF_FFFF is the range in
// which no CPU reports anything (SDM Vol. 2A, CPUID), left to hypervisors; CPUID.1:ECX[31]
// tells a guest to look there. Guest-visible ABI: moves to the public ABI headers with
// abi_version.h.
#pragma once

#include <hypervisor/cpuid/abi_version.h>
#include <lamina/types.h>

namespace lamina::cpuid {

// The range a guest may probe; leaves past kLastHypervisorLeaf in it read 0.
constexpr u32 kHypervisorRangeFirst = 0x4000'0000;
constexpr u32 kHypervisorRangeLast = 0x4fff'ffff;

// EAX: the highest hypervisor leaf; EBX, ECX, EDX: the signature, 4 ASCII bytes each.
constexpr u32 kSignatureLeaf = 0x4000'0000;
constexpr char kSignature[] = "LaminaLamina";

// EAX: abi::kVersion; EBX: the kDomain* flags below; ECX, EDX: 0.
constexpr u32 kVersionLeaf = 0x4000'0001;
constexpr u32 kDomainControl = 1u << 0;  // this domain is the control domain (Dom0)

// EAX: how many hypercall pages the guest may have written; EBX: the MSR that takes the
// guest-physical address of the page to write (as Xen's leaf 4000_0002 describes its own).
constexpr u32 kHypercallLeaf = 0x4000'0002;
constexpr u32 kHypercallPageCount = 1;
constexpr u32 kHypercallPageMsr = 0x4000'0000;

constexpr u32 kLastHypervisorLeaf = kHypercallLeaf;

}  // namespace lamina::cpuid
