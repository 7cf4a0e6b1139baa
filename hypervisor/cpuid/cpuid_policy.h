// A domain's CPUID: what CPUID(leaf, subleaf) returns to its vCPUs. Built once, when the domain
// is created, from the host's CPUID (read through HostCpuid) and the domain's configuration;
// afterwards lookup() is a table read plus the few fields that depend on the vCPU, so the
// CPUID exit does no host CPUID and every vCPU sees the same CPU wherever it runs.
//
// What passes and why the rest is hidden: cpuid_features.h. The leaf-by-leaf rules: the
// comments of cpuid_policy.cpp. The hypervisor leaves: hypervisor_leaves.h.
#pragma once

#include <hypervisor/cpuid/cpuid_features.h>
#include <hypervisor/cpuid/hypervisor_leaves.h>
#include <lamina/types.h>

namespace lamina::cpuid {

struct Registers {
    u32 eax = 0, ebx = 0, ecx = 0, edx = 0;

    constexpr bool operator==(const Registers&) const = default;
};

// The host's CPUID: the CPUID instruction in the image (host_cpuid.h), a table in the tests.
class HostCpuid {
public:
    virtual Registers query(u32 leaf, u32 subleaf) const = 0;

protected:
    ~HostCpuid() = default;
};

// The topology a domain's vCPUs see: one package of vcpu_count cores with one thread each.
// vCPU n has the APIC id n. Leaf 4 describes the cores of a package in 6 bits (EAX[31:26]),
// which bounds the count.
constexpr u32 kMaxVcpus = 64;

struct Config {
    u32 vcpu_count = 1;  // 1 to kMaxVcpus
    bool control_domain = false;
    u16 domain_id = 0;   // leaf 4000_0001h ECX: how a domain learns its own id
};

// The vCPU state that CPUID reflects (SDM Vol. 2A, CPUID): OSXSAVE mirrors CR4.OSXSAVE, and
// leaf 0Dh subleaf 0 EBX is the XSAVE area size for the current XCR0.
struct VcpuState {
    u32 apic_id = 0;  // its number in the domain
    bool osxsave = false;
    u64 xcr0 = xcr0::kX87;  // the reset value
};

enum class Status : u8 {
    Ok,
    BadVcpuCount,  // 0 or more than kMaxVcpus
};

const char* status_name(Status status);

class CpuidPolicy {
public:
    // Reads the host's leaves and builds the domain's. Until it succeeds, every leaf reads 0;
    // when it fails, nothing changes.
    Status init(const HostCpuid& host, const Config& config);

    // The leaves that depend on neither the subleaf nor the vCPU -- most of what guests ask --
    // are a table read here; the rest are computed.
    Registers lookup(u32 leaf, u32 subleaf, VcpuState vcpu) const {
        if (leaf <= kLastBasicLeaf && (fixed_basic_ >> leaf & 1)) return basic_[leaf];
        if (leaf - kExtendedFirst < extended_count_) return extended_[leaf - kExtendedFirst];
        return computed(leaf, subleaf, vcpu);
    }
    // Whether lookup(leaf, ...) may depend on VcpuState::osxsave (leaf 1, or leaves past the
    // maximum that answer as leaf 1): a CPUID exit need not read the guest's CR4 otherwise.
    bool reflects_osxsave(u32 leaf) const { return leaf == 1 || max_basic_ <= 1; }
    // Whether the guest sees an AMD (or Hygon) CPU: the vendor-specific MSRs follow it.
    bool amd() const { return amd_; }

    // The XSAVE components a guest may enable (leaf 0Dh subleaf 0 EDX:EAX).
    u64 allowed_xcr0() const { return allowed_xcr0_; }
    // Whether XSETBV may load `value` into the guest's XCR0: allowed, and a combination the
    // CPU accepts (SDM Vol. 1 13.3; #GP otherwise).
    bool accepts_xcr0(u64 value) const;

private:
    static constexpr u32 kLastBasicLeaf = 0xd;
    static_assert(kLastBasicLeaf < 32, "fixed_basic_ has a bit for each basic leaf");
    static constexpr u32 kExtendedFirst = 0x8000'0000;
    static constexpr u32 kLastExtendedLeaf = 0x8000'0008;
    static constexpr u32 kCacheLevels = 8;      // leaf 4 subleaves kept
    static constexpr u32 kXsaveSubleaves = 63;  // leaf 0Dh: subleaves 0 to 62

    Registers* stored(u32 leaf, u32 subleaf);
    Registers computed(u32 leaf, u32 subleaf, VcpuState vcpu) const;
    Registers basic(u32 leaf, u32 subleaf, const VcpuState& vcpu) const;
    Registers hypervisor(u32 leaf) const;
    Registers topology(u32 subleaf, const VcpuState& vcpu) const;
    Registers xsave(u32 subleaf, const VcpuState& vcpu) const;
    u32 xsave_area_bytes(u64 components) const;
    void init_cache_levels(const HostCpuid& host);
    void init_xsave(const HostCpuid& host);

    u32 vcpu_count_ = 0;
    u32 core_id_bits_ = 0;  // bits of the APIC id that number the cores
    bool amd_ = false;      // AMD or Hygon: their answers to leaves past the maximum differ
    bool extended_topology_ = false;
    u64 allowed_xcr0_ = 0;
    u32 max_basic_ = 0;
    u32 max_extended_ = 0;
    // For lookup(): bit n set for each basic leaf n up to max_basic_ that basic_[n] answers
    // whole, and the number of extended leaves (all of them fixed).
    u32 fixed_basic_ = 0;
    u32 extended_count_ = 0;
    Registers basic_[kLastBasicLeaf + 1];
    Registers extended_[kLastExtendedLeaf - kExtendedFirst + 1];
    Registers cache_levels_[kCacheLevels];
    Registers xsave_[kXsaveSubleaves];
    bool control_domain_ = false;
    u16 domain_id_ = 0;
};

}  // namespace lamina::cpuid
