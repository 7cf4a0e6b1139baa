#include <catch2/catch.hpp>

#include <hypervisor/cpuid/cpuid_policy.h>
#include <lamina/abi/version.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>

using lamina::u32;
using lamina::u64;
using namespace lamina::cpuid;

namespace {

constexpr u32 bit(u32 n) { return u32{1} << n; }

// A host CPU as a table; leaves it does not list read `fallback`.
class FakeHost : public HostCpuid {
public:
    explicit FakeHost(Registers fallback = {}) : fallback_(fallback) {}

    Registers& operator()(u32 leaf, u32 subleaf = 0) {
        auto [entry, added] = table_.try_emplace({leaf, subleaf}, fallback_);
        return entry->second;
    }
    Registers query(u32 leaf, u32 subleaf) const override {
        const auto entry = table_.find({leaf, subleaf});
        return entry == table_.end() ? fallback_ : entry->second;
    }

private:
    Registers fallback_;
    std::map<std::pair<u32, u32>, Registers> table_;
};

void set_vendor(Registers& registers, const char (&vendor)[13]) {
    std::memcpy(&registers.ebx, vendor, 4);
    std::memcpy(&registers.edx, vendor + 4, 4);
    std::memcpy(&registers.ecx, vendor + 8, 4);
}

// A Skylake server: VMX, 2 threads per core, PT, MPX, AVX-512 and PKRU.
FakeHost intel_host() {
    FakeHost host;
    host(0) = {0x16, 0, 0, 0};
    set_vendor(host(0), "GenuineIntel");
    host(1) = {0x0005'0654, 0x0520'0800, 0x7ffe'fbff, 0xbfeb'fbff};
    host(2) = {0x0076'0036, 0, 0, 0x00c3'0000};
    // L1d, L1i, L2 per core (2 threads), L3 for the package (32 ids).
    host(4, 0) = {0x1c00'4121, 0x01c0'003f, 0x0000'003f, 0};
    host(4, 1) = {0x1c00'4122, 0x01c0'003f, 0x0000'003f, 0};
    host(4, 2) = {0x1c00'4143, 0x03c0'003f, 0x0000'03ff, 0};
    host(4, 3) = {0x1c07'c163, 0x0280'003f, 0x0000'b7ff, 0x0000'0004};
    host(5) = {0x40, 0x40, 0x3, 0x2020};
    host(6) = {0x77, 0x2, 0x9, 0};
    host(7, 0) = {1, 0xd39f'fffb, 0x0000'0818, 0xbc00'0400};
    host(7, 1) = {0x10, 0, 0, 0};
    host(0xa) = {0x0730'0404, 0, 0, 0x603};
    host(0xb, 0) = {1, 2, 0x100, 5};
    host(0xb, 1) = {5, 16, 0x201, 5};
    host(0xd, 0) = {0x2ff, 0xa88, 0xa88, 0};
    host(0xd, 1) = {0xf, 0xa88, 0x100, 0};
    host(0xd, 2) = {256, 576, 0, 0};
    host(0xd, 3) = {64, 960, 0, 0};
    host(0xd, 4) = {64, 1024, 0, 0};
    host(0xd, 5) = {64, 1088, 2, 0};
    host(0xd, 6) = {512, 1152, 0, 0};
    host(0xd, 7) = {1024, 1664, 0, 0};
    host(0xd, 8) = {128, 0, 1, 0};  // PT: a supervisor component
    host(0xd, 9) = {8, 2688, 0, 0};
    host(0x14) = {1, 0xf, 7, 0};
    host(0x16) = {2100, 3700, 100, 0};
    host(0x8000'0000) = {0x8000'0008, 0, 0, 0};
    host(0x8000'0001) = {0, 0, 0x121, 0x2c10'0800};
    host(0x8000'0002) = {0x65746e49, 0x2952286c, 0x6f655820, 0x2952286e};
    host(0x8000'0003) = {0x6c6f4720, 0x31362064, 0x43203834, 0x40205550};
    host(0x8000'0004) = {0x312e3220, 0x7a484730, 0, 0};
    host(0x8000'0006) = {0, 0, 0x0100'6040, 0};
    host(0x8000'0007) = {0, 0, 0, 0x100};
    host(0x8000'0008) = {0x302e, 0x200, 0, 0};
    return host;
}

// A Zen 2: SVM, no leaf 4 and no leaf 0Bh, topology in 8000_0008 ECX.
FakeHost amd_host() {
    FakeHost host;
    host(0) = {0x10, 0, 0, 0};
    set_vendor(host(0), "AuthenticAMD");
    host(1) = {0x0083'0f10, 0x0a10'0800, 0x7ed8'320b, 0x178b'fbff};
    host(7, 0) = {0, 0x219c'91a9, 0x0040'0004, 0};
    host(0xd, 0) = {0x207, 0x340, 0x988, 0};
    host(0xd, 1) = {0xf, 0x340, 0, 0};
    host(0xd, 2) = {256, 576, 0, 0};
    host(0xd, 9) = {8, 2432, 0, 0};
    host(0x8000'0000) = {0x8000'0020, 0, 0, 0};
    set_vendor(host(0x8000'0000), "AuthenticAMD");
    host(0x8000'0001) = {0x0083'0f10, 0x4000'0000, 0x75c2'37ff, 0x2fd3'fbff};
    host(0x8000'0002) = {0x20444d41, 0x657a7952, 0x2037206e, 0x30303733};
    host(0x8000'0005) = {0xff40'ff40, 0xff40'ff40, 0x2004'0140, 0x2004'0140};
    host(0x8000'0006) = {0x2600'0000, 0x4200'6000, 0x0200'6140, 0x0100'9140};
    host(0x8000'0007) = {0, 0x1b, 0, 0x6799};
    host(0x8000'0008) = {0x0030'3030, 0x010e'b757, 0x0000'700f, 0};
    host(0x8000'000a) = {1, 0x8000, 0, 0x0001'bcff};
    host(0x8000'001f) = {0x1'000f, 0x16f, 0x1fd, 1};
    return host;
}

// Every bit set everywhere, but for the vendor; `cleared` (leaf, register, bit) is 0.
struct ClearedBit {
    u32 leaf;
    u32 subleaf;
    Register reg;
    u32 bit;
};
FakeHost saturated_host(bool amd, const ClearedBit* cleared = nullptr) {
    FakeHost host(Registers{~0u, ~0u, ~0u, ~0u});
    set_vendor(host(0), amd ? "AuthenticAMD" : "GenuineIntel");
    if (cleared) {
        Registers& registers = host(cleared->leaf, cleared->subleaf);
        u32* fields[] = {&registers.eax, &registers.ebx, &registers.ecx, &registers.edx};
        *fields[static_cast<int>(cleared->reg)] &= ~bit(cleared->bit);
    }
    return host;
}

CpuidPolicy policy_for(const HostCpuid& host, Config config = {}) {
    CpuidPolicy policy;
    REQUIRE(policy.init(host, config) == Status::Ok);
    return policy;
}

u32 field(const Registers& registers, Register reg) {
    const u32 fields[] = {registers.eax, registers.ebx, registers.ecx, registers.edx};
    return fields[static_cast<int>(reg)];
}

std::string text_of(const Registers& registers, bool vendor_order) {
    char text[12];
    const u32 words[3] = {registers.ebx, vendor_order ? registers.edx : registers.ecx,
                          vendor_order ? registers.ecx : registers.edx};
    std::memcpy(text, words, 12);
    return std::string(text, 12);
}

constexpr Registers kZero{};

}  // namespace

TEST_CASE("cpuid: VMX and SVM are never visible", "[cpuid]") {
    const bool amd = GENERATE(false, true);
    INFO((amd ? "AMD" : "Intel"));
    for (const FakeHost& host : {amd ? amd_host() : intel_host(), saturated_host(amd)}) {
        const CpuidPolicy policy = policy_for(host);
        CHECK((policy.lookup(1, 0, {}).ecx & bit(5)) == 0);               // VMX
        CHECK((policy.lookup(1, 0, {}).ecx & bit(6)) == 0);               // SMX
        CHECK((policy.lookup(0x8000'0001, 0, {}).ecx & bit(2)) == 0);     // SVM
        CHECK((policy.lookup(0x8000'0001, 0, {}).ecx & bit(12)) == 0);    // SKINIT
        CHECK((policy.lookup(0x8000'0008, 0, {}).eax & 0xff'0000) == 0);  // nested GPA size
        if (amd) CHECK(policy.lookup(0x8000'000a, 0, {}) == kZero);       // SVM features
    }
}

TEST_CASE("cpuid: the hypervisor leaves", "[cpuid]") {
    const FakeHost host = intel_host();
    const CpuidPolicy guest = policy_for(host, {.vcpu_count = 2, .domain_id = 7});
    const CpuidPolicy dom0 = policy_for(host, {.vcpu_count = 1, .control_domain = true});

    const Registers signature = guest.lookup(0x4000'0000, 0, {});
    CHECK(signature.eax == 0x4000'0002);
    CHECK(text_of(signature, false) == "LaminaLamina");
    CHECK(signature.ebx == 0x696d614c);  // "Lami", first byte lowest

    const Registers version = guest.lookup(0x4000'0001, 0, {});
    CHECK(version.eax == 0x0001'0001);
    CHECK(version.eax == LAMINA_ABI_VERSION);
    CHECK(version.ebx == 0);
    CHECK(version.ecx == 7);  // the domain's id
    CHECK(dom0.lookup(0x4000'0001, 0, {}).ecx == 0);
    CHECK(dom0.lookup(0x4000'0001, 0, {}).ebx == kDomainControl);

    const Registers hypercall = guest.lookup(0x4000'0002, 7, {});
    CHECK(hypercall.eax == 1);
    CHECK(hypercall.ebx == 0x4000'0000);
    CHECK(hypercall.ecx == 0);
    CHECK(hypercall.edx == 0);

    for (u32 leaf : {0x4000'0003u, 0x4000'0100u, 0x4fff'ffffu}) {
        CAPTURE(leaf);
        CHECK(guest.lookup(leaf, 0, {}) == kZero);
    }
    // And the guest is told to look there.
    CHECK((guest.lookup(1, 0, {}).ecx & bit(31)) != 0);
}

TEST_CASE("cpuid: leaf 0 and the extended maximum are clamped", "[cpuid]") {
    const FakeHost intel = intel_host();
    const FakeHost amd = amd_host();
    const CpuidPolicy on_intel = policy_for(intel);
    const CpuidPolicy on_amd = policy_for(amd);

    const Registers intel0 = on_intel.lookup(0, 0, {});
    CHECK(intel0.eax == 0xd);
    CHECK(text_of(intel0, true) == "GenuineIntel");
    CHECK(on_amd.lookup(0, 0, {}).eax == 0xd);
    CHECK(text_of(on_amd.lookup(0, 0, {}), true) == "AuthenticAMD");

    CHECK(on_intel.lookup(0x8000'0000, 0, {}).eax == 0x8000'0008);
    const Registers amd_extended = on_amd.lookup(0x8000'0000, 0, {});
    CHECK(amd_extended.eax == 0x8000'0008);
    CHECK(text_of(amd_extended, true) == "AuthenticAMD");

    SECTION("a host below the policy's maximum keeps its own") {
        FakeHost old = intel_host();
        old(0).eax = 0xa;
        old(0x8000'0000).eax = 0x8000'0004;
        const CpuidPolicy policy = policy_for(old);
        CHECK(policy.lookup(0, 0, {}).eax == 0xa);
        CHECK(policy.lookup(0x8000'0000, 0, {}).eax == 0x8000'0004);
        // Past the host's maxima: Intel answers as for the highest basic leaf (0Ah, zeroed).
        CHECK(policy.lookup(0xb, 0, {}) == kZero);
        CHECK(policy.lookup(0x8000'0008, 0, {}) == kZero);
        CHECK(policy.lookup(0xd, 0, {}) == kZero);
    }
}

TEST_CASE("cpuid: leaves past the maxima answer as the host vendor's CPUs do", "[cpuid]") {
    SECTION("Intel: the highest basic leaf, subleaf included") {
        const FakeHost host = intel_host();
        const CpuidPolicy policy = policy_for(host);
        const VcpuState vcpu{.apic_id = 0, .osxsave = true, .xcr0 = 7};
        for (u32 leaf : {0xeu, 0x14u, 0x16u, 0x1fu, 0x3fff'ffffu, 0x5000'0000u, 0x8000'0009u,
                         0x8000'000au, 0xc000'0000u, 0xffff'ffffu}) {
            CAPTURE(leaf);
            for (u32 subleaf : {0u, 1u, 2u}) {
                CHECK(policy.lookup(leaf, subleaf, vcpu) == policy.lookup(0xd, subleaf, vcpu));
            }
        }
        CHECK(policy.lookup(0x14, 0, vcpu) != kZero);
    }
    SECTION("AMD: zeros") {
        const FakeHost host = amd_host();
        const CpuidPolicy policy = policy_for(host);
        for (u32 leaf : {0xeu, 0x10u, 0x8000'0009u, 0x8000'000au, 0x8000'001fu, 0xc000'0000u,
                         0xffff'ffffu}) {
            CAPTURE(leaf);
            CHECK(policy.lookup(leaf, 0, {}) == kZero);
        }
    }
    SECTION("reserved and hidden leaves below the maximum read 0") {
        const FakeHost host = saturated_host(false);
        const CpuidPolicy policy = policy_for(host);
        for (u32 leaf : {3u, 5u, 6u, 8u, 9u, 0xau, 0xcu}) {
            CAPTURE(leaf);
            CHECK(policy.lookup(leaf, 0, {}) == kZero);
        }
    }
}

TEST_CASE("cpuid: the topology of the vCPUs", "[cpuid]") {
    const FakeHost intel = intel_host();
    const FakeHost amd = amd_host();

    SECTION("leaf 1: APIC id and the logical processor count") {
        for (u32 count : {1u, 2u, 3u, 4u, 5u, 64u}) {
            const CpuidPolicy policy = policy_for(intel, {.vcpu_count = count});
            u32 ids = 1;
            while (ids < count) ids *= 2;
            for (u32 vcpu = 0; vcpu < count; ++vcpu) {
                CAPTURE(count, vcpu);
                const Registers leaf1 = policy.lookup(1, 0, {.apic_id = vcpu});
                CHECK(leaf1.ebx >> 24 == vcpu);
                CHECK((leaf1.ebx >> 16 & 0xff) == ids);
                CHECK((leaf1.ebx & 0xffff) == 0x0800);  // CLFLUSH line size passes
                CHECK((leaf1.edx & bit(28)) != 0);      // HTT: EBX[23:16] is valid
                CHECK(leaf1.eax == 0x0005'0654);
            }
        }
    }
    SECTION("leaf 4: cores of one thread, the L3 shared by the package") {
        const CpuidPolicy policy = policy_for(intel, {.vcpu_count = 3});
        const u32 expected[] = {0x0c00'0121, 0x0c00'0122, 0x0c00'0143, 0x0c00'c163};
        for (u32 index = 0; index < 4; ++index) {
            CAPTURE(index);
            const Registers cache = policy.lookup(4, index, {});
            const Registers original = intel.query(4, index);
            CHECK(cache.eax == expected[index]);
            CHECK(cache.ebx == original.ebx);
            CHECK(cache.ecx == original.ecx);
            CHECK(cache.edx == original.edx);
        }
        CHECK(policy.lookup(4, 4, {}) == kZero);
        CHECK(policy.lookup(4, 1000, {}) == kZero);
        CHECK(policy_for(amd, {.vcpu_count = 3}).lookup(4, 0, {}) == kZero);
    }
    SECTION("leaf 0Bh where the host has it") {
        const CpuidPolicy policy = policy_for(intel, {.vcpu_count = 6});
        const VcpuState vcpu{.apic_id = 4};
        CHECK(policy.lookup(0xb, 0, vcpu) == Registers{0, 1, 0x100, 4});
        CHECK(policy.lookup(0xb, 1, vcpu) == Registers{3, 6, 0x201, 4});
        CHECK(policy.lookup(0xb, 2, vcpu) == Registers{0, 0, 2, 4});
        CHECK(policy.lookup(0xb, 0x1234, vcpu) == Registers{0, 0, 0x34, 4});
        CHECK(policy_for(amd, {.vcpu_count = 6}).lookup(0xb, 0, vcpu) == kZero);
    }
    SECTION("AMD: Fn8000_0008 ECX") {
        const CpuidPolicy policy = policy_for(amd, {.vcpu_count = 6});
        const Registers sizes = policy.lookup(0x8000'0008, 0, {});
        CHECK(sizes.ecx == (5 | 3 << 12));
        CHECK(sizes.eax == 0x3030);  // 48-bit physical and linear addresses pass
        CHECK(sizes.edx == 0);
        CHECK(policy_for(intel, {.vcpu_count = 6}).lookup(0x8000'0008, 0, {}).ecx == 0);
    }
}

TEST_CASE("cpuid: leaf 7 subleaves", "[cpuid]") {
    const FakeHost host = intel_host();
    const CpuidPolicy policy = policy_for(host);
    const Registers leaf7 = policy.lookup(7, 0, {});
    CHECK(leaf7.eax == 0);  // no subleaf 1 and up
    CHECK(leaf7.ebx != 0);
    CHECK(policy.lookup(7, 1, {}) == kZero);
    CHECK(policy.lookup(7, 2, {}) == kZero);
    CHECK((leaf7.ebx & bit(5)) != 0);   // AVX2 passes
    CHECK((leaf7.ebx & bit(16)) != 0);  // AVX512F passes: its state is allowed
    CHECK((leaf7.ebx & bit(14)) == 0);  // MPX
    CHECK((leaf7.ebx & bit(25)) == 0);  // PT
    CHECK((leaf7.ecx & bit(3)) == 0);   // PKU
    CHECK((leaf7.edx & bit(10)) != 0);  // MD_CLEAR passes
    CHECK((leaf7.edx & 0xfc00'0000) == 0);  // speculation-control MSRs
}

TEST_CASE("cpuid: leaf 0Dh describes the XCR0 bits a guest may use", "[cpuid]") {
    SECTION("Intel: AVX-512 yes; MPX, PKRU and supervisor state no") {
        const FakeHost host = intel_host();
        const CpuidPolicy policy = policy_for(host);
        CHECK(policy.allowed_xcr0() == 0xe7);
        const Registers main = policy.lookup(0xd, 0, {.xcr0 = 0xe7});
        CHECK(main.eax == 0xe7);
        CHECK(main.edx == 0);
        CHECK(main.ecx == 2688);  // ends with Hi16_ZMM
        CHECK(main.ebx == 2688);
        CHECK(policy.lookup(0xd, 0, {.xcr0 = 0x3}).ebx == 576);
        CHECK(policy.lookup(0xd, 0, {.xcr0 = 0x7}).ebx == 832);
        // A value the guest cannot have loaded counts only with the allowed bits.
        CHECK(policy.lookup(0xd, 0, {.xcr0 = 0x207}).ebx == 832);

        CHECK(policy.lookup(0xd, 1, {}) == Registers{0x7, 0, 0, 0});  // no XSAVES, no XFD
        CHECK(policy.lookup(0xd, 2, {}) == Registers{256, 576, 0, 0});
        CHECK(policy.lookup(0xd, 5, {}) == Registers{64, 1088, 2, 0});
        CHECK(policy.lookup(0xd, 7, {}) == Registers{1024, 1664, 0, 0});
        for (u32 hidden : {3u, 4u, 8u, 9u, 17u, 62u, 63u, 64u, 1000u}) {
            CAPTURE(hidden);
            CHECK(policy.lookup(0xd, hidden, {}) == kZero);
        }
    }
    SECTION("AMD: AVX, no PKRU") {
        const FakeHost host = amd_host();
        const CpuidPolicy policy = policy_for(host);
        CHECK(policy.allowed_xcr0() == 0x7);
        const Registers main = policy.lookup(0xd, 0, {.xcr0 = 1});
        CHECK(main == Registers{0x7, 576, 832, 0});
        CHECK(policy.lookup(0xd, 9, {}) == kZero);
    }
    SECTION("no XSAVE on the host, no leaf 0Dh") {
        FakeHost host = intel_host();
        host(1).ecx &= ~bit(26);
        const CpuidPolicy policy = policy_for(host);
        CHECK(policy.allowed_xcr0() == 0);
        CHECK(policy.lookup(0xd, 0, {}) == kZero);
        CHECK(policy.lookup(0xd, 2, {}) == kZero);
        const u32 ecx = policy.lookup(1, 0, {.osxsave = true}).ecx;
        CHECK((ecx & (bit(26) | bit(27) | bit(28) | bit(12) | bit(29))) == 0);  // XSAVE, AVX...
        CHECK((policy.lookup(7, 0, {}).ebx & (bit(5) | bit(16))) == 0);         // AVX2, AVX512F
        CHECK_FALSE(policy.accepts_xcr0(1));
    }
    SECTION("features whose state is not allowed are hidden") {
        FakeHost host = intel_host();
        host(0xd, 0).eax = 0x3;  // the host reports AVX and AVX-512, but no YMM state
        CpuidPolicy policy = policy_for(host);
        CHECK(policy.allowed_xcr0() == 0x3);
        CHECK((policy.lookup(1, 0, {}).ecx & (bit(28) | bit(12) | bit(29))) == 0);
        CHECK((policy.lookup(7, 0, {}).ebx & (bit(5) | bit(16) | bit(31))) == 0);
        CHECK((policy.lookup(1, 0, {}).ecx & bit(26)) != 0);  // XSAVE itself stays

        host(0xd, 0).eax = 0x67;  // opmask and ZMM_Hi256 without Hi16_ZMM: AVX-512 is all or none
        policy = policy_for(host);
        CHECK(policy.allowed_xcr0() == 0x7);
        CHECK((policy.lookup(7, 0, {}).ebx & bit(5)) != 0);
        CHECK((policy.lookup(7, 0, {}).ebx & bit(16)) == 0);
        CHECK(policy.lookup(0xd, 5, {}) == kZero);
    }
}

TEST_CASE("cpuid: OSXSAVE mirrors the vCPU's CR4", "[cpuid]") {
    const FakeHost host = intel_host();
    const CpuidPolicy policy = policy_for(host);
    CHECK((policy.lookup(1, 0, {.osxsave = false}).ecx & bit(27)) == 0);
    CHECK((policy.lookup(1, 0, {.osxsave = true}).ecx & bit(27)) != 0);
}

TEST_CASE("cpuid: a leaf that does not reflect OSXSAVE answers the same whatever CR4 says", "[cpuid]") {
    // The CPUID exit skips reading the guest's CR4 when reflects_osxsave() says so.
    for (const FakeHost& host : {intel_host(), amd_host()}) {
        const CpuidPolicy policy = policy_for(host);
        CHECK(policy.reflects_osxsave(1));
        for (u32 base : {0u, 0x4000'0000u, 0x8000'0000u}) {
            for (u32 leaf = base; leaf < base + 0x30; ++leaf) {
                if (policy.reflects_osxsave(leaf)) continue;
                CAPTURE(leaf);
                CHECK(policy.lookup(leaf, 0, {.osxsave = false}) == policy.lookup(leaf, 0, {.osxsave = true}));
            }
        }
    }
}

TEST_CASE("cpuid: XSETBV values", "[cpuid]") {
    const FakeHost host = intel_host();
    const CpuidPolicy policy = policy_for(host);
    for (u64 good : {0x1ull, 0x3ull, 0x7ull, 0xe7ull}) {
        CAPTURE(good);
        CHECK(policy.accepts_xcr0(good));
    }
    // No x87; AVX without SSE; AVX-512 in part, or without AVX; MPX, PKRU, AMX, bit 63.
    for (u64 bad : {0x0ull, 0x2ull, 0x5ull, 0x27ull, 0xc7ull, 0xe3ull, 0x1full, 0x207ull,
                    0x6'0007ull, 0x8000'0000'0000'0007ull}) {
        CAPTURE(bad);
        CHECK_FALSE(policy.accepts_xcr0(bad));
    }
}

TEST_CASE("cpuid: extended leaves", "[cpuid]") {
    const FakeHost intel = intel_host();
    const FakeHost amd = amd_host();
    const CpuidPolicy on_intel = policy_for(intel);
    const CpuidPolicy on_amd = policy_for(amd);
    for (u32 leaf = 0x8000'0002; leaf <= 0x8000'0004; ++leaf) {
        CAPTURE(leaf);
        CHECK(on_intel.lookup(leaf, 0, {}) == intel.query(leaf, 0));
    }
    CHECK(on_amd.lookup(0x8000'0005, 0, {}) == amd.query(0x8000'0005, 0));
    CHECK(on_amd.lookup(0x8000'0006, 0, {}) == amd.query(0x8000'0006, 0));
    CHECK(on_intel.lookup(0x8000'0006, 0, {}) == intel.query(0x8000'0006, 0));
    CHECK(on_amd.lookup(0x8000'0007, 0, {}) == Registers{0, 0, 0, bit(8)});
    CHECK(on_intel.lookup(0x8000'0007, 0, {}) == Registers{0, 0, 0, bit(8)});
    CHECK(on_intel.lookup(0x8000'0008, 0, {}) == Registers{0x302e, bit(9), 0, 0});

    const Registers amd1 = on_amd.lookup(0x8000'0001, 0, {});
    CHECK(amd1.eax == 0x0083'0f10);
    CHECK((amd1.edx & bit(29)) != 0);  // long mode
    CHECK((amd1.edx & bit(20)) != 0);  // NX
    CHECK((amd1.edx & bit(27)) == 0);  // RDTSCP
    CHECK((amd1.ecx & bit(15)) == 0);  // LWP
    CHECK((amd1.ecx & bit(13)) == 0);  // WDT
    CHECK((amd1.ecx & bit(5)) != 0);   // LZCNT
}

TEST_CASE("cpuid: the subleaf matters only where leaves have subleaves", "[cpuid]") {
    const FakeHost host = intel_host();
    const CpuidPolicy policy = policy_for(host, {.vcpu_count = 2});
    for (u32 leaf : {0u, 1u, 2u, 0x4000'0000u, 0x8000'0001u, 0x8000'0008u}) {
        CAPTURE(leaf);
        CHECK(policy.lookup(leaf, 5, {.apic_id = 1}) == policy.lookup(leaf, 0, {.apic_id = 1}));
    }
}

TEST_CASE("cpuid: every hidden bit stays hidden, every passed bit passes", "[cpuid]") {
    const bool amd = GENERATE(false, true);
    INFO((amd ? "AMD" : "Intel"));
    const FakeHost full = saturated_host(amd);
    const CpuidPolicy policy = policy_for(full);
    // Set by the policy whatever the host has.
    auto forced = [](const FeatureFilter& filter) -> u32 {
        if (filter.leaf == 1 && filter.reg == Register::Ecx) return bit(31);
        if (filter.leaf == 1 && filter.reg == Register::Edx) return bit(28);
        return 0;
    };

    for (const FeatureFilter& filter : kFeatureFilters) {
        const u32 seen = field(policy.lookup(filter.leaf, filter.subleaf, {}), filter.reg);
        for (u32 n = 0; n < 32; ++n) {
            CAPTURE(filter.leaf, filter.subleaf, static_cast<int>(filter.reg), n);
            // A host with every feature: exactly the passed ones come through.
            CHECK(((seen >> n) & 1) == (((filter.passed | forced(filter)) >> n) & 1));
            // A host without this one feature: the guest does not get it either.
            const ClearedBit cleared{filter.leaf, filter.subleaf, filter.reg, n};
            const FakeHost without = saturated_host(amd, &cleared);
            const u32 seen_without =
                field(policy_for(without).lookup(filter.leaf, filter.subleaf, {}), filter.reg);
            CHECK(((seen_without >> n) & 1) == ((forced(filter) >> n) & 1));
        }
    }
}

TEST_CASE("cpuid: the bits named hidden are hidden on a host with everything", "[cpuid]") {
    const bool amd = GENERATE(false, true);
    const FakeHost full = saturated_host(amd);
    const CpuidPolicy policy = policy_for(full, {.vcpu_count = 4});
    const VcpuState vcpu{.apic_id = 3, .osxsave = true, .xcr0 = 7};
    const Registers leaf1 = policy.lookup(1, 0, vcpu);
    // DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, PDCM, x2APIC, TSC-deadline.
    for (u32 n : {2u, 3u, 4u, 5u, 6u, 7u, 8u, 15u, 21u, 24u}) {
        CAPTURE(n);
        CHECK((leaf1.ecx & bit(n)) == 0);
    }
    // PSN, DS, ACPI, TM.
    for (u32 n : {18u, 21u, 22u, 29u}) {
        CAPTURE(n);
        CHECK((leaf1.edx & bit(n)) == 0);
    }
    CHECK((leaf1.ecx & bit(27)) != 0);  // OSXSAVE, as the vCPU has it
    CHECK(leaf1.ebx == (0x0304'0000u | 0xffff));
    // SVM, SKINIT, WDT, LWP.
    const u32 extended_ecx = policy.lookup(0x8000'0001, 0, vcpu).ecx;
    for (u32 n : {2u, 12u, 13u, 15u}) {
        CAPTURE(n);
        CHECK((extended_ecx & bit(n)) == 0);
    }
    CHECK(policy.lookup(0x8000'0007, 0, vcpu) == Registers{0, 0, 0, bit(8)});
    CHECK((policy.lookup(7, 0, vcpu).ebx & (bit(2) | bit(25))) == 0);  // SGX, PT
    CHECK(policy.lookup(7, 0, vcpu).eax == 0);
    CHECK(policy.lookup(0x8000'0008, 0, vcpu).edx == 0);
    CHECK((policy.lookup(0x8000'0008, 0, vcpu).eax >> 16) == 0);
    // The XSAVE leaf stays well-formed on a host that claims every component.
    CHECK(policy.allowed_xcr0() == kXcr0Permitted);
    CHECK(policy.lookup(0xd, 1, vcpu).eax == 0x7);
    CHECK(policy.lookup(0xd, 8, vcpu) == kZero);
}

TEST_CASE("cpuid: configuration and the state before init", "[cpuid]") {
    const FakeHost host = intel_host();
    CpuidPolicy policy;
    for (u32 leaf : {0u, 1u, 0xdu, 0x4000'0000u, 0x8000'0000u}) {
        CAPTURE(leaf);
        CHECK(policy.lookup(leaf, 0, {}) == kZero);
    }
    CHECK(policy.allowed_xcr0() == 0);
    CHECK(policy.init(host, {.vcpu_count = 0}) == Status::BadVcpuCount);
    CHECK(policy.init(host, {.vcpu_count = kMaxVcpus + 1}) == Status::BadVcpuCount);
    CHECK(policy.lookup(0, 0, {}) == kZero);

    REQUIRE(policy.init(host, {.vcpu_count = kMaxVcpus}) == Status::Ok);
    CHECK((policy.lookup(4, 0, {}).eax >> 26) == 63);
    CHECK((policy.lookup(1, 0, {.apic_id = 63}).ebx >> 16) == 0x3f40);
    // A refused configuration leaves the policy as it was.
    CHECK(policy.init(host, {.vcpu_count = 0}) == Status::BadVcpuCount);
    CHECK(policy.lookup(0xb, 1, {}).ebx == kMaxVcpus);
    CHECK(std::string(status_name(Status::BadVcpuCount)) == "bad vCPU count");
    CHECK(std::string(status_name(Status::Ok)) == "ok");
}
