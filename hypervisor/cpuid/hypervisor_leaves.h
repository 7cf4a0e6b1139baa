// What a guest finds in the hypervisor CPUID leaves: 4000_0000 to 4FFF_FFFF is the range in
// which no CPU reports anything (SDM Vol. 2A, CPUID), left to hypervisors; CPUID.1:ECX[31]
// tells a guest to look there. The values are the public ABI's (lib/include/lamina/abi/version.h);
// this header names them for the CPUID policy.
#pragma once

#include <lamina/abi/version.h>
#include <lamina/types.h>

namespace lamina::cpuid {

// The range a guest may probe; leaves past kLastHypervisorLeaf in it read 0.
constexpr u32 kHypervisorRangeFirst = 0x4000'0000;
constexpr u32 kHypervisorRangeLast = 0x4fff'ffff;

// EAX: the highest hypervisor leaf; EBX, ECX, EDX: the signature, 4 ASCII bytes each.
constexpr u32 kSignatureLeaf = LAMINA_CPUID_LEAF_SIGNATURE;
constexpr char kSignature[] = LAMINA_CPUID_SIGNATURE;

// EAX: the ABI version; EBX: the kDomain* flags below; ECX: the domain's id; EDX: 0.
constexpr u32 kVersionLeaf = LAMINA_CPUID_LEAF_VERSION;
constexpr u32 kAbiVersion = LAMINA_ABI_VERSION;
constexpr u32 kDomainControl = LAMINA_CPUID_DOMAIN_CONTROL;  // this domain is the control domain (Dom0)

// EAX: how many hypercall pages the guest may have written; EBX: the MSR that takes the
// guest-physical address of the page to write (as Xen's leaf 4000_0002 describes its own).
constexpr u32 kHypercallLeaf = LAMINA_CPUID_LEAF_HYPERCALL;
constexpr u32 kHypercallPageCount = LAMINA_HYPERCALL_PAGE_COUNT;
constexpr u32 kHypercallPageMsr = LAMINA_HYPERCALL_PAGE_MSR;

constexpr u32 kLastHypervisorLeaf = LAMINA_CPUID_LEAF_LAST;

}  // namespace lamina::cpuid
