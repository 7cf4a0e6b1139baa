#include <hypervisor/cpuid/cpuid_policy.h>

#include <lamina/string.h>

namespace lamina::cpuid {
namespace {

u32& field(Registers& registers, Register which) {
    switch (which) {
        case Register::Eax: return registers.eax;
        case Register::Ebx: return registers.ebx;
        case Register::Ecx: return registers.ecx;
        case Register::Edx: return registers.edx;
    }
    return registers.eax;
}

// Leaf 0 and leaf 8000_0000 (on AMD) spell the vendor in EBX, EDX, ECX.
bool vendor_is(const Registers& leaf0, const char (&vendor)[13]) {
    const u32 words[3] = {leaf0.ebx, leaf0.edx, leaf0.ecx};
    return str::compare_bytes(words, vendor, 12) == 0;
}

// Four ASCII bytes as a register holds them: the first in bits 7:0.
constexpr u32 signature_word(usize first) {
    u32 word = 0;
    for (usize i = 0; i < 4; ++i) word |= u32{static_cast<u8>(kSignature[first + i])} << (8 * i);
    return word;
}
static_assert(sizeof(kSignature) == 13, "the signature fills EBX, ECX and EDX");

// The smallest number of bits that numbers `count` things.
constexpr u32 id_bits(u32 count) {
    u32 bits = 0;
    while ((u32{1} << bits) < count) ++bits;
    return bits;
}

constexpr u32 low_half(u64 value) { return static_cast<u32>(value); }
constexpr u32 high_half(u64 value) { return static_cast<u32>(value >> 32); }

// Leaf 1 EBX: brand index (7:0) and CLFLUSH line size (15:8) pass; 23:16 is the number of
// addressable logical processor ids in the package, 31:24 the initial APIC id.
constexpr u32 kLeaf1EbxPassed = 0xffff;
constexpr u32 kLogicalIdsShift = 16;
constexpr u32 kInitialApicIdShift = 24;

// Leaf 4 EAX: cache type (4:0; 0 ends the list), level (7:5), self-initializing (8), fully
// associative (9) pass; 25:14 and 31:26 are topology.
constexpr u32 kCacheTypeMask = 0x1f;
constexpr u32 kCacheLevelShift = 5;
constexpr u32 kCacheLevelMask = 0x7;
constexpr u32 kCacheDescriptionMask = 0x3ff;
constexpr u32 kCacheSharingIdsShift = 14;
constexpr u32 kCacheCoreIdsShift = 26;

// Leaf 0Bh ECX[15:8]: the level type.
constexpr u32 kLevelTypeShift = 8;
constexpr u32 kLevelSmt = 1;
constexpr u32 kLevelCore = 2;

// Leaf 0Dh: the legacy region and the XSAVE header precede every extended component.
constexpr u32 kXsaveLegacyAndHeaderBytes = 512 + 64;
constexpr u32 kXsaveComponentAligned = 1u << 1;  // subleaf i ECX[1]; ECX[0] is "supervisor"
constexpr u32 kFirstExtendedComponent = 2;

// Leaf 8000_0008: EAX 7:0 physical, 15:8 linear address bits (23:16, the guest-physical size
// for a nested hypervisor, reads 0: SVM is hidden). ECX on AMD: 7:0 cores - 1, 15:12 the APIC id
// bits that number them.
constexpr u32 kAddressSizesPassed = 0xffff;
constexpr u32 kApicIdSizeShift = 12;

}  // namespace

const char* status_name(Status status) {
    switch (status) {
        case Status::Ok: return "ok";
        case Status::BadVcpuCount: return "bad vCPU count";
    }
    return "unknown status";
}

Registers* CpuidPolicy::stored(u32 leaf, u32 subleaf) {
    if (leaf == 0xd) return subleaf < kXsaveSubleaves ? &xsave_[subleaf] : nullptr;
    if (subleaf != 0) return nullptr;
    if (leaf <= max_basic_) return &basic_[leaf];
    if (leaf >= kExtendedFirst && leaf <= max_extended_) return &extended_[leaf - kExtendedFirst];
    return nullptr;
}

Status CpuidPolicy::init(const HostCpuid& host, const Config& config) {
    if (config.vcpu_count == 0 || config.vcpu_count > kMaxVcpus) return Status::BadVcpuCount;
    *this = CpuidPolicy{};
    vcpu_count_ = config.vcpu_count;
    core_id_bits_ = id_bits(vcpu_count_);
    control_domain_ = config.control_domain;
    domain_id_ = config.domain_id;

    // Basic leaves up to 0Dh, the last one the policy knows: past it lie leaves that describe
    // host-only resources (PT 14h, SGX 12h, RDT 0Fh/10h) or topology (1Fh) it does not model.
    const Registers leaf0 = host.query(0, 0);
    amd_ = vendor_is(leaf0, "AuthenticAMD") || vendor_is(leaf0, "HygonGenuine");
    max_basic_ = min(leaf0.eax, kLastBasicLeaf);
    basic_[0] = {max_basic_, leaf0.ebx, leaf0.ecx, leaf0.edx};
    // Leaves 1 and 7 are filtered below; 2 (cache and TLB descriptors) passes whole. The others
    // stay 0: PSN (3), MONITOR/MWAIT (5) and thermal and power (6) are hidden, 8 and 0Ch are
    // reserved, DCA (9) and the PMU (0Ah) are not virtualized. Leaves 4, 0Bh and 0Dh have
    // subleaves and are built on their own.
    constexpr u32 kHostBasicLeaves[] = {1, 2, 7};
    for (u32 leaf : kHostBasicLeaves) {
        if (leaf <= max_basic_) basic_[leaf] = host.query(leaf, 0);
    }

    // Extended leaves up to 8000_0008: past it lie SVM (8000_000Ah), AMD's topology and
    // memory-encryption leaves. 8000_0002-4 (brand string) and 8000_0005-6 (caches, TLBs) pass.
    const Registers extended0 = host.query(kExtendedFirst, 0);
    max_extended_ = extended0.eax >= kExtendedFirst ? min(extended0.eax, kLastExtendedLeaf) : 0;
    if (max_extended_) {
        extended_[0] = {max_extended_, extended0.ebx, extended0.ecx, extended0.edx};
        for (u32 leaf = kExtendedFirst + 1; leaf <= max_extended_; ++leaf) {
            extended_[leaf - kExtendedFirst] = host.query(leaf, 0);
        }
    }

    init_xsave(host);
    for (const FeatureFilter& filter : kFeatureFilters) {
        if (Registers* registers = stored(filter.leaf, filter.subleaf)) {
            field(*registers, filter.reg) &= filter.passed;
        }
    }
    for (const XstateDependency& dependency : kXstateDependencies) {
        Registers* registers = stored(dependency.leaf, 0);
        if (registers && (allowed_xcr0_ & dependency.xcr0_bits) != dependency.xcr0_bits) {
            field(*registers, dependency.reg) &= ~dependency.features;
        }
    }

    if (Registers* leaf1 = stored(1, 0)) {
        leaf1->ebx = (leaf1->ebx & kLeaf1EbxPassed) | (u32{1} << core_id_bits_) << kLogicalIdsShift;
        leaf1->ecx |= leaf1_ecx::kHypervisor;
        leaf1->edx |= leaf1_edx::kHtt;
    }
    // Subleaf 0 only: EAX, the highest subleaf, reads 0, which hides subleaf 1 and up.
    if (Registers* leaf7 = stored(7, 0)) leaf7->eax = 0;
    init_cache_levels(host);
    // Leaf 0Bh is described only where the host has it (Intel, recent AMD); it then tells the
    // same topology as leaf 4 and leaf 1.
    extended_topology_ = max_basic_ >= 0xb && host.query(0xb, 0).ebx != 0;

    // Of the power-management leaf only the invariant TSC stays: the guest's clock source
    // depends on it, and the TSC runs on in the guest as on the host.
    if (Registers* power = stored(0x8000'0007, 0)) *power = {0, 0, 0, power->edx};
    if (Registers* sizes = stored(0x8000'0008, 0)) {
        sizes->eax &= kAddressSizesPassed;
        sizes->ecx = amd_ ? (vcpu_count_ - 1) | core_id_bits_ << kApicIdSizeShift : 0;
        sizes->edx = 0;
    }

    // What basic() computes rather than reads: leaves with subleaves or vCPU-dependent fields.
    constexpr u32 kComputedBasicLeaves = 1u << 1 | 1u << 4 | 1u << 7 | 1u << 0xb | 1u << 0xd;
    fixed_basic_ = ((u32{2} << max_basic_) - 1) & ~kComputedBasicLeaves;
    extended_count_ = max_extended_ ? max_extended_ - kExtendedFirst + 1 : 0;
    return Status::Ok;
}

// The XSAVE components a guest may use: those the host supports and kXcr0Permitted allows, in
// combinations XSETBV accepts. No XSAVE on the host means none at all.
void CpuidPolicy::init_xsave(const HostCpuid& host) {
    const Registers* leaf1 = stored(1, 0);
    if (max_basic_ < 0xd || !leaf1 || !(leaf1->ecx & leaf1_ecx::kXsave)) return;
    const Registers supported = host.query(0xd, 0);
    u64 allowed = (u64{supported.edx} << 32 | supported.eax) & kXcr0Permitted;
    constexpr u64 kBase = xcr0::kX87 | xcr0::kSse;
    if ((allowed & kBase) != kBase) return;
    if (!(allowed & xcr0::kAvx) || (allowed & xcr0::kAvx512) != xcr0::kAvx512) {
        allowed &= ~xcr0::kAvx512;
    }
    allowed_xcr0_ = allowed;

    // Components: size (EAX) and offset (EBX) pass; of ECX only "64-byte aligned when
    // compacted": none is a supervisor component, and XFD is hidden.
    for (u32 component = kFirstExtendedComponent; component < kXsaveSubleaves; ++component) {
        if (!(allowed & (u64{1} << component))) continue;
        const Registers described = host.query(0xd, component);
        xsave_[component] = {described.eax, described.ebx, described.ecx & kXsaveComponentAligned,
                             0};
    }
    // EBX, the size for the vCPU's current XCR0, is filled in by lookup().
    xsave_[0] = {low_half(allowed), 0, xsave_area_bytes(allowed), high_half(allowed)};
    // EAX (the instruction variants) is filtered with the other features. EBX would size the
    // XSAVES area, and ECX:EDX list the supervisor components: XSAVES is hidden, so all 0.
    xsave_[1] = {host.query(0xd, 1).eax, 0, 0, 0};
}

// Each vCPU is a core of its own, so it shares the per-core caches (L1, L2) with no one and the
// caches of level 3 and up with the whole package. AMD has no leaf 4 (its caches are in
// 8000_0005-6): the host's list is empty there, and so is the guest's.
void CpuidPolicy::init_cache_levels(const HostCpuid& host) {
    if (max_basic_ < 4) return;
    const u32 package_core_ids = (u32{1} << core_id_bits_) - 1;
    for (u32 index = 0; index < kCacheLevels; ++index) {
        Registers cache = host.query(4, index);
        if ((cache.eax & kCacheTypeMask) == 0) break;
        const u32 level = (cache.eax >> kCacheLevelShift) & kCacheLevelMask;
        const u32 sharing_ids = level >= 3 ? package_core_ids : 0;
        cache.eax = (cache.eax & kCacheDescriptionMask) | sharing_ids << kCacheSharingIdsShift |
                    package_core_ids << kCacheCoreIdsShift;
        cache_levels_[index] = cache;
    }
}

u32 CpuidPolicy::xsave_area_bytes(u64 components) const {
    u64 bytes = kXsaveLegacyAndHeaderBytes;
    for (u32 component = kFirstExtendedComponent; component < kXsaveSubleaves; ++component) {
        if (!(components & (u64{1} << component))) continue;
        const Registers& described = xsave_[component];
        bytes = max(bytes, u64{described.ebx} + described.eax);
    }
    return static_cast<u32>(min<u64>(bytes, ~u32{0}));
}

bool CpuidPolicy::accepts_xcr0(u64 value) const {
    if ((value & ~allowed_xcr0_) || !(value & xcr0::kX87)) return false;
    if ((value & xcr0::kAvx) && !(value & xcr0::kSse)) return false;
    const u64 avx512 = value & xcr0::kAvx512;
    return avx512 == 0 || (avx512 == xcr0::kAvx512 && (value & xcr0::kAvx));
}

Registers CpuidPolicy::computed(u32 leaf, u32 subleaf, VcpuState vcpu) const {
    if (vcpu_count_ == 0) return {};
    u32 basic_leaf = leaf;
    if (leaf > max_basic_) {
        if (leaf >= kHypervisorRangeFirst && leaf <= kHypervisorRangeLast) return hypervisor(leaf);
        // A leaf past the highest of its range: Intel CPUs answer as for the highest basic
        // leaf, AMD CPUs with zeros (SDM Vol. 2A and APM Vol. 3, CPUID). The guest sees what
        // its vendor's CPUs do.
        if (amd_) return {};
        basic_leaf = max_basic_;
    }
    return basic(basic_leaf, subleaf, vcpu);
}

Registers CpuidPolicy::basic(u32 leaf, u32 subleaf, const VcpuState& vcpu) const {
    switch (leaf) {
        case 1: {
            Registers registers = basic_[1];
            registers.ebx |= (vcpu.apic_id & 0xff) << kInitialApicIdShift;
            if (vcpu.osxsave && (registers.ecx & leaf1_ecx::kXsave)) {
                registers.ecx |= leaf1_ecx::kOsxsave;
            }
            return registers;
        }
        case 4: return subleaf < kCacheLevels ? cache_levels_[subleaf] : Registers{};
        case 7: return subleaf == 0 ? basic_[7] : Registers{};
        case 0xb: return topology(subleaf, vcpu);
        case 0xd: return xsave(subleaf, vcpu);
        default: return basic_[leaf];
    }
}

// Leaf 0Bh: an SMT level of one thread (no APIC id bits) and a core level of the whole domain.
// Every subleaf reports the vCPU's x2APIC id in EDX and echoes the subleaf in ECX[7:0]; past
// the core level the type is 0, "invalid" (SDM Vol. 2A, CPUID leaf 0BH).
Registers CpuidPolicy::topology(u32 subleaf, const VcpuState& vcpu) const {
    if (!extended_topology_) return {};
    Registers registers{0, 0, subleaf & 0xff, vcpu.apic_id};
    if (subleaf == 0) {
        registers.ebx = 1;
        registers.ecx |= kLevelSmt << kLevelTypeShift;
    } else if (subleaf == 1) {
        registers.eax = core_id_bits_;
        registers.ebx = vcpu_count_;
        registers.ecx |= kLevelCore << kLevelTypeShift;
    }
    return registers;
}

Registers CpuidPolicy::xsave(u32 subleaf, const VcpuState& vcpu) const {
    if (subleaf >= kXsaveSubleaves) return {};
    Registers registers = xsave_[subleaf];
    if (subleaf == 0 && allowed_xcr0_) registers.ebx = xsave_area_bytes(vcpu.xcr0 & allowed_xcr0_);
    return registers;
}

Registers CpuidPolicy::hypervisor(u32 leaf) const {
    switch (leaf) {
        case kSignatureLeaf:
            return {kLastHypervisorLeaf, signature_word(0), signature_word(4), signature_word(8)};
        case kVersionLeaf: return {kAbiVersion, control_domain_ ? kDomainControl : 0, domain_id_, 0};
        case kHypercallLeaf: return {kHypercallPageCount, kHypercallPageMsr, 0, 0};
        default: return {};  // the rest of the range is reserved
    }
}

}  // namespace lamina::cpuid
