#include <catch2/catch.hpp>

#include <hypervisor/hypercall/vcpu_context.h>

using namespace lamina;
using namespace lamina::hypercall;

namespace {

constexpr u8 kMaxPhysical = 46;
constexpr u64 kRflagsFixed = 1u << 1;

lamina_vcpu_context protected32(u64 rip) {
    lamina_vcpu_context c{};
    c.mode = LAMINA_VCPU_MODE_PROTECTED32;
    c.regs.rip = rip;
    c.regs.rflags = kRflagsFixed;
    return c;
}

// What a 64-bit kernel starts a secondary vCPU with: its own paging.
lamina_vcpu_context long64(u64 rip) {
    lamina_vcpu_context c = protected32(rip);
    c.mode = LAMINA_VCPU_MODE_LONG64;
    c.cr0 = 0x80000033;  // PG, NE, ET, MP, PE
    c.cr3 = 0x1ff000;
    c.cr4 = 0x6a0;  // OSXMMEXCPT, OSFXSR, PGE, PAE
    c.efer = 0xd01;  // NXE, LMA, LME, SCE
    return c;
}

bool accepted(const lamina_vcpu_context& c) {
    EntryState entry;
    return entry_state_from_context(c, kMaxPhysical, &entry);
}

}  // namespace

TEST_CASE("vcpu context: every register of the context reaches the entry state", "[hypercall]") {
    lamina_vcpu_context c = protected32(0x100000);
    u64* regs = &c.regs.rax;
    for (u64 i = 0; i < kGprCount; ++i) regs[i] = 0x1000 + i * 0x111;
    c.regs.rflags = kRflagsFixed | 0x1 | 0x40 | 0x800;  // CF, ZF, OF
    EntryState entry;
    REQUIRE(entry_state_from_context(c, kMaxPhysical, &entry));
    CHECK(entry.mode == EntryMode::Protected32);
    CHECK(entry.rip == 0x100000);
    CHECK(entry.rflags == c.regs.rflags);
    for (u64 i = 0; i < kGprCount; ++i) CHECK(entry.gprs[i] == regs[i]);
    CHECK(entry.gprs[static_cast<u8>(Gpr::Rbx)] == c.regs.rbx);
    CHECK(entry.gprs[static_cast<u8>(Gpr::Rsp)] == c.regs.rsp);
    CHECK((entry.cr0 | entry.cr3 | entry.cr4 | entry.efer) == 0);

    c.mode = LAMINA_VCPU_MODE_REAL;
    c.regs.rip = 0xfffff;
    REQUIRE(entry_state_from_context(c, kMaxPhysical, &entry));
    CHECK(entry.mode == EntryMode::Real);
    CHECK(entry.rip == 0xfffff);
}

TEST_CASE("vcpu context: a refused context leaves the entry state as it was", "[hypercall]") {
    EntryState entry = make_entry_state(EntryMode::Real, 0x7000, 1, 2);
    lamina_vcpu_context c = protected32(0x1000);
    c.flags = 1;
    CHECK_FALSE(entry_state_from_context(c, kMaxPhysical, &entry));
    CHECK(entry.mode == EntryMode::Real);
    CHECK(entry.rip == 0x7000);
    CHECK(entry.gprs[static_cast<u8>(Gpr::Rbx)] == 1);
}

TEST_CASE("vcpu context: flags, mode and RFLAGS", "[hypercall]") {
    CHECK(accepted(protected32(0x1000)));
    lamina_vcpu_context c = protected32(0x1000);
    c.flags = 0x80000000;
    CHECK_FALSE(accepted(c));
    for (u32 mode : {3u, 0xffffffffu}) {
        c = protected32(0x1000);
        c.mode = mode;
        CHECK_FALSE(accepted(c));
    }
    // Bit 1 must be set; IF, TF, VM, IOPL and the reserved bits must not.
    const u64 refused[] = {0,
                           kRflagsFixed | 1u << 9,
                           kRflagsFixed | 1u << 8,
                           kRflagsFixed | 1u << 17,
                           kRflagsFixed | 1u << 12,
                           kRflagsFixed | 3u << 12,
                           kRflagsFixed | 1u << 3,
                           kRflagsFixed | 1u << 5,
                           kRflagsFixed | 1u << 15,
                           kRflagsFixed | 1u << 22,
                           kRflagsFixed | u64{1} << 63};
    for (u64 rflags : refused) {
        c = protected32(0x1000);
        c.regs.rflags = rflags;
        CAPTURE(rflags);
        CHECK_FALSE(accepted(c));
    }
    // The status flags, DF, NT, RF, AC, VIF, VIP and ID are the guest's to choose.
    c = protected32(0x1000);
    c.regs.rflags = kRflagsFixed | 0x8d5 | 1u << 10 | 1u << 14 | 1u << 16 | 1u << 18 | 1u << 19 | 1u << 20 | 1u << 21;
    CHECK(accepted(c));
}

TEST_CASE("vcpu context: outside LONG64 registers have 32 bits and there is no paging state", "[hypercall]") {
    for (u32 mode : {LAMINA_VCPU_MODE_REAL, LAMINA_VCPU_MODE_PROTECTED32}) {
        CAPTURE(mode);
        for (usize i = 0; i < 18; ++i) {
            lamina_vcpu_context c = protected32(0x1000);
            c.mode = mode;
            (&c.regs.rax)[i] |= u64{1} << 32;
            CAPTURE(i);
            CHECK_FALSE(accepted(c));
        }
        lamina_vcpu_context c = protected32(0x1000);
        c.mode = mode;
        c.regs.r15 = 0xffffffff;
        CHECK(accepted(c));
        for (u64 lamina_vcpu_context::*field :
             {&lamina_vcpu_context::cr0, &lamina_vcpu_context::cr3, &lamina_vcpu_context::cr4,
              &lamina_vcpu_context::efer}) {
            c = protected32(0x1000);
            c.mode = mode;
            c.*field = 1;
            CHECK_FALSE(accepted(c));
        }
    }
    lamina_vcpu_context real = protected32(0x100000);
    real.mode = LAMINA_VCPU_MODE_REAL;
    CHECK_FALSE(accepted(real));  // CS:IP reaches 1 MiB - 1 at most
}

TEST_CASE("vcpu context: a LONG64 context", "[hypercall]") {
    lamina_vcpu_context c = long64(0xffffffff80001000);
    u64* regs = &c.regs.rax;
    for (u64 i = 0; i < kGprCount; ++i) regs[i] = 0x8877665544332211 + i;
    EntryState entry;
    REQUIRE(entry_state_from_context(c, kMaxPhysical, &entry));
    CHECK(entry.mode == EntryMode::Long64);
    CHECK(entry.rip == 0xffffffff80001000);
    for (u64 i = 0; i < kGprCount; ++i) CHECK(entry.gprs[i] == regs[i]);
    CHECK(entry.cr0 == c.cr0);
    CHECK(entry.cr3 == c.cr3);
    CHECK(entry.cr4 == c.cr4);
    CHECK(entry.efer == c.efer);

    // The least it needs.
    c.cr0 = 0x80000001;
    c.cr4 = 0x20;
    c.efer = 0x100;
    CHECK(accepted(c));
}

TEST_CASE("vcpu context: LONG64's RIP is canonical", "[hypercall]") {
    for (u64 rip : {u64{0}, u64{0x00007fffffffffff}, u64{0xffff800000000000}, ~u64{0}}) {
        CAPTURE(rip);
        CHECK(accepted(long64(rip)));
    }
    for (u64 rip : {u64{0x0000800000000000}, u64{0xffff7fffffffffff}, u64{1} << 63, u64{1} << 56}) {
        CAPTURE(rip);
        CHECK_FALSE(accepted(long64(rip)));
    }
}

TEST_CASE("vcpu context: LONG64's CR0, CR4 and EFER", "[hypercall]") {
    struct Case {
        u64 lamina_vcpu_context::*field;
        u64 value;
        bool accepted;
    };
    const Case cases[] = {
        {&lamina_vcpu_context::cr0, 0x00000001, false},   // no PG
        {&lamina_vcpu_context::cr0, 0x80000000, false},   // no PE
        {&lamina_vcpu_context::cr0, 0xe005003f, true},    // every bit the architecture defines
        {&lamina_vcpu_context::cr0, 0xa0000001, false},   // NW without CD
        {&lamina_vcpu_context::cr0, 0x80000041, false},   // bit 6, reserved
        {&lamina_vcpu_context::cr0, u64{1} << 32 | 0x80000001, false},
        {&lamina_vcpu_context::cr4, 0x000, false},        // no PAE
        {&lamina_vcpu_context::cr4, 0x7fc, true},         // TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT
        {&lamina_vcpu_context::cr4, 0x021, false},        // VME
        {&lamina_vcpu_context::cr4, 0x022, false},        // PVI
        {&lamina_vcpu_context::cr4, 0x1020, false},       // LA57: 5-level paging is no start state
        {&lamina_vcpu_context::cr4, 0x2020, false},       // VMXE
        {&lamina_vcpu_context::cr4, 0x40020, false},      // OSXSAVE: the guest's to turn on
        {&lamina_vcpu_context::cr4, 0x20020, false},      // PCIDE
        {&lamina_vcpu_context::efer, 0x000, false},       // no LME
        {&lamina_vcpu_context::efer, 0x400, false},       // LMA alone
        {&lamina_vcpu_context::efer, 0x100, true},        // LME: LMA follows
        {&lamina_vcpu_context::efer, 0xd01, true},        // SCE, LME, LMA, NXE
        {&lamina_vcpu_context::efer, 0x1100, false},      // SVME
        {&lamina_vcpu_context::efer, u64{1} << 32 | 0x100, false},
    };
    for (const Case& k : cases) {
        lamina_vcpu_context c = long64(0x1000);
        c.*k.field = k.value;
        CAPTURE(k.value);
        CHECK(accepted(c) == k.accepted);
    }
}

TEST_CASE("vcpu context: LONG64's CR3 is a page below MAXPHYADDR, with PWT and PCD", "[hypercall]") {
    const u64 below_max = (u64{1} << kMaxPhysical) - 0x1000;
    for (u64 cr3 : {u64{0}, below_max, below_max | 0x8, below_max | 0x10}) {
        lamina_vcpu_context c = long64(0x1000);
        c.cr3 = cr3;
        CAPTURE(cr3);
        CHECK(accepted(c));
    }
    for (u64 cr3 : {u64{1} << kMaxPhysical, u64{1} << 63, u64{0x1001}, u64{0x1004}, u64{0x1020}, u64{0x1800}}) {
        lamina_vcpu_context c = long64(0x1000);
        c.cr3 = cr3;
        CAPTURE(cr3);
        CHECK_FALSE(accepted(c));
    }
    // MAXPHYADDR bounds it: what 46 bits refuse, 52 take.
    lamina_vcpu_context c = long64(0x1000);
    c.cr3 = u64{1} << kMaxPhysical;
    EntryState entry;
    CHECK(entry_state_from_context(c, 52, &entry));
}
