#include <catch2/catch.hpp>

#include <hypervisor/guest/exit_handler.h>
#include <lamina/abi/errno.h>
#include <hypervisor/guest/virtual_interrupts.h>
#include <tests/unit/fake_guest_memory.h>
#include <tests/unit/fake_vcpu.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace lamina;

namespace {

using testing::FakeVcpu;

// Every hypercall answers its number plus the sum of its arguments, and records its name; the
// ones a test picks do more (a continuation, a request to block).
class FakeHypercalls final : public hypercall::HypercallHandlers {
public:
#define LAMINA_HC_PARAM_(index, arg) , u64 LAMINA_HC_ARG_NAME arg
#define LAMINA_HC_SUM_(index, arg) +LAMINA_HC_ARG_NAME arg
#define LAMINA_HYPERCALL(number, name, who, argc, args, summary)                                        \
    i64 name(const hypercall::Caller& caller LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_PARAM_, argc, args)) override { \
        called.push_back(#name);                                                                       \
        if (on_call) return on_call(caller);                                                           \
        return static_cast<i64>(number LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_SUM_, argc, args));            \
    }
#include <lamina/abi/hypercalls.def>
#undef LAMINA_HC_PARAM_
#undef LAMINA_HC_SUM_
    std::vector<std::string> called;
    std::function<i64(const hypercall::Caller&)> on_call;
};

class FakeHost final : public ExitHost {
public:
    void load_xcr0(u64 value) override { xcr0_loads.push_back(value); }
    void take_host_interrupts() override { ++interrupt_windows; }
    void unclaimed_io(const IoExit& io, u64 count) override { reported.push_back(count); }
    u64 tsc() override { return 123456789; }
    bool install_hypercall_page(u64 msr_value) override {
        hypercall_pages.push_back(msr_value);
        return msr_value == 0x5000;
    }
    std::vector<u64> hypercall_pages;

    std::vector<u64> xcr0_loads;
    int interrupt_windows = 0;
    std::vector<u64> reported;
};

// A host CPU with XSAVE for x87, SSE and AVX, and a hypervisor bit to hide.
class HostWithXsave final : public cpuid::HostCpuid {
public:
    cpuid::Registers query(u32 leaf, u32 subleaf) const override {
        switch (leaf) {
            case 0: return {0xd, 0x756e6547, 0x6c65746e, 0x49656e69};  // GenuineIntel
            case 1: return {0x000906ea, 0x00100800, (1u << 26) | (1u << 28) | (1u << 5), 0x178bfbff};
            case 0xd: return subleaf == 0 ? cpuid::Registers{0x7, 0x340, 0x340, 0} : cpuid::Registers{};
            case 0x80000000: return {0x80000008, 0, 0, 0};
            default: return {};
        }
    }
};

// A console on one port, like the guest's debug console, and a 4-port device that records.
class FakeConsole final : public IoPortHandler {
public:
    u32 read(u16 port, u8) override { return port; }
    void write(u16, u8 size, u32 value) override {
        for (u8 i = 0; i < size; ++i) text += static_cast<char>(value >> (8 * i));
    }
    std::string text;
};

struct Fixture {
    Fixture() {
        REQUIRE(policy.init(HostWithXsave{}, {}) == cpuid::Status::Ok);
        REQUIRE(ports.claim(0xe9, 1, console) == RangeStatus::Ok);
    }
    GuestEnd exit(ExitReason reason) {
        ExitInfo info{};
        info.reason = reason;
        return handler.handle(vcpu, info);
    }
    GuestEnd io(u16 port, u8 size, bool in, bool string = false) {
        ExitInfo info{};
        info.reason = ExitReason::Io;
        info.io = {port, size, in, string, false};
        return handler.handle(vcpu, info);
    }
    cpuid::CpuidPolicy policy;
    FakeConsole console;
    IoPortMap ports;
    emulate::MmioMap mmio;
    testing::FakeGuestMemory memory;
    FakeHost host;
    FakeVcpu vcpu;
    FakeHypercalls hypercalls;
    ExitHandler handler{{policy, ports, mmio, memory, {}, hypercalls, 7, false}, host};
};

}  // namespace

TEST_CASE_METHOD(Fixture, "exits: CPUID answers from the policy and steps over the instruction") {
    vcpu.set_gpr(Gpr::Rax, 0xffffffff'40000000);  // the upper half of RAX is ignored
    REQUIRE(exit(ExitReason::Cpuid) == GuestEnd::Running);
    CHECK(vcpu.gpr(Gpr::Rax) >= 0x40000001);
    CHECK(vcpu.gpr(Gpr::Rbx) == 0x696d614c);  // "Lami"
    CHECK(vcpu.gpr(Gpr::Rcx) == 0x614c616e);  // "naLa"
    CHECK(vcpu.gpr(Gpr::Rdx) == 0x616e696d);  // "mina"
    CHECK(vcpu.advanced == 1);

    vcpu.set_gpr(Gpr::Rax, 1);
    exit(ExitReason::Cpuid);
    CHECK((vcpu.gpr(Gpr::Rcx) & (1u << 5)) == 0);   // VMX hidden
    CHECK((vcpu.gpr(Gpr::Rcx) & (1u << 27)) == 0);  // OSXSAVE mirrors CR4, which is clear
    vcpu.cr_values[4] = 1u << 18;
    vcpu.set_gpr(Gpr::Rax, 1);
    exit(ExitReason::Cpuid);
    CHECK((vcpu.gpr(Gpr::Rcx) & (1u << 27)) != 0);
}

TEST_CASE_METHOD(Fixture, "exits: unclaimed ports read all ones with the width of the access") {
    vcpu.set_gpr(Gpr::Rax, 0x1122334455667788);
    io(0x1234, 1, true);
    CHECK(vcpu.gpr(Gpr::Rax) == 0x11223344556677ff);  // 8 bits: the rest of RAX stays
    vcpu.set_gpr(Gpr::Rax, 0x1122334455667788);
    io(0x1234, 2, true);
    CHECK(vcpu.gpr(Gpr::Rax) == 0x112233445566ffff);
    vcpu.set_gpr(Gpr::Rax, 0x1122334455667788);
    io(0x1234, 4, true);
    CHECK(vcpu.gpr(Gpr::Rax) == 0x00000000ffffffff);  // 32 bits zero-extend
    CHECK(vcpu.advanced == 3);
}

TEST_CASE_METHOD(Fixture, "exits: claimed ports go to their handler; other writes are dropped and reported, rate-limited") {
    vcpu.set_gpr(Gpr::Rax, 0xffffff00 | 'h');  // only the access's width reaches the handler
    io(0xe9, 1, false);
    vcpu.set_gpr(Gpr::Rax, 0x0a6b6f);  // "ok\n" in a 32-bit OUT: its low 3 bytes, then a NUL
    io(0xe9, 4, false);
    CHECK(console.text == std::string("h") );  // a 4-byte access at 0xe9 straddles the hole after it
    vcpu.set_gpr(Gpr::Rax, 0x1122334455667788);
    io(0xe9, 1, true);
    CHECK(vcpu.gpr(Gpr::Rax) == 0x11223344556677e9);  // the handler's byte, the rest of RAX kept
    CHECK(host.reported.size() == 1);  // the straddling write

    for (int i = 0; i < 9999; ++i) io(0x80, 1, false);
    CHECK(handler.unclaimed_io() == 10000);
    CHECK(host.reported == std::vector<u64>{1, 2, 3, 4, 5, 6, 7, 8, 4096, 8192});
}

TEST_CASE_METHOD(Fixture, "exits: string I/O is not emulated: the guest ends") {
    CHECK(io(0x80, 1, false, true) == GuestEnd::Unhandled);
    CHECK(vcpu.advanced == 0);
}

TEST_CASE_METHOD(Fixture, "exits: EFER is on the allow-list, every other MSR is #GP") {
    vcpu.set_gpr(Gpr::Rcx, 0xc0000080);
    vcpu.set_gpr(Gpr::Rax, (1u << 8) | (1u << 11));  // LME | NXE
    vcpu.set_gpr(Gpr::Rdx, 0);
    exit(ExitReason::MsrWrite);
    CHECK(vcpu.efer() == ((1u << 8) | (1u << 11)));
    CHECK(vcpu.advanced == 1);

    vcpu.efer_value |= 1u << 10;  // the CPU set LMA
    vcpu.set_gpr(Gpr::Rax, 1u << 8);
    exit(ExitReason::MsrWrite);
    CHECK(vcpu.efer() == ((1u << 8) | (1u << 10)));  // a write cannot clear LMA

    exit(ExitReason::MsrRead);
    CHECK(vcpu.gpr(Gpr::Rax) == ((1u << 8) | (1u << 10)));
    CHECK(vcpu.gpr(Gpr::Rdx) == 0);

    SECTION("reserved EFER bits (SVME among them) are #GP and change nothing") {
        for (u64 bit : {u64{1} << 12, u64{1} << 1, u64{1} << 63}) {
            vcpu.set_gpr(Gpr::Rax, static_cast<u32>(bit));
            vcpu.set_gpr(Gpr::Rdx, bit >> 32);
            exit(ExitReason::MsrWrite);
        }
        CHECK(vcpu.injected_vectors() == std::vector<u8>{13, 13, 13});
        CHECK(vcpu.efer() == ((1u << 8) | (1u << 10)));
    }
    SECTION("an MSR nobody emulates, read or written") {
        vcpu.set_gpr(Gpr::Rcx, 0xc0010015);  // AMD HWCR
        int before = vcpu.advanced;
        exit(ExitReason::MsrRead);
        exit(ExitReason::MsrWrite);
        CHECK(vcpu.injected_vectors() == std::vector<u8>{13, 13});
        CHECK(vcpu.advanced == before);  // a fault does not complete the instruction
    }
}

TEST_CASE_METHOD(Fixture, "exits: XSETBV loads an allowed XCR0 and refuses the rest with #GP") {
    vcpu.set_gpr(Gpr::Rcx, 0);
    vcpu.set_gpr(Gpr::Rdx, 0);
    vcpu.set_gpr(Gpr::Rax, 0x3);  // x87 | SSE
    exit(ExitReason::Xsetbv);
    CHECK(host.xcr0_loads == std::vector<u64>{0x3});
    CHECK(handler.xcr0() == 0x3);
    CHECK(vcpu.advanced == 1);

    for (u64 bad : {u64{0x2}, u64{0x5}, u64{0x7} | (u64{1} << 9), u64{1} << 62}) {
        vcpu.set_gpr(Gpr::Rax, static_cast<u32>(bad));
        vcpu.set_gpr(Gpr::Rdx, bad >> 32);
        exit(ExitReason::Xsetbv);
    }
    vcpu.set_gpr(Gpr::Rcx, 1);  // XCR1 and up are not writable
    vcpu.set_gpr(Gpr::Rax, 0x3);
    vcpu.set_gpr(Gpr::Rdx, 0);
    exit(ExitReason::Xsetbv);
    CHECK(vcpu.injected.size() == 5);
    CHECK(host.xcr0_loads.size() == 1);
    CHECK(handler.xcr0() == 0x3);
}

TEST_CASE_METHOD(Fixture, "exits: hypercalls, HLT, host interrupts and the exits that end a guest") {
    CHECK(exit(ExitReason::ExternalInterrupt) == GuestEnd::Running);
    CHECK(host.interrupt_windows == 1);
    CHECK(exit(ExitReason::Hlt) == GuestEnd::Halted);  // with RFLAGS.IF clear nothing can wake it
    vcpu.rflags_value |= 1u << 9;
    int before = vcpu.advanced;
    CHECK(exit(ExitReason::Hlt) == GuestEnd::Blocked);
    CHECK(vcpu.advanced == before + 1);  // it resumes after the HLT, where the interrupt returns to
    CHECK(exit(ExitReason::InterruptWindow) == GuestEnd::Running);
    CHECK(exit(ExitReason::TripleFault) == GuestEnd::TripleFault);
    CHECK(exit(ExitReason::Stage2Fault) == GuestEnd::Stage2Fault);
    CHECK(exit(ExitReason::InvalidState) == GuestEnd::InvalidState);
    CHECK(exit(ExitReason::Exception) == GuestEnd::Unhandled);
    CHECK(exit(ExitReason::Other) == GuestEnd::Unhandled);
}

TEST_CASE("io ports: claims, overlaps, straddling accesses, release") {
    IoPortMap map;
    FakeConsole a, b;
    CHECK(map.claim(0x3f8, 8, a) == RangeStatus::Ok);
    CHECK(map.claim(0x3f8, 0, b) == RangeStatus::Empty);
    CHECK(map.claim(0x3ff, 1, b) == RangeStatus::Overlaps);
    CHECK(map.claim(0x3f0, 9, b) == RangeStatus::Overlaps);
    CHECK(map.claim(0xfffe, 3, b) == RangeStatus::Wraps);
    CHECK(map.claim(0xffff, 1, b) == RangeStatus::Ok);
    CHECK(map.claim(0x400, 4, b) == RangeStatus::Ok);  // adjacent is fine
    CHECK(map.find(0x3f8, 1) == &a);
    CHECK(map.find(0x3fc, 4) == &a);
    CHECK(map.find(0x3fe, 4) == nullptr);  // straddles two owners
    CHECK(map.find(0x3f7, 2) == nullptr);  // starts in a hole
    CHECK(map.find(0xffff, 1) == &b);
    CHECK(map.find(0xffff, 2) == nullptr);  // runs past the last port
    CHECK(map.release(0x3f8));
    CHECK_FALSE(map.release(0x3f8));
    CHECK(map.find(0x3f8, 1) == nullptr);
    for (u16 i = 0; map.claim(static_cast<u16>(0x1000 + i * 2), 1, a) == RangeStatus::Ok; ++i) {
        REQUIRE(i < IoPortMap::kCapacity);
    }
    CHECK(map.claim(0x8000, 1, a) == RangeStatus::Full);
}

namespace {

struct MsrFixture : Fixture {
    u64 read(u32 msr) {
        vcpu.set_gpr(Gpr::Rcx, msr);
        vcpu.set_gpr(Gpr::Rax, 0xdead);
        vcpu.set_gpr(Gpr::Rdx, 0xbeef);
        exit(ExitReason::MsrRead);
        return (vcpu.gpr(Gpr::Rdx) << 32) | vcpu.gpr(Gpr::Rax);
    }
    // True when the write completed, false when it raised #GP.
    bool write(u32 msr, u64 value) {
        const usize faults = vcpu.injected.size();
        vcpu.set_gpr(Gpr::Rcx, msr);
        vcpu.set_gpr(Gpr::Rax, static_cast<u32>(value));
        vcpu.set_gpr(Gpr::Rdx, value >> 32);
        exit(ExitReason::MsrWrite);
        return vcpu.injected.size() == faults;
    }
};

}  // namespace

TEST_CASE_METHOD(MsrFixture, "msrs: PAT takes the architectural memory types only") {
    CHECK(read(0x277) == 0x0007040600070406);
    CHECK(write(0x277, 0x0706050401000706));
    CHECK(vcpu.pat() == 0x0706050401000706);
    CHECK_FALSE(write(0x277, 0x0000000000000002));  // type 2 is reserved
    CHECK_FALSE(write(0x277, 0x0300000000000000));  // so is 3, in any entry
    CHECK_FALSE(write(0x277, 0x0000000000000806));  // bits 3-7 of an entry are reserved
    CHECK(vcpu.pat() == 0x0706050401000706);
}

TEST_CASE_METHOD(MsrFixture, "msrs: MTRRs: no ranges, a default type the guest may set") {
    CHECK(read(0xfe) == 0);  // MTRRCAP: no variable or fixed ranges, no WC
    CHECK_FALSE(write(0xfe, 0));
    CHECK(read(0x2ff) == 0);
    CHECK(write(0x2ff, (1u << 11) | 6));  // enabled, write-back
    CHECK(read(0x2ff) == ((1u << 11) | 6));
    CHECK_FALSE(write(0x2ff, 2));          // a reserved type
    CHECK_FALSE(write(0x2ff, 7));          // UC- is PAT's only
    CHECK_FALSE(write(0x2ff, 1u << 10));   // fixed ranges: there are none
    CHECK_FALSE(write(0x2ff, u64{1} << 40));
    CHECK(read(0x2ff) == ((1u << 11) | 6));
}

TEST_CASE_METHOD(MsrFixture, "msrs: APIC base, machine check, microcode, TSC, Intel-only MSRs") {
    CHECK(read(0x1b) == (0xfee00000 | (1u << 11) | (1u << 8)));  // enabled, bootstrap
    CHECK(write(0x1b, 0xfee00000 | (1u << 11) | (1u << 8)));  // rewriting it is fine
    CHECK_FALSE(write(0x1b, 0xfec00000 | (1u << 11)));       // moving it is not emulated
    CHECK(read(0x179) == 0);
    CHECK(read(0x17a) == 0);
    CHECK(write(0x17a, 0));
    CHECK_FALSE(write(0x17a, 1));
    CHECK_FALSE(write(0x179, 0));
    CHECK(write(0x8b, 0));
    CHECK(read(0x8b) == 0);
    CHECK(read(0x10) == 123456789);
    CHECK_FALSE(write(0x10, 0));
    // The policy's CPU is Intel (HostWithXsave): MISC_ENABLE and FEATURE_CONTROL exist.
    CHECK(read(0x1a0) == ((1u << 0) | (1u << 11) | (1u << 12)));
    CHECK(read(0x3a) == 1);  // locked, VMX off
    CHECK_FALSE(write(0x3a, 5));
    CHECK_FALSE(write(0x1a0, 0));
}

TEST_CASE("msrs: on an AMD guest the Intel-only MSRs are #GP, and only vCPU 0 is the bootstrap") {
    class AmdHost final : public cpuid::HostCpuid {
    public:
        cpuid::Registers query(u32 leaf, u32) const override {
            if (leaf == 0) return {0xd, 0x68747541, 0x444d4163, 0x69746e65};  // AuthenticAMD
            if (leaf == 0x80000000) return {0x80000008, 0, 0, 0};
            return {};
        }
    };
    cpuid::CpuidPolicy policy;
    REQUIRE(policy.init(AmdHost{}, {.vcpu_count = 2}) == cpuid::Status::Ok);
    REQUIRE(policy.amd());
    IoPortMap ports;
    emulate::MmioMap mmio;
    testing::FakeGuestMemory memory;
    FakeHost host;
    FakeVcpu vcpu;
    FakeHypercalls hypercalls;
    ExitHandler second({policy, ports, mmio, memory, {}, hypercalls, 7, false}, host, 1);
    ExitInfo info{};
    info.reason = ExitReason::MsrRead;
    vcpu.set_gpr(Gpr::Rcx, 0x1a0);
    second.handle(vcpu, info);
    vcpu.set_gpr(Gpr::Rcx, 0x3a);
    second.handle(vcpu, info);
    CHECK(vcpu.injected_vectors() == std::vector<u8>{13, 13});
    vcpu.set_gpr(Gpr::Rcx, 0x1b);
    second.handle(vcpu, info);
    CHECK(vcpu.gpr(Gpr::Rax) == (0xfee00000 | (1u << 11)));  // no BSP bit
}

TEST_CASE("virtual interrupts: highest vector first, the window while the guest cannot take one") {
    VirtualInterrupts irqs;
    FakeVcpu vcpu;
    CHECK_FALSE(irqs.pending());
    CHECK_FALSE(irqs.raise(2));   // NMI's vector: illegal for an interrupt
    CHECK_FALSE(irqs.raise(15));
    CHECK_FALSE(irqs.pending());
    REQUIRE(irqs.raise(0x30));
    REQUIRE(irqs.raise(0xf0));
    REQUIRE(irqs.raise(0x30));  // already pending: once
    REQUIRE(irqs.raise(0x41));
    CHECK(irqs.pending());

    vcpu.interruptible = false;  // IF clear, an STI shadow, or another event queued
    irqs.deliver(vcpu);
    CHECK(vcpu.injected_interrupts.empty());
    CHECK(vcpu.interrupt_window_requested);
    CHECK(irqs.is_pending(0xf0));

    vcpu.interruptible = true;
    std::vector<u8> taken;
    while (irqs.pending()) {
        irqs.deliver(vcpu);
        REQUIRE(vcpu.injected_interrupts.size() == 1);
        taken.push_back(vcpu.injected_interrupts.back());
        CHECK(vcpu.interrupt_window_requested == irqs.pending());
        vcpu.injected_interrupts.clear();  // the guest took it
    }
    CHECK(taken == std::vector<u8>{0xf0, 0x41, 0x30});
    CHECK_FALSE(irqs.is_pending(0x30));
    CHECK_FALSE(vcpu.interrupt_window_requested);

    // Every vector from 16 up, across all four words of the register.
    for (int v = 255; v >= 16; --v) REQUIRE(irqs.raise(static_cast<u8>(v)));
    for (int v = 255; v >= 16; --v) {
        irqs.deliver(vcpu);
        REQUIRE(vcpu.injected_interrupts.size() == 1);
        CHECK(vcpu.injected_interrupts.back() == v);
        vcpu.injected_interrupts.clear();
    }
    CHECK_FALSE(irqs.pending());

    // A vCPU that starts again forgets what was pending.
    REQUIRE(irqs.raise(0x20));
    REQUIRE(irqs.raise(0xff));
    irqs.clear();
    CHECK_FALSE(irqs.pending());
    CHECK_FALSE(irqs.is_pending(0xff));
    irqs.deliver(vcpu);
    CHECK(vcpu.injected_interrupts.empty());
}

namespace {

// A device register file: 8-byte registers, little-endian, that remembers every access.
class Registers final : public emulate::MmioHandler {
public:
    u64 read(u64 gpa, u8 size) override {
        ++reads;
        u64 value = 0;
        std::memcpy(&value, bytes + (gpa - kBase), size);
        return value;
    }
    void write(u64 gpa, u8 size, u64 value) override {
        ++writes;
        std::memcpy(bytes + (gpa - kBase), &value, size);
    }
    static constexpr u64 kBase = 0xfe000000;
    u8 bytes[64] = {};
    int reads = 0, writes = 0;
};

struct MmioFixture : Fixture {
    MmioFixture() {
        REQUIRE(mmio.claim(Registers::kBase, sizeof device.bytes, device) == RangeStatus::Ok);
        memory.add_ram(0, 0x10000);
        // 32-bit protected mode, paging off, flat code at 0x1000.
        vcpu.cr_values[0] = 1;
        vcpu.seg(SegmentRegister::Cs) = {0x08, 0, 0xffffffff, 0xc09b};
        vcpu.seg(SegmentRegister::Ds) = {0x10, 0, 0xffffffff, 0xc093};
        vcpu.seg(SegmentRegister::Ss) = {0x10, 0, 0xffffffff, 0xc093};
        vcpu.rip_value = 0x1000;
    }
    GuestEnd fault(const std::vector<u8>& code, u64 gpa, bool write, bool execute = false) {
        memory.write(0x1000, code.data(), code.size());
        ExitInfo info{};
        info.reason = ExitReason::Stage2Fault;
        info.stage2 = {gpa, !write && !execute, write, execute, false};
        return handler.handle(vcpu, info);
    }
    Registers device;
};

}  // namespace

TEST_CASE_METHOD(MmioFixture, "exits: a stage-2 fault in a device region is emulated through its handler") {
    vcpu.set_gpr(Gpr::Rax, Registers::kBase + 8);
    vcpu.set_gpr(Gpr::Rcx, 0x11223344);
    REQUIRE(fault({0x89, 0x08}, Registers::kBase + 8, true) == GuestEnd::Running);  // mov [eax], ecx
    CHECK(device.writes == 1);
    CHECK(device.bytes[8] == 0x44);
    CHECK(vcpu.rip_value == 0x1002);
    CHECK(vcpu.advanced == 0);  // the emulator moved RIP itself

    vcpu.rip_value = 0x1000;
    REQUIRE(fault({0x8b, 0x10}, Registers::kBase + 8, false) == GuestEnd::Running);  // mov edx, [eax]
    CHECK(vcpu.gpr(Gpr::Rdx) == 0x11223344);
}

TEST_CASE_METHOD(MmioFixture, "exits: stage-2 faults the emulator must not or cannot take end the guest") {
    vcpu.set_gpr(Gpr::Rax, Registers::kBase);
    SECTION("outside every device region") {
        CHECK(fault({0x89, 0x08}, 0xfd000000, true) == GuestEnd::Stage2Fault);
    }
    SECTION("an instruction fetch from a device region") {
        CHECK(fault({0x89, 0x08}, Registers::kBase, false, true) == GuestEnd::Stage2Fault);
    }
    SECTION("a string instruction") {
        CHECK(fault({0xf3, 0xa4}, Registers::kBase, true) == GuestEnd::BadMmio);  // rep movsb
        CHECK(handler.mmio_failure().status == emulate::MmioStatus::Undecodable);
    }
    SECTION("a read where the hardware saw a write") {
        CHECK(fault({0x8b, 0x10}, Registers::kBase, true) == GuestEnd::BadMmio);
        CHECK(handler.mmio_failure().status == emulate::MmioStatus::DirectionMismatch);
    }
    CHECK(device.reads + device.writes == 0);
    CHECK(vcpu.rip_value == 0x1000);
}

TEST_CASE_METHOD(MmioFixture, "exits: an instruction that can no longer be fetched raises the guest's #PF") {
    // Paging on (32-bit, CR3 at 0x2000, an empty page directory): the code is not mapped.
    vcpu.cr_values[0] = 0x80000001;
    vcpu.cr_values[3] = 0x2000;
    vcpu.set_gpr(Gpr::Rax, Registers::kBase);
    REQUIRE(fault({0x89, 0x08}, Registers::kBase, true) == GuestEnd::Running);
    CHECK(vcpu.injected_vectors() == std::vector<u8>{14});
    // Not present, supervisor; no I/D bit: 32-bit paging without SMEP has none (SDM Vol. 3A 4.7).
    CHECK(vcpu.injected.back().error_code == 0);
    CHECK(vcpu.cr_values[2] == 0x1000);
    CHECK(device.reads + device.writes == 0);
}

namespace {

// A vCPU in 64-bit mode at CPL 0, as a PVH guest is once it runs its kernel.
struct HypercallFixture : Fixture {
    HypercallFixture() {
        vcpu.efer_value = (1u << 8) | (1u << 10);
        vcpu.seg(SegmentRegister::Cs) = {0x08, 0, 0xffffffff, 0xa09b};  // L
        vcpu.seg(SegmentRegister::Ss) = {0x10, 0, 0xffffffff, 0xc093};
    }
    GuestEnd call(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0) {
        vcpu.set_gpr(Gpr::Rax, number);
        vcpu.set_gpr(Gpr::Rdi, a0);
        vcpu.set_gpr(Gpr::Rsi, a1);
        vcpu.set_gpr(Gpr::Rdx, a2);
        vcpu.set_gpr(Gpr::R10, a3);
        vcpu.set_gpr(Gpr::R8, a4);
        return exit(ExitReason::Hypercall);
    }
};

}  // namespace

TEST_CASE_METHOD(HypercallFixture, "hypercalls: the registers of the ABI reach the handler, RAX takes the result") {
    REQUIRE(call(LAMINA_HYPERCALL_vcpu_set_timer, 100) == GuestEnd::Running);
    CHECK(hypercalls.called == std::vector<std::string>{"vcpu_set_timer"});
    CHECK(vcpu.gpr(Gpr::Rax) == LAMINA_HYPERCALL_vcpu_set_timer + 100);
    CHECK(vcpu.advanced == 1);
    // Five arguments, in RDI RSI RDX R10 R8 order (evtchn_bind_virq takes two: a check of both).
    REQUIRE(call(LAMINA_HYPERCALL_evtchn_bind_virq, 1, 0) == GuestEnd::Running);
    CHECK(vcpu.gpr(Gpr::Rax) == LAMINA_HYPERCALL_evtchn_bind_virq + 1);
}

TEST_CASE_METHOD(HypercallFixture, "hypercalls: the caller the dispatcher sees: CPL, mode, domain, privilege") {
    hypercall::Caller seen{};
    hypercalls.on_call = [&](const hypercall::Caller& c) {
        seen = c;
        return 0;
    };
    call(LAMINA_HYPERCALL_version);
    CHECK(seen.domain_id == 7);
    CHECK_FALSE(seen.control_domain);
    CHECK(seen.cpl == 0);
    CHECK(seen.long_mode);

    SECTION("user mode is refused with EPERM") {
        vcpu.seg(SegmentRegister::Ss).attributes = 0xc0f3;  // DPL 3
        hypercalls.called.clear();
        call(LAMINA_HYPERCALL_version);
        CHECK(hypercalls.called.empty());
        CHECK(static_cast<i64>(vcpu.gpr(Gpr::Rax)) == -LAMINA_EPERM);
        CHECK(vcpu.advanced == 2);
    }
    SECTION("a control-domain call from another domain is refused") {
        hypercalls.called.clear();
        call(LAMINA_HYPERCALL_host_info, 0x1000);
        CHECK(hypercalls.called.empty());
        CHECK(static_cast<i64>(vcpu.gpr(Gpr::Rax)) == -LAMINA_EPERM);
    }
    SECTION("32-bit code has no calling convention") {
        vcpu.seg(SegmentRegister::Cs).attributes = 0xc09b;
        call(LAMINA_HYPERCALL_version);
        CHECK(static_cast<i64>(vcpu.gpr(Gpr::Rax)) == -LAMINA_ENOSYS);
    }
}

TEST_CASE_METHOD(HypercallFixture, "hypercalls: a continuation re-executes the call; a handler may block or end the vCPU") {
    hypercalls.on_call = [&](const hypercall::Caller& c) { return c.continue_with({u64{42}}); };
    REQUIRE(call(LAMINA_HYPERCALL_evtchn_bind_virq, 1, 2) == GuestEnd::Running);
    CHECK(vcpu.advanced == 0);
    CHECK(vcpu.gpr(Gpr::Rax) == LAMINA_HYPERCALL_evtchn_bind_virq);  // the number stays
    CHECK(vcpu.gpr(Gpr::Rdi) == 42);
    CHECK(vcpu.gpr(Gpr::Rsi) == 2);

    hypercalls.on_call = [&](const hypercall::Caller&) {
        handler.request(GuestEnd::Blocked);
        return 0;
    };
    CHECK(call(LAMINA_HYPERCALL_vcpu_block) == GuestEnd::Blocked);
    CHECK(vcpu.advanced == 1);
    hypercalls.on_call = nullptr;
    CHECK(call(LAMINA_HYPERCALL_version) == GuestEnd::Running);  // the request was for one call
}

TEST_CASE_METHOD(HypercallFixture, "hypercalls: the hypercall-page MSR is write-only and takes what the host accepts") {
    vcpu.set_gpr(Gpr::Rcx, LAMINA_HYPERCALL_PAGE_MSR);
    vcpu.set_gpr(Gpr::Rax, 0x5000);
    vcpu.set_gpr(Gpr::Rdx, 0);
    exit(ExitReason::MsrWrite);
    CHECK(host.hypercall_pages == std::vector<u64>{0x5000});
    CHECK(vcpu.injected.empty());
    CHECK(vcpu.advanced == 1);
    vcpu.set_gpr(Gpr::Rax, 0x5001);
    exit(ExitReason::MsrWrite);
    exit(ExitReason::MsrRead);
    CHECK(vcpu.injected_vectors() == std::vector<u8>{13, 13});
    CHECK(vcpu.advanced == 1);
}
