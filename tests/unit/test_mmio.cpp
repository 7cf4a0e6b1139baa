#include <catch2/catch.hpp>

#include "fake_guest_memory.h"
#include "fake_vcpu.h"

#include <hypervisor/emulate/mmio.h>

#include <vector>

using namespace lamina;
using namespace lamina::emulate;
using lamina::testing::FakeGuestMemory;
using lamina::testing::FakeVcpu;

namespace {

// RFLAGS
constexpr u64 CF = 1u << 0, PF = 1u << 2, AF = 1u << 4, ZF = 1u << 6, SF = 1u << 7, OF = 1u << 11;
constexpr u64 kFixed = 1u << 1, kIf = 1u << 9, kDf = 1u << 10;

constexpr u64 P = 1, W = 2, U = 4;
constexpr u64 kCr0Pe = 1u << 0, kCr0Wp = 1u << 16, kCr0Pg = 1u << 31;
constexpr u64 kCr4Pae = 1u << 5;
constexpr u64 kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNxe = 1u << 11;

// Segment attributes in the VMX layout: type, S, DPL, P, L, D.
constexpr u16 kCode64 = 0xb | (1u << 4) | (1u << 7) | (1u << 13);
constexpr u16 kCode32 = 0xb | (1u << 4) | (1u << 7) | (1u << 14);
constexpr u16 kCode16 = 0xb | (1u << 4) | (1u << 7);
constexpr u16 kData = 0x3 | (1u << 4) | (1u << 7);
constexpr u16 kUserData = kData | (3u << 5);

struct DeviceAccess {
    bool write;
    u64 gpa;
    u8 size;
    u64 value;
    bool operator==(const DeviceAccess&) const = default;
};

// A device that records every access and answers reads with `reads_as` whole: the emulator must
// keep only the access's bytes.
class FakeDevice final : public MmioHandler {
public:
    u64 read(u64 gpa, u8 size) override {
        log.push_back({false, gpa, size, 0});
        return reads_as;
    }
    void write(u64 gpa, u8 size, u64 value) override { log.push_back({true, gpa, size, value}); }

    u64 reads_as = 0;
    std::vector<DeviceAccess> log;
};

DeviceAccess read_of(u64 gpa, u8 size) { return {false, gpa, size, 0}; }
DeviceAccess write_of(u64 gpa, u8 size, u64 value) { return {true, gpa, size, value}; }

constexpr u64 kGpa = 0xfed00040;
constexpr u64 kRip = 0x401000;

// Decodes `bytes` and executes them against the device; RIP must land after them.
struct Executor {
    Executor() {
        vcpu.rip_value = kRip;
        vcpu.rflags_value = kFixed | kIf;
    }
    void run(std::vector<u8> bytes, CodeMode mode = CodeMode::Bits64) {
        Instruction insn;
        REQUIRE(decode_instruction(bytes.data(), bytes.size(), mode, insn) == DecodeStatus::Ok);
        const u64 rip = vcpu.rip_value;
        execute(vcpu, insn, kGpa, device);
        CHECK(vcpu.rip_value == rip + bytes.size());
        CHECK(vcpu.advanced == 0);  // never advance_rip(): the backend knows only its own exits
    }
    u64 flags() const { return vcpu.rflags_value & (CF | PF | AF | ZF | SF | OF); }

    FakeVcpu vcpu;
    FakeDevice device;
};

}  // namespace

TEST_CASE("mmio map: claims, overlaps, wrap-around, straddling accesses, release") {
    MmioMap map;
    FakeDevice a, b;
    CHECK(map.claim(0xfec00000, 0x1000, a) == RangeStatus::Ok);
    CHECK(map.claim(0xfed00000, 0, b) == RangeStatus::Empty);
    CHECK(map.claim(0xfec00fff, 1, b) == RangeStatus::Overlaps);
    CHECK(map.claim(0xfebff000, 0x1001, b) == RangeStatus::Overlaps);
    CHECK(map.claim(0xfeb00000, 0x200000, b) == RangeStatus::Overlaps);  // around it
    CHECK(map.claim(0xffffffff'fffff000, 0x1000, b) == RangeStatus::Wraps);
    CHECK(map.claim(~u64{0}, 2, b) == RangeStatus::Wraps);
    CHECK(map.claim(0xfec01000, 0x400, b) == RangeStatus::Ok);  // adjacent is fine
    CHECK(map.claim(0xffffffff'ffff0000, 0xffff, b) == RangeStatus::Ok);

    CHECK(map.find(0xfec00000, 4) == &a);
    CHECK(map.find(0xfec00ff8, 8) == &a);
    CHECK(map.find(0xfec00ffc, 8) == nullptr);  // straddles two owners
    CHECK(map.find(0xfebffffe, 4) == nullptr);  // starts in a hole
    CHECK(map.find(0xfec013fe, 4) == nullptr);  // runs into a hole
    CHECK(map.find(0xfec01000, 1) == &b);
    CHECK(map.find(0xffffffff'fffffffe, 1) == &b);
    CHECK(map.find(0xffffffff'fffffffe, 2) == nullptr);  // past the region's end
    CHECK(map.find(0xffffffff'ffffffff, 8) == nullptr);  // past 2^64

    CHECK(map.release(0xfec00000));
    CHECK_FALSE(map.release(0xfec00000));
    CHECK_FALSE(map.release(0xfec01004));  // only a region's start releases it
    CHECK(map.find(0xfec00000, 4) == nullptr);
    CHECK(map.find(0xfec01000, 4) == &b);
    usize claimed = 2;
    for (u64 gpa = 0x1'0000'0000; map.claim(gpa, 0x1000, a) == RangeStatus::Ok; gpa += 0x2000) {
        REQUIRE(++claimed <= MmioMap::kCapacity);
    }
    CHECK(claimed == MmioMap::kCapacity);
    CHECK(map.claim(0x2000'0000, 1, a) == RangeStatus::Full);
}

TEST_CASE("mmio execute: loads write back by the register rules and keep only the access's bytes") {
    Executor x;
    x.device.reads_as = 0xaaaabbbb'12345678;
    x.vcpu.set_gpr(Gpr::Rax, ~u64{0});
    x.run({0x8b, 0x03});  // mov eax, [rbx]: a 32-bit destination zero-extends
    CHECK(x.device.log == std::vector{read_of(kGpa, 4)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0x12345678);

    x.vcpu.set_gpr(Gpr::Rax, ~u64{0});
    x.run({0x66, 0x8b, 0x03});  // mov ax, [rbx]: 16 bits keep the rest
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0xffffffff'ffff5678);

    x.vcpu.set_gpr(Gpr::Rdx, 0x11223344'55667788);
    x.run({0x8a, 0x33});  // mov dh, [rbx]
    CHECK(x.vcpu.gpr(Gpr::Rdx) == 0x11223344'55667888);
    x.vcpu.set_gpr(Gpr::Rsi, 0x11223344'55667788);
    x.run({0x40, 0x8a, 0x33});  // mov sil, [rbx]
    CHECK(x.vcpu.gpr(Gpr::Rsi) == 0x11223344'55667778);
    CHECK(x.vcpu.gpr(Gpr::Rdx) == 0x11223344'55667888);  // DH was not touched again

    x.run({0x4c, 0x8b, 0x03});  // mov r8, [rbx]
    CHECK(x.vcpu.gpr(Gpr::R8) == 0xaaaabbbb'12345678);
    CHECK(x.device.log.back() == read_of(kGpa, 8));

    x.vcpu.set_gpr(Gpr::Rax, 0);
    x.run({0xa0, 0x40, 0x00, 0xd0, 0xfe, 0x00, 0x00, 0x00, 0x00});  // mov al, [0xfed00040]
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0x78);
    CHECK(x.device.log.back() == read_of(kGpa, 1));
    CHECK(x.flags() == 0);  // MOV leaves the flags alone
}

TEST_CASE("mmio execute: MOVZX, MOVSX and MOVSXD extend from the access size") {
    Executor x;
    struct Case {
        std::vector<u8> bytes;
        u64 device_value;
        Gpr reg;
        u64 expected;
    };
    const Case cases[] = {
        {{0x0f, 0xb6, 0x03}, 0xffffff80, Gpr::Rax, 0x80},                          // movzx eax, byte
        {{0x48, 0x0f, 0xb7, 0x03}, 0xffff8001, Gpr::Rax, 0x8001},                  // movzx rax, word
        {{0x66, 0x0f, 0xb6, 0x03}, 0x80, Gpr::Rax, 0xffffffff'ffff0080},           // movzx ax, byte: keeps 63:16
        {{0x0f, 0xbe, 0x03}, 0x80, Gpr::Rax, 0x00000000'ffffff80},                 // movsx eax, byte: then zero-extends
        {{0x48, 0x0f, 0xbe, 0x0b}, 0x80, Gpr::Rcx, 0xffffffff'ffffff80},           // movsx rcx, byte
        {{0x48, 0x0f, 0xbf, 0x0b}, 0x7fff, Gpr::Rcx, 0x7fff},                      // movsx rcx, word (positive)
        {{0x48, 0x0f, 0xbf, 0x0b}, 0x8000, Gpr::Rcx, 0xffffffff'ffff8000},         // movsx rcx, word
        {{0x66, 0x0f, 0xbe, 0x03}, 0x80, Gpr::Rax, 0xffffffff'ffffff80},           // movsx ax, byte
        {{0x48, 0x63, 0x13}, 0x1'80000000, Gpr::Rdx, 0xffffffff'80000000},         // movsxd rdx, dword
        {{0x48, 0x63, 0x13}, 0x7fffffff, Gpr::Rdx, 0x7fffffff},
    };
    for (const Case& c : cases) {
        x.vcpu.set_gpr(c.reg, ~u64{0});
        x.device.reads_as = c.device_value;
        x.run(c.bytes);
        CHECK(x.vcpu.gpr(c.reg) == c.expected);
    }
}

TEST_CASE("mmio execute: stores write the register or immediate with the access size") {
    Executor x;
    x.vcpu.set_gpr(Gpr::Rax, 0x11223344'55667788);
    x.run({0x89, 0x03});        // mov [rbx], eax
    x.run({0x88, 0x23});        // mov [rbx], ah
    x.run({0x66, 0x89, 0x03});  // mov [rbx], ax
    x.run({0x48, 0x89, 0x03});  // mov [rbx], rax
    x.run({0xc7, 0x03, 0xef, 0xbe, 0xad, 0xde});              // mov dword [rbx], 0xdeadbeef
    x.run({0x48, 0xc7, 0x03, 0xfe, 0xff, 0xff, 0xff});        // mov qword [rbx], -2
    x.run({0xc6, 0x03, 0x80});                                // mov byte [rbx], 0x80
    x.run({0x66, 0xc7, 0x03, 0x34, 0x12});                    // mov word [rbx], 0x1234
    x.run({0xa3, 0x40, 0x00, 0xd0, 0xfe}, CodeMode::Bits32);  // mov [0xfed00040], eax
    CHECK(x.device.log == std::vector{write_of(kGpa, 4, 0x55667788), write_of(kGpa, 1, 0x77),
                                      write_of(kGpa, 2, 0x7788), write_of(kGpa, 8, 0x11223344'55667788),
                                      write_of(kGpa, 4, 0xdeadbeef), write_of(kGpa, 8, 0xffffffff'fffffffe),
                                      write_of(kGpa, 1, 0x80), write_of(kGpa, 2, 0x1234),
                                      write_of(kGpa, 4, 0x55667788)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0x11223344'55667788);
    CHECK(x.flags() == 0);
}

TEST_CASE("mmio execute: XCHG reads, then writes, then loads the register") {
    Executor x;
    x.device.reads_as = 0xcafef00d'12345678;
    x.vcpu.set_gpr(Gpr::Rax, 0xffffffff'aabbccdd);
    x.run({0x87, 0x03});  // xchg [rbx], eax
    CHECK(x.device.log == std::vector{read_of(kGpa, 4), write_of(kGpa, 4, 0xaabbccdd)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0x12345678);
    x.device.log.clear();
    x.vcpu.set_gpr(Gpr::Rbx, 0x1122);
    x.run({0x86, 0x3b});  // xchg [rbx], bh
    CHECK(x.device.log == std::vector{read_of(kGpa, 1), write_of(kGpa, 1, 0x11)});
    CHECK(x.vcpu.gpr(Gpr::Rbx) == 0x7822);
}

TEST_CASE("mmio execute: ADD, SUB and CMP set CF, PF, AF, ZF, SF and OF as the SDM says") {
    Executor x;
    struct Case {
        const char* what;
        std::vector<u8> bytes;
        u64 in_memory;
        u64 rax;
        u64 flags;
    };
    // Operands: memory first for the r/m forms, RAX first for the reg forms.
    const Case cases[] = {
        {"add 0xffffffff + 1: carry, zero, adjust", {0x01, 0x03}, 0xffffffff, 1, CF | ZF | AF | PF},
        {"add 0x7fffffff + 1: overflow into the sign", {0x01, 0x03}, 0x7fffffff, 1, OF | SF | AF | PF},
        {"add 0x80000000 + 0x80000000: carry and overflow", {0x01, 0x03}, 0x80000000, 0x80000000, CF | OF | ZF | PF},
        {"add 0x0f + 0x01: adjust only; 0x10 has odd parity", {0x01, 0x03}, 0x0f, 0x01, AF},
        {"add 1 + 2: 3 has even parity", {0x01, 0x03}, 1, 2, PF},
        {"add word 0xffff + 1", {0x66, 0x01, 0x03}, 0xffff, 1, CF | ZF | AF | PF},
        {"add byte 0x7f + 1", {0x00, 0x03}, 0x7f, 1, OF | SF | AF},
        {"add qword: the carry out of bit 63", {0x48, 0x01, 0x03}, ~u64{0}, 2, CF | AF},
        {"sub eax - [m]: 0 - 1 borrows", {0x2b, 0x03}, 1, 0, CF | SF | AF | PF},
        {"sub [m] - eax: 0x80000000 - 1 overflows", {0x29, 0x03}, 0x80000000, 1, OF | AF | PF},
        {"cmp [m], eax: equal", {0x39, 0x03}, 0x1234, 0x1234, ZF | PF},
        {"cmp [m], eax: 0x80000000 - 1", {0x39, 0x03}, 0x80000000, 1, OF | AF | PF},
        {"cmp eax, [m]: 1 - 0x80000000, the other way round", {0x3b, 0x03}, 0x80000000, 1, CF | OF | SF},
        {"cmp byte [m], al: 0x10 - 0x01 borrows from bit 4", {0x38, 0x03}, 0x10, 0x01, AF | PF},
        {"cmp qword [m], rax: 0 - 0x8000000000000000", {0x48, 0x39, 0x03}, 0, u64{1} << 63, CF | OF | SF | PF},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        x.vcpu.rflags_value = kFixed | kIf | kDf | CF | PF | AF | ZF | SF | OF;  // all must be recomputed
        x.device.reads_as = c.in_memory;
        x.vcpu.set_gpr(Gpr::Rax, c.rax);
        x.run(c.bytes);
        CHECK(x.flags() == c.flags);
        CHECK((x.vcpu.rflags_value & (kFixed | kIf | kDf)) == (kFixed | kIf | kDf));
    }
}

TEST_CASE("mmio execute: results go to memory or the register; CMP and TEST only read") {
    Executor x;
    x.device.reads_as = 0xffffffff;
    x.vcpu.set_gpr(Gpr::Rax, 0xdead0000'00000001);
    x.run({0x01, 0x03});  // add [rbx], eax
    CHECK(x.device.log == std::vector{read_of(kGpa, 4), write_of(kGpa, 4, 0)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0xdead0000'00000001);

    x.device.log.clear();
    x.device.reads_as = 1;
    x.vcpu.set_gpr(Gpr::Rax, 0xdead0000'00000000);
    x.run({0x2b, 0x03});  // sub eax, [rbx]: the result zero-extends into RAX
    CHECK(x.device.log == std::vector{read_of(kGpa, 4)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0xffffffff);

    x.device.log.clear();
    x.vcpu.set_gpr(Gpr::Rax, 0x1234);
    x.run({0x39, 0x03});  // cmp [rbx], eax
    x.run({0x3b, 0x03});  // cmp eax, [rbx]
    x.run({0x48, 0x83, 0x3b, 0xff});  // cmp qword [rbx], -1
    x.run({0x85, 0x03});  // test [rbx], eax
    x.run({0xf6, 0x03, 0x80});  // test byte [rbx], 0x80
    CHECK(x.device.log == std::vector{read_of(kGpa, 4), read_of(kGpa, 4), read_of(kGpa, 8), read_of(kGpa, 4),
                                      read_of(kGpa, 1)});
    CHECK(x.vcpu.gpr(Gpr::Rax) == 0x1234);

    x.device.log.clear();
    x.device.reads_as = 0;
    x.run({0x48, 0x83, 0x2b, 0x01});  // sub qword [rbx], 1
    CHECK(x.device.log.back() == write_of(kGpa, 8, ~u64{0}));
    CHECK(x.flags() == (CF | SF | AF | PF));
    x.device.reads_as = 0x7f;
    x.run({0x80, 0x03, 0x01});  // add byte [rbx], 1
    CHECK(x.device.log.back() == write_of(kGpa, 1, 0x80));
    CHECK(x.flags() == (OF | SF | AF));
}

TEST_CASE("mmio execute: AND, OR, XOR and TEST clear CF, OF and AF") {
    Executor x;
    struct Case {
        const char* what;
        std::vector<u8> bytes;
        u64 in_memory;
        u64 rax;
        u64 result;  // what is written (memory destination) or loaded (register destination)
        u64 flags;
    };
    const Case cases[] = {
        {"and [m], eax", {0x21, 0x03}, 0xf0f0, 0xff00, 0xf000, PF},
        {"or word [m], 0x8000", {0x66, 0x81, 0x0b, 0x00, 0x80}, 0x0001, 0, 0x8001, SF},
        {"xor eax, [m]", {0x33, 0x03}, 0xffffffff, ~u64{0}, 0, ZF | PF},
        {"or byte [m], 0x03", {0x80, 0x0b, 0x03}, 0x10, 0, 0x13, 0},
        {"and rax, [m]", {0x48, 0x23, 0x03}, u64{1} << 63, ~u64{0}, u64{1} << 63, SF | PF},
        {"xor [m], eax with an imm8 -1", {0x83, 0x33, 0xff}, 0x0f0f0f0f, 0, 0xf0f0f0f0, SF | PF},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        x.vcpu.rflags_value = kFixed | CF | AF | OF | ZF;
        x.device.log.clear();
        x.device.reads_as = c.in_memory;
        x.vcpu.set_gpr(Gpr::Rax, c.rax);
        x.run(c.bytes);
        CHECK(x.flags() == c.flags);
        Instruction insn;
        REQUIRE(decode_instruction(c.bytes.data(), c.bytes.size(), CodeMode::Bits64, insn) == DecodeStatus::Ok);
        if (insn.writes_memory()) {
            CHECK(x.device.log.back() == write_of(kGpa, insn.access_size, c.result));
        } else {
            CHECK(x.device.log.size() == 1);
            CHECK(x.vcpu.gpr(Gpr::Rax) == c.result);
        }
    }
    x.vcpu.rflags_value = kFixed | CF | OF;
    x.device.reads_as = 0x80;
    x.vcpu.set_gpr(Gpr::Rax, 0x80);
    x.run({0x85, 0x03});  // test [rbx], eax: bit 7 is not the sign of 32 bits
    CHECK(x.flags() == 0);
    x.run({0xf6, 0x03, 0x80});  // test byte [rbx], 0x80
    CHECK(x.flags() == SF);
    x.run({0xf6, 0x03, 0x01});
    CHECK(x.flags() == (ZF | PF));
}

TEST_CASE("mmio execute: RIP wraps at 4 GiB outside 64-bit mode") {
    Executor x;
    x.vcpu.rip_value = 0xfffffffe;
    Instruction insn;
    const u8 bytes[] = {0x8b, 0x43, 0x10};
    REQUIRE(decode_instruction(bytes, sizeof bytes, CodeMode::Bits32, insn) == DecodeStatus::Ok);
    execute(x.vcpu, insn, kGpa, x.device);
    CHECK(x.vcpu.rip_value == 1);
    x.vcpu.rip_value = 0xfffffffe;
    REQUIRE(decode_instruction(bytes, sizeof bytes, CodeMode::Bits64, insn) == DecodeStatus::Ok);
    execute(x.vcpu, insn, kGpa, x.device);
    CHECK(x.vcpu.rip_value == 0x1'00000001);
}

namespace {

// A 64-bit guest: 4-level tables mapping the code at kCode (gpa 0x20000, supervisor) and a
// device page at kDevice.
struct Guest {
    static constexpr u64 kCode = 0x400000;
    static constexpr u64 kCodeGpa = 0x20000;
    static constexpr u64 kDevice = 0xfed00000;
    static constexpr u64 kTables = 0x1000;  // PML4, PDPT, PD, PT

    Guest() {
        memory.add_ram(kTables, 0x4000);
        memory.write64(0x1000, 0x2000 | P | W | U);
        memory.write64(0x2000, 0x3000 | P | W | U);
        memory.write64(0x3000 + 2 * 8, 0x4000 | P | W | U);  // 0x400000-0x5fffff
        memory.add_ram(kCodeGpa, 0x1000);
        map(kCode, kCodeGpa, P | W);
        vcpu.set_control_register(ControlRegister::Cr0, kCr0Pe | kCr0Pg | kCr0Wp);
        vcpu.set_control_register(ControlRegister::Cr3, kTables);
        vcpu.set_control_register(ControlRegister::Cr4, kCr4Pae);
        vcpu.efer_value = kEferLme | kEferLma | kEferNxe;
        vcpu.seg(SegmentRegister::Cs) = {0x10, 0, 0xffffffff, kCode64};
        vcpu.seg(SegmentRegister::Ss) = {0x18, 0, 0xffffffff, kData};
        vcpu.rip_value = kCode + 0x100;
        REQUIRE(devices.claim(kDevice, 0x1000, device) == RangeStatus::Ok);
    }
    void map(u64 linear, u64 gpa, u64 flags) { memory.write64(0x4000 + ((linear >> 12) & 511) * 8, gpa | flags); }
    void code(u64 gpa, std::vector<u8> bytes) { memory.write(gpa, bytes.data(), bytes.size()); }
    MmioResult emulate(u64 gpa, bool write_fault) {
        return emulate_mmio(vcpu, memory, devices, {40, true}, gpa, write_fault);
    }
    // Nothing happened: the vCPU and the device are as they were.
    void check_untouched(u64 rip) {
        CHECK(vcpu.rip_value == rip);
        CHECK(device.log.empty());
        CHECK(vcpu.injected.empty());
    }

    FakeGuestMemory memory;
    FakeVcpu vcpu;
    FakeDevice device;
    MmioMap devices;
};

}  // namespace

TEST_CASE("emulate_mmio: fetch through the guest's paging, decode, check, execute") {
    Guest g;
    g.code(Guest::kCodeGpa + 0x100, {0x8b, 0x43, 0x10});  // mov eax, [rbx+0x10]
    g.vcpu.set_gpr(Gpr::Rbx, 0xffffc900'00000f00);
    g.device.reads_as = 0xfeedface;
    MmioResult result = g.emulate(Guest::kDevice + 0xf10, false);
    CHECK(result.status == MmioStatus::Ok);
    CHECK(g.device.log == std::vector{read_of(Guest::kDevice + 0xf10, 4)});
    CHECK(g.vcpu.gpr(Gpr::Rax) == 0xfeedface);
    CHECK(g.vcpu.rip_value == Guest::kCode + 0x103);
    CHECK(g.vcpu.advanced == 0);

    SECTION("the fault's direction must be the instruction's") {
        g.vcpu.rip_value = Guest::kCode + 0x100;
        g.device.log.clear();
        CHECK(g.emulate(Guest::kDevice + 0xf10, true).status == MmioStatus::DirectionMismatch);
        g.code(Guest::kCodeGpa + 0x100, {0x89, 0x43, 0x10});  // mov [rbx+0x10], eax
        CHECK(g.emulate(Guest::kDevice + 0xf10, false).status == MmioStatus::DirectionMismatch);
        g.check_untouched(Guest::kCode + 0x100);
        // A read-modify-write may be either
        g.code(Guest::kCodeGpa + 0x100, {0x01, 0x43, 0x10});  // add [rbx+0x10], eax
        CHECK(g.emulate(Guest::kDevice + 0xf10, false).status == MmioStatus::Ok);
        g.vcpu.rip_value = Guest::kCode + 0x100;
        CHECK(g.emulate(Guest::kDevice + 0xf10, true).status == MmioStatus::Ok);
    }
    SECTION("the operand must be where the fault was") {
        g.vcpu.rip_value = Guest::kCode + 0x100;
        g.device.log.clear();
        g.vcpu.set_gpr(Gpr::Rbx, 0xffffc900'00000fee);  // starts 2 bytes before the faulting page
        CHECK(g.emulate(Guest::kDevice, false).status == MmioStatus::AddressMismatch);
        g.check_untouched(Guest::kCode + 0x100);
    }
    SECTION("the whole access must belong to one device") {
        g.vcpu.rip_value = Guest::kCode + 0x100;
        g.device.log.clear();
        g.vcpu.set_gpr(Gpr::Rbx, 0xffffc900'00000fee);  // the last 2 bytes of the region, and 2 after
        CHECK(g.emulate(Guest::kDevice + 0xffe, false).status == MmioStatus::Unclaimed);
        g.vcpu.set_gpr(Gpr::Rbx, 0xffffc900'00000f00);
        CHECK(g.emulate(0xfee00f10, false).status == MmioStatus::Unclaimed);
        g.check_untouched(Guest::kCode + 0x100);
    }
    SECTION("in 64-bit mode FS and GS bases count, the others do not") {
        g.vcpu.rip_value = Guest::kCode + 0x100;
        g.device.log.clear();
        g.code(Guest::kCodeGpa + 0x100, {0x65, 0x8b, 0x03});  // mov eax, gs:[rbx]
        g.vcpu.seg(SegmentRegister::Gs).base = 0xffff8880'00000010;
        g.vcpu.seg(SegmentRegister::Ds).base = 0x8;
        g.vcpu.set_gpr(Gpr::Rbx, 0x1000'00000f00);
        CHECK(g.emulate(Guest::kDevice + 0xf10, false).status == MmioStatus::Ok);
        g.code(Guest::kCodeGpa + 0x100, {0x8b, 0x43, 0x10});  // mov eax, [rbx+0x10]: DS has no base
        g.vcpu.rip_value = Guest::kCode + 0x100;
        CHECK(g.emulate(Guest::kDevice + 0xf10, false).status == MmioStatus::Ok);
        CHECK(g.device.log == std::vector{read_of(Guest::kDevice + 0xf10, 4), read_of(Guest::kDevice + 0xf10, 4)});
    }
    SECTION("an instruction the emulator does not handle") {
        g.vcpu.rip_value = Guest::kCode + 0x100;
        g.device.log.clear();
        g.code(Guest::kCodeGpa + 0x100, {0xf3, 0xa5});  // rep movsd
        result = g.emulate(Guest::kDevice + 0xf10, false);
        CHECK(result.status == MmioStatus::Undecodable);
        CHECK(result.decode == DecodeStatus::Unsupported);
        g.check_untouched(Guest::kCode + 0x100);
    }
}

TEST_CASE("emulate_mmio: an instruction across a page boundary is fetched page by page") {
    Guest g;
    const u64 second_gpa = 0x50000;  // not after the first page in guest-physical memory
    g.memory.add_ram(second_gpa, 0x1000);
    g.map(Guest::kCode + 0x1000, second_gpa, P);
    g.vcpu.rip_value = Guest::kCode + 0xffd;
    g.code(Guest::kCodeGpa + 0xffd, {0xc7, 0x43, 0x10});  // mov dword [rbx+0x10], 0x12345678
    g.code(second_gpa, {0x78, 0x56, 0x34, 0x12});
    g.vcpu.set_gpr(Gpr::Rbx, 0x7f00'00000100);
    MmioResult result = g.emulate(Guest::kDevice + 0x110, true);
    CHECK(result.status == MmioStatus::Ok);
    CHECK(g.device.log == std::vector{write_of(Guest::kDevice + 0x110, 4, 0x12345678)});
    CHECK(g.vcpu.rip_value == Guest::kCode + 0x1004);

    SECTION("a second page that is not mapped faults when the instruction needs it") {
        g.vcpu.rip_value = Guest::kCode + 0xffd;
        g.device.log.clear();
        g.map(Guest::kCode + 0x1000, 0, 0);
        result = g.emulate(Guest::kDevice + 0x110, true);
        CHECK(result.status == MmioStatus::Fault);
        CHECK(result.vector == kPageFaultVector);
        CHECK(result.error_code == page_fault::kFetch);  // not present, supervisor fetch
        CHECK(result.address == Guest::kCode + 0x1000);
        g.check_untouched(Guest::kCode + 0xffd);
    }
    SECTION("...and is no matter when the instruction ends before it") {
        g.vcpu.rip_value = Guest::kCode + 0xffd;
        g.device.log.clear();
        g.map(Guest::kCode + 0x1000, 0, 0);
        g.code(Guest::kCodeGpa + 0xffd, {0x89, 0x43, 0x10});  // mov [rbx+0x10], eax
        g.vcpu.set_gpr(Gpr::Rax, 7);
        CHECK(g.emulate(Guest::kDevice + 0x110, true).status == MmioStatus::Ok);
        CHECK(g.device.log == std::vector{write_of(Guest::kDevice + 0x110, 4, 7)});
        CHECK(g.vcpu.rip_value == Guest::kCode + 0x1000);
    }
    SECTION("a second page that is not RAM") {
        g.vcpu.rip_value = Guest::kCode + 0xffd;
        g.device.log.clear();
        g.map(Guest::kCode + 0x1000, Guest::kDevice, P);
        result = g.emulate(Guest::kDevice + 0x110, true);
        CHECK(result.status == MmioStatus::CodeNotInRam);
        CHECK(result.address == Guest::kDevice);
        g.check_untouched(Guest::kCode + 0xffd);
    }
}

TEST_CASE("emulate_mmio: fetches that fault give the caller the exception to inject") {
    Guest g;
    g.code(Guest::kCodeGpa + 0x100, {0x8b, 0x03});
    SECTION("code that is no longer mapped") {
        g.map(Guest::kCode, 0, 0);
        const MmioResult result = g.emulate(Guest::kDevice, false);
        CHECK(result.status == MmioStatus::Fault);
        CHECK(result.vector == kPageFaultVector);
        CHECK(result.error_code == page_fault::kFetch);
        CHECK(result.address == Guest::kCode + 0x100);
    }
    SECTION("user code (CPL 3 from SS.DPL) on a supervisor page") {
        g.vcpu.seg(SegmentRegister::Cs).attributes = kCode64 | (3u << 5);
        g.vcpu.seg(SegmentRegister::Ss).attributes = kUserData;
        const MmioResult result = g.emulate(Guest::kDevice, false);
        CHECK(result.status == MmioStatus::Fault);
        CHECK(result.error_code == (page_fault::kPresent | page_fault::kUser | page_fault::kFetch));
        g.map(Guest::kCode, Guest::kCodeGpa, P | U);
        CHECK(g.emulate(Guest::kDevice, false).status == MmioStatus::Ok);
    }
    SECTION("a non-canonical RIP is #GP(0)") {
        g.vcpu.rip_value = 0x00008000'00000000;
        const MmioResult result = g.emulate(Guest::kDevice, false);
        CHECK(result.status == MmioStatus::Fault);
        CHECK(result.vector == kGeneralProtectionVector);
        CHECK(result.error_code == 0);
    }
    SECTION("code in memory that is not RAM, or page tables there") {
        g.map(Guest::kCode, 0xfee00000, P);
        MmioResult result = g.emulate(Guest::kDevice, false);
        CHECK(result.status == MmioStatus::CodeNotInRam);
        CHECK(result.address == 0xfee00100);
        g.vcpu.set_control_register(ControlRegister::Cr3, 0x8000'0000);
        result = g.emulate(Guest::kDevice, false);
        CHECK(result.status == MmioStatus::CodeNotInRam);
        CHECK(result.address == 0x8000'0000);
    }
    for (auto status : {MmioStatus::Ok, MmioStatus::Fault, MmioStatus::CodeNotInRam, MmioStatus::Undecodable,
                        MmioStatus::DirectionMismatch, MmioStatus::AddressMismatch, MmioStatus::Unclaimed}) {
        CHECK(mmio_status_name(status)[0] != '?');
    }
}

TEST_CASE("emulate_mmio: 32-bit and real-mode code, with segment bases and no paging") {
    FakeGuestMemory memory;
    FakeVcpu vcpu;
    FakeDevice device;
    MmioMap devices;
    memory.add_ram(0x10000, 0x1000);
    vcpu.seg(SegmentRegister::Ss) = {0x18, 0, 0xffffffff, kData};

    SECTION("32-bit protected mode: CS base + EIP, a DS base in the operand") {
        REQUIRE(devices.claim(0xfec00000, 0x1000, device) == RangeStatus::Ok);
        vcpu.set_control_register(ControlRegister::Cr0, kCr0Pe);
        vcpu.seg(SegmentRegister::Cs) = {0x08, 0x10000, 0xffff, kCode32};
        vcpu.seg(SegmentRegister::Ds) = {0x20, 0x1000, 0xffffffff, kData};
        vcpu.rip_value = 0x100;
        memory.write(0x10100, std::vector<u8>{0x89, 0x43, 0x10}.data(), 3);  // mov [ebx+0x10], eax
        vcpu.set_gpr(Gpr::Rbx, 0xfebff000);
        vcpu.set_gpr(Gpr::Rax, 0x11223344'55667788);
        const MmioResult result = emulate_mmio(vcpu, memory, devices, {36, false}, 0xfec00010, true);
        CHECK(result.status == MmioStatus::Ok);
        CHECK(device.log == std::vector{write_of(0xfec00010, 4, 0x55667788)});
        CHECK(vcpu.rip_value == 0x103);
    }
    SECTION("real mode: CS:IP, DS:[BX+SI] at the VGA window") {
        REQUIRE(devices.claim(0xa0000, 0x20000, device) == RangeStatus::Ok);
        vcpu.seg(SegmentRegister::Cs) = {0x1000, 0x10000, 0xffff, kCode16};
        vcpu.seg(SegmentRegister::Ds) = {0xa000, 0xa0000, 0xffff, kData};
        vcpu.rip_value = 0x200;
        memory.write(0x10200, std::vector<u8>{0x8b, 0x00}.data(), 2);  // mov ax, [bx+si]
        vcpu.set_gpr(Gpr::Rbx, 0x10);
        vcpu.set_gpr(Gpr::Rsi, 0x4);
        vcpu.set_gpr(Gpr::Rax, 0x11223344'55667788);
        device.reads_as = 0xabcd;
        const MmioResult result = emulate_mmio(vcpu, memory, devices, {36, false}, 0xa0014, false);
        CHECK(result.status == MmioStatus::Ok);
        CHECK(device.log == std::vector{read_of(0xa0014, 2)});
        CHECK(vcpu.gpr(Gpr::Rax) == 0x11223344'5566abcd);
        CHECK(vcpu.rip_value == 0x202);
    }
}
