// Expected decodings: the byte sequences come from llvm-mc (-show-encoding) or the SDM Vol. 2
// encoding tables; the expected fields from the SDM.
#include <catch2/catch.hpp>

#include <hypervisor/emulate/instruction_decoder.h>

#include <iterator>
#include <vector>

using namespace lamina;
using namespace lamina::emulate;

namespace {

constexpr auto k16 = CodeMode::Bits16;
constexpr auto k32 = CodeMode::Bits32;
constexpr auto k64 = CodeMode::Bits64;

DecodeStatus status_of(std::vector<u8> bytes, CodeMode mode) {
    Instruction insn;
    return decode_instruction(bytes.data(), bytes.size(), mode, insn);
}

// Decodes bytes that must be exactly one supported instruction.
Instruction decode(std::vector<u8> bytes, CodeMode mode) {
    Instruction insn;
    REQUIRE(decode_instruction(bytes.data(), bytes.size(), mode, insn) == DecodeStatus::Ok);
    CHECK(insn.length == bytes.size());
    CHECK(insn.mode == mode);
    return insn;
}

u64 sext(i64 value) { return static_cast<u64>(value); }

}  // namespace

TEST_CASE("decoder: MOV loads and stores with ModRM, SIB and displacements (64-bit)") {
    // mov eax, [rbx+rcx*4+0x10]
    Instruction insn = decode({0x8b, 0x44, 0x8b, 0x10}, k64);
    CHECK(insn.operation == Operation::Mov);
    CHECK_FALSE(insn.memory_is_destination);
    CHECK_FALSE(insn.has_immediate);
    CHECK(insn.access_size == 4);
    CHECK(insn.operand_size == 4);
    CHECK(insn.extension == Extension::None);
    CHECK(insn.reg == Gpr::Rax);
    CHECK_FALSE(insn.high_byte);
    CHECK(insn.memory.segment == SegmentRegister::Ds);
    CHECK(insn.memory.address_size == 8);
    CHECK_FALSE(insn.memory.rip_relative);
    CHECK(insn.memory.has_base);
    CHECK(insn.memory.base == Gpr::Rbx);
    CHECK(insn.memory.has_index);
    CHECK(insn.memory.index == Gpr::Rcx);
    CHECK(insn.memory.scale == 4);
    CHECK(insn.memory.displacement == 0x10);
    CHECK(insn.reads_memory());
    CHECK_FALSE(insn.writes_memory());
    CHECK(insn.writes_register());

    // mov [rdi], al
    insn = decode({0x88, 0x07}, k64);
    CHECK(insn.memory_is_destination);
    CHECK(insn.access_size == 1);
    CHECK(insn.reg == Gpr::Rax);
    CHECK(insn.memory.base == Gpr::Rdi);
    CHECK_FALSE(insn.memory.has_index);
    CHECK(insn.memory.displacement == 0);
    CHECK_FALSE(insn.reads_memory());
    CHECK(insn.writes_memory());
    CHECK_FALSE(insn.writes_register());

    // mov [r12+r13*8-0x80], r9: REX.WRXB, a negative disp8
    insn = decode({0x4f, 0x89, 0x4c, 0xec, 0x80}, k64);
    CHECK(insn.access_size == 8);
    CHECK(insn.reg == Gpr::R9);
    CHECK(insn.memory.base == Gpr::R12);
    CHECK(insn.memory.index == Gpr::R13);
    CHECK(insn.memory.scale == 8);
    CHECK(insn.memory.displacement == sext(-0x80));

    // mov eax, [r12]: base 100 with REX.B needs a SIB; mov eax, [rax+r12]: index 100 with REX.X is R12
    insn = decode({0x41, 0x8b, 0x04, 0x24}, k64);
    CHECK(insn.memory.base == Gpr::R12);
    CHECK_FALSE(insn.memory.has_index);
    insn = decode({0x42, 0x8b, 0x04, 0x20}, k64);
    CHECK(insn.memory.base == Gpr::Rax);
    CHECK(insn.memory.has_index);
    CHECK(insn.memory.index == Gpr::R12);
    CHECK(insn.memory.scale == 1);

    // mov eax, [r13+0]: mod 01 is needed for R13 as base; mov eax, [0xfec00010] through a SIB
    // without base or index: the disp32 is sign-extended (REX.B does not make it R13)
    insn = decode({0x41, 0x8b, 0x45, 0x00}, k64);
    CHECK(insn.memory.base == Gpr::R13);
    CHECK(insn.memory.segment == SegmentRegister::Ds);  // R13 is not RBP
    insn = decode({0x41, 0x8b, 0x04, 0x25, 0x10, 0x00, 0xc0, 0xfe}, k64);
    CHECK_FALSE(insn.memory.has_base);
    CHECK_FALSE(insn.memory.has_index);
    CHECK_FALSE(insn.memory.rip_relative);
    CHECK(insn.memory.displacement == 0xffffffff'fec00010);
    // [r12+0x1000]: index R12 (REX.X), no base
    insn = decode({0x42, 0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00}, k64);
    CHECK_FALSE(insn.memory.has_base);
    CHECK(insn.memory.index == Gpr::R12);
    CHECK(insn.memory.displacement == 0x1000);
}

TEST_CASE("decoder: RIP-relative operands and the 67 prefix in 64-bit mode") {
    // mov [rip+0x1234], ax
    Instruction insn = decode({0x66, 0x89, 0x05, 0x34, 0x12, 0x00, 0x00}, k64);
    CHECK(insn.memory.rip_relative);
    CHECK_FALSE(insn.memory.has_base);
    CHECK(insn.memory.address_size == 8);
    CHECK(insn.memory.displacement == 0x1234);
    CHECK(insn.access_size == 2);
    // REX.B does not turn it into [r13]
    insn = decode({0x41, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff}, k64);
    CHECK(insn.memory.rip_relative);
    CHECK(insn.memory.displacement == sext(-16));
    // mov [eip+0x100], ecx
    insn = decode({0x67, 0x89, 0x0d, 0x00, 0x01, 0x00, 0x00}, k64);
    CHECK(insn.memory.rip_relative);
    CHECK(insn.memory.address_size == 4);
    CHECK(insn.reg == Gpr::Rcx);
    // mov ecx, [eax]
    insn = decode({0x67, 0x8b, 0x08}, k64);
    CHECK(insn.memory.address_size == 4);
    CHECK(insn.memory.base == Gpr::Rax);
    // The same ModRM outside 64-bit mode is an absolute disp32
    insn = decode({0x8b, 0x05, 0xb0, 0x00, 0xe0, 0xfe}, k32);
    CHECK_FALSE(insn.memory.rip_relative);
    CHECK_FALSE(insn.memory.has_base);
    CHECK(insn.memory.address_size == 4);
}

TEST_CASE("decoder: operand size from REX.W, 66 and the mode; REX counts only right before the opcode") {
    CHECK(decode({0x8b, 0x03}, k64).access_size == 4);
    CHECK(decode({0x66, 0x8b, 0x03}, k64).access_size == 2);
    CHECK(decode({0x66, 0x48, 0x8b, 0x03}, k64).access_size == 8);  // REX.W beats 66
    CHECK(decode({0x48, 0x66, 0x8b, 0x03}, k64).access_size == 2);  // that REX is ignored
    CHECK(decode({0x8b, 0x03}, k32).access_size == 4);
    CHECK(decode({0x66, 0x8b, 0x03}, k32).access_size == 2);
    CHECK(decode({0x8b, 0x07}, k16).access_size == 2);
    CHECK(decode({0x66, 0x8b, 0x07}, k16).access_size == 4);
    // An ignored REX.R does not extend the register either
    Instruction insn = decode({0x44, 0x3e, 0x8b, 0x03}, k64);
    CHECK(insn.reg == Gpr::Rax);
    // Only the last REX counts
    insn = decode({0x4c, 0x41, 0x8b, 0x03}, k64);
    CHECK(insn.reg == Gpr::Rax);
    CHECK(insn.memory.base == Gpr::R11);
    CHECK(insn.access_size == 4);
}

TEST_CASE("decoder: byte registers 4-7 are AH..BH without REX, SPL..DIL with any REX") {
    Instruction insn = decode({0x8a, 0x26}, k64);  // mov ah, [rsi]
    CHECK(insn.reg == Gpr::Rax);
    CHECK(insn.high_byte);
    insn = decode({0x40, 0x8a, 0x26}, k64);  // mov spl, [rsi]
    CHECK(insn.reg == Gpr::Rsp);
    CHECK_FALSE(insn.high_byte);
    insn = decode({0x40, 0x8a, 0x36}, k64);  // mov sil, [rsi]
    CHECK(insn.reg == Gpr::Rsi);
    CHECK_FALSE(insn.high_byte);
    insn = decode({0x44, 0x8a, 0x7d, 0x00}, k64);  // mov r15b, [rbp+0]
    CHECK(insn.reg == Gpr::R15);
    CHECK_FALSE(insn.high_byte);
    CHECK(insn.memory.segment == SegmentRegister::Ss);
    insn = decode({0x86, 0x31}, k64);  // xchg [rcx], dh
    CHECK(insn.reg == Gpr::Rdx);
    CHECK(insn.high_byte);
    insn = decode({0x40, 0x66, 0x8a, 0x26}, k64);  // an ignored REX: AH again
    CHECK(insn.reg == Gpr::Rax);
    CHECK(insn.high_byte);
    insn = decode({0x8a, 0x3e}, k32);  // mov bh, [esi]
    CHECK(insn.reg == Gpr::Rbx);
    CHECK(insn.high_byte);
    insn = decode({0x8b, 0x26}, k64);  // 4 at full size is ESP, never high
    CHECK(insn.reg == Gpr::Rsp);
    CHECK_FALSE(insn.high_byte);
}

TEST_CASE("decoder: MOV r/m, imm sign-extends the immediate from its encoding") {
    // mov byte [rax+0x12345678], 0x80
    Instruction insn = decode({0xc6, 0x80, 0x78, 0x56, 0x34, 0x12, 0x80}, k64);
    CHECK(insn.operation == Operation::Mov);
    CHECK(insn.has_immediate);
    CHECK(insn.memory_is_destination);
    CHECK(insn.access_size == 1);
    CHECK(insn.immediate == sext(-0x80));
    CHECK(insn.memory.displacement == 0x12345678);
    CHECK(insn.writes_memory());
    CHECK_FALSE(insn.reads_memory());
    insn = decode({0xc7, 0x02, 0xef, 0xbe, 0xad, 0xde}, k64);  // mov dword [rdx], 0xdeadbeef
    CHECK(insn.access_size == 4);
    CHECK(insn.immediate == 0xffffffff'deadbeef);
    insn = decode({0x48, 0xc7, 0x02, 0xfe, 0xff, 0xff, 0xff}, k64);  // mov qword [rdx], -2
    CHECK(insn.access_size == 8);
    CHECK(insn.immediate == sext(-2));
    insn = decode({0x66, 0xc7, 0x02, 0x34, 0x12}, k64);  // mov word [rdx], 0x1234: an imm16
    CHECK(insn.access_size == 2);
    CHECK(insn.immediate == 0x1234);
    insn = decode({0xc7, 0x06, 0x34, 0x12, 0x78, 0x56}, k16);  // mov word [0x1234], 0x5678
    CHECK(insn.immediate == 0x5678);
    CHECK(insn.memory.displacement == 0x1234);
    CHECK_FALSE(insn.memory.has_base);
    // C6/C7 with a reg field other than 0 are not MOV
    CHECK(status_of({0xc7, 0x0a, 0x00, 0x00, 0x00, 0x00}, k64) == DecodeStatus::Unsupported);
    CHECK(status_of({0xc6, 0x38, 0x00}, k64) == DecodeStatus::Unsupported);
}

TEST_CASE("decoder: MOV with moffs takes an offset the width of an address, zero-extended") {
    Instruction insn = decode({0xa0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}, k64);
    CHECK(insn.operation == Operation::Mov);
    CHECK_FALSE(insn.memory_is_destination);
    CHECK(insn.access_size == 1);
    CHECK(insn.reg == Gpr::Rax);
    CHECK_FALSE(insn.high_byte);
    CHECK_FALSE(insn.memory.has_base);
    CHECK_FALSE(insn.memory.has_index);
    CHECK(insn.memory.displacement == 0x11223344'55667788);
    CHECK(insn.memory.segment == SegmentRegister::Ds);
    insn = decode({0x48, 0xa3, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00}, k64);  // mov [0xfee00300], rax
    CHECK(insn.memory_is_destination);
    CHECK(insn.access_size == 8);
    CHECK(insn.memory.displacement == 0xfee00300);
    insn = decode({0x67, 0xa1, 0xb0, 0x00, 0xe0, 0xfe}, k64);  // a 4-byte offset under 67
    CHECK(insn.memory.address_size == 4);
    CHECK(insn.memory.displacement == 0xfee000b0);  // not sign-extended
    insn = decode({0xa3, 0xb0, 0x00, 0xe0, 0xfe}, k32);
    CHECK(insn.memory_is_destination);
    CHECK(insn.access_size == 4);
    CHECK(insn.memory.displacement == 0xfee000b0);
    insn = decode({0xa1, 0x00, 0x80}, k16);
    CHECK(insn.access_size == 2);
    CHECK(insn.memory.displacement == 0x8000);
    insn = decode({0x64, 0xa1, 0x10, 0x00, 0x00, 0x00}, k32);
    CHECK(insn.memory.segment == SegmentRegister::Fs);
}

TEST_CASE("decoder: MOVZX, MOVSX and MOVSXD widen the access to the operand size") {
    struct Case {
        std::vector<u8> bytes;
        u8 access, operand;
        Extension extension;
        Gpr reg;
    };
    const Case cases[] = {
        {{0x0f, 0xb6, 0x47, 0x08}, 1, 4, Extension::Zero, Gpr::Rax},  // movzx eax, byte [rdi+8]
        {{0x44, 0x0f, 0xb7, 0x07}, 2, 4, Extension::Zero, Gpr::R8},   // movzx r8d, word [rdi]
        {{0x48, 0x0f, 0xb7, 0x07}, 2, 8, Extension::Zero, Gpr::Rax},  // movzx rax, word [rdi]
        {{0x66, 0x0f, 0xb6, 0x07}, 1, 2, Extension::Zero, Gpr::Rax},  // movzx ax, byte [rdi]
        {{0x0f, 0xbe, 0x07}, 1, 4, Extension::Sign, Gpr::Rax},        // movsx eax, byte [rdi]
        {{0x48, 0x0f, 0xbf, 0x0f}, 2, 8, Extension::Sign, Gpr::Rcx},  // movsx rcx, word [rdi]
        {{0x48, 0x63, 0x56, 0x04}, 4, 8, Extension::Sign, Gpr::Rdx},  // movsxd rdx, dword [rsi+4]
    };
    for (const Case& c : cases) {
        const Instruction insn = decode(c.bytes, k64);
        CHECK(insn.operation == Operation::Mov);
        CHECK_FALSE(insn.memory_is_destination);
        CHECK(insn.access_size == c.access);
        CHECK(insn.operand_size == c.operand);
        CHECK(insn.extension == c.extension);
        CHECK(insn.reg == c.reg);
        CHECK_FALSE(insn.high_byte);
    }
    // A byte source never makes the destination a high-byte register
    CHECK_FALSE(decode({0x0f, 0xb6, 0x26}, k64).high_byte);  // movzx esp, byte [rsi]
    CHECK(decode({0x26, 0x0f, 0xb7, 0x07}, k32).memory.segment == SegmentRegister::Es);
    // 63 without REX.W, and ARPL outside 64-bit mode, are not emulated
    CHECK(status_of({0x63, 0x56, 0x04}, k64) == DecodeStatus::Unsupported);
    CHECK(status_of({0x63, 0x56, 0x04}, k32) == DecodeStatus::Unsupported);
    // F2/F3 select other instructions in the 0F map
    CHECK(status_of({0xf3, 0x0f, 0xb6, 0x07}, k64) == DecodeStatus::Unsupported);
    CHECK(status_of({0x0f, 0xb8, 0x07}, k64) == DecodeStatus::Unsupported);
}

TEST_CASE("decoder: ALU operations with memory on either side, and the group 1 immediates") {
    struct Case {
        std::vector<u8> bytes;
        Operation operation;
        bool memory_is_destination;
        u8 size;
    };
    const Case register_forms[] = {
        {{0x01, 0x03}, Operation::Add, true, 4},               // add [rbx], eax
        {{0x66, 0x01, 0x03}, Operation::Add, true, 2},         // add [rbx], ax
        {{0x02, 0x03}, Operation::Add, false, 1},              // add al, [rbx]
        {{0x08, 0x2b}, Operation::Or, true, 1},                // or [rbx], ch
        {{0x0b, 0x03}, Operation::Or, false, 4},               // or eax, [rbx]
        {{0x48, 0x23, 0x03}, Operation::And, false, 8},        // and rax, [rbx]
        {{0x20, 0x03}, Operation::And, true, 1},               // and [rbx], al
        {{0x2b, 0x4c, 0x24, 0x08}, Operation::Sub, false, 4},  // sub ecx, [rsp+8]
        {{0x29, 0x03}, Operation::Sub, true, 4},               // sub [rbx], eax
        {{0x45, 0x31, 0x08}, Operation::Xor, true, 4},         // xor [r8], r9d
        {{0x32, 0x03}, Operation::Xor, false, 1},              // xor al, [rbx]
        {{0x39, 0x03}, Operation::Cmp, true, 4},               // cmp [rbx], eax
        {{0x3b, 0x03}, Operation::Cmp, false, 4},              // cmp eax, [rbx]
        {{0x48, 0x85, 0x10}, Operation::Test, true, 8},        // test [rax], rdx
        {{0x84, 0x10}, Operation::Test, true, 1},              // test [rax], dl
        {{0x87, 0x01}, Operation::Xchg, true, 4},              // xchg [rcx], eax
    };
    for (const Case& c : register_forms) {
        const Instruction insn = decode(c.bytes, k64);
        CHECK(insn.operation == c.operation);
        CHECK(insn.memory_is_destination == c.memory_is_destination);
        CHECK(insn.access_size == c.size);
        CHECK_FALSE(insn.has_immediate);
    }
    Instruction insn = decode({0x08, 0x2b}, k64);
    CHECK(insn.reg == Gpr::Rcx);
    CHECK(insn.high_byte);
    insn = decode({0x45, 0x31, 0x08}, k64);
    CHECK(insn.reg == Gpr::R9);
    CHECK(insn.memory.base == Gpr::R8);
    insn = decode({0x2b, 0x4c, 0x24, 0x08}, k64);
    CHECK(insn.memory.base == Gpr::Rsp);
    CHECK(insn.memory.segment == SegmentRegister::Ss);

    const Case immediate_forms[] = {
        {{0x81, 0x3b, 0x78, 0x56, 0x34, 0x12}, Operation::Cmp, true, 4},              // cmp dword [rbx], 0x12345678
        {{0x80, 0x3b, 0x7f}, Operation::Cmp, true, 1},                                // cmp byte [rbx], 0x7f
        {{0x48, 0x83, 0x3b, 0xff}, Operation::Cmp, true, 8},                          // cmp qword [rbx], -1
        {{0x81, 0x4b, 0x04, 0x00, 0x01, 0x00, 0x00}, Operation::Or, true, 4},         // or dword [rbx+4], 0x100
        {{0x66, 0x81, 0x23, 0x00, 0xff}, Operation::And, true, 2},                    // and word [rbx], 0xff00
        {{0x49, 0x81, 0x6d, 0x00, 0x00, 0x10, 0x00, 0x00}, Operation::Sub, true, 8},  // sub qword [r13], 0x1000
        {{0x83, 0x33, 0x80}, Operation::Xor, true, 4},                                // xor dword [rbx], -0x80
        {{0x80, 0x03, 0xff}, Operation::Add, true, 1},                                // add byte [rbx], 0xff
        {{0xf6, 0x00, 0x20}, Operation::Test, true, 1},                               // test byte [rax], 0x20
        {{0xf7, 0x00, 0x00, 0x00, 0x00, 0x80}, Operation::Test, true, 4},             // test dword [rax], 0x80000000
        {{0x66, 0xf7, 0x00, 0x00, 0x80}, Operation::Test, true, 2},                   // test word [rax], 0x8000
    };
    const u64 immediates[] = {0x12345678, 0x7f, sext(-1), 0x100, sext(-0x100), 0x1000, sext(-0x80),
                              sext(-1), 0x20, 0xffffffff'80000000, sext(-0x8000)};
    for (usize i = 0; i < std::size(immediate_forms); ++i) {
        const Instruction insn = decode(immediate_forms[i].bytes, k64);
        CHECK(insn.operation == immediate_forms[i].operation);
        CHECK(insn.memory_is_destination);
        CHECK(insn.access_size == immediate_forms[i].size);
        CHECK(insn.has_immediate);
        CHECK(insn.immediate == immediates[i]);
    }

    // What each kind reads and writes
    insn = decode({0x01, 0x03}, k64);
    CHECK((insn.reads_memory() && insn.writes_memory() && !insn.writes_register()));
    insn = decode({0x03, 0x03}, k64);
    CHECK((insn.reads_memory() && !insn.writes_memory() && insn.writes_register()));
    for (auto bytes : {std::vector<u8>{0x39, 0x03}, {0x3b, 0x03}, {0x85, 0x03}, {0x80, 0x3b, 0x7f}}) {
        insn = decode(bytes, k64);
        CHECK((insn.reads_memory() && !insn.writes_memory() && !insn.writes_register()));
    }
    insn = decode({0x87, 0x01}, k64);
    CHECK((insn.reads_memory() && insn.writes_memory() && insn.writes_register()));

    // ADC and SBB are not emulated, neither are the other F6/F7 operations
    for (auto bytes : {std::vector<u8>{0x11, 0x03}, {0x1a, 0x03}, {0x83, 0x13, 0x01}, {0x80, 0x1b, 0x01},
                       {0xf6, 0x10}, {0xf7, 0x18}, {0xf7, 0x08, 0, 0, 0, 0}}) {
        CHECK(status_of(bytes, k64) == DecodeStatus::Unsupported);
    }
}

TEST_CASE("decoder: segment overrides, SS for stack bases, overrides 64-bit mode ignores") {
    CHECK(decode({0x64, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00}, k64).memory.segment == SegmentRegister::Fs);
    Instruction insn = decode({0x65, 0x48, 0x8b, 0x40, 0x10}, k64);  // mov rax, gs:[rax+0x10]
    CHECK(insn.memory.segment == SegmentRegister::Gs);
    CHECK(insn.access_size == 8);
    // ds:[rbp]: 64-bit mode ignores the DS override, the default for RBP stays
    CHECK(decode({0x3e, 0x8b, 0x45, 0x00}, k64).memory.segment == SegmentRegister::Ss);
    CHECK(decode({0x26, 0x8b, 0x03}, k64).memory.segment == SegmentRegister::Ds);
    CHECK(decode({0x3e, 0x8b, 0x45, 0x00}, k32).memory.segment == SegmentRegister::Ds);
    CHECK(decode({0x89, 0x55, 0xfc}, k32).memory.segment == SegmentRegister::Ss);  // [ebp-4]
    CHECK(decode({0xc7, 0x04, 0x24, 0x01, 0x00, 0x00, 0x00}, k32).memory.segment == SegmentRegister::Ss);  // [esp]
    CHECK(decode({0x8b, 0x04, 0x2c}, k32).memory.segment == SegmentRegister::Ss);  // [esp+ebp]: the base decides
    // [ebp*1+disp32]: EBP as an index does not make it a stack access
    CHECK(decode({0x8b, 0x04, 0x2d, 0, 0, 0, 0}, k32).memory.segment == SegmentRegister::Ds);
    CHECK(decode({0x2e, 0x8b, 0x03}, k32).memory.segment == SegmentRegister::Cs);
    CHECK(decode({0x26, 0x64, 0x8b, 0x03}, k32).memory.segment == SegmentRegister::Fs);  // the last one wins
}

TEST_CASE("decoder: 16-bit addressing forms, and 32-bit ones under 67") {
    struct Case {
        std::vector<u8> bytes;
        bool has_base;
        Gpr base;
        bool has_index;
        Gpr index;
        u64 displacement;
        SegmentRegister segment;
    };
    const Case cases[] = {
        {{0x8b, 0x00}, true, Gpr::Rbx, true, Gpr::Rsi, 0, SegmentRegister::Ds},              // [bx+si]
        {{0x8b, 0x01}, true, Gpr::Rbx, true, Gpr::Rdi, 0, SegmentRegister::Ds},              // [bx+di]
        {{0x8a, 0x42, 0x80}, true, Gpr::Rbp, true, Gpr::Rsi, sext(-0x80), SegmentRegister::Ss},  // [bp+si-0x80]
        {{0x8a, 0x43, 0x7f}, true, Gpr::Rbp, true, Gpr::Rdi, 0x7f, SegmentRegister::Ss},     // [bp+di+0x7f]
        {{0x8b, 0x04}, true, Gpr::Rsi, false, Gpr::Rax, 0, SegmentRegister::Ds},             // [si]
        {{0x8b, 0x05}, true, Gpr::Rdi, false, Gpr::Rax, 0, SegmentRegister::Ds},             // [di]
        {{0x89, 0x56, 0x00}, true, Gpr::Rbp, false, Gpr::Rax, 0, SegmentRegister::Ss},       // [bp+0]
        {{0x8b, 0x87, 0x00, 0x80}, true, Gpr::Rbx, false, Gpr::Rax, sext(-0x8000), SegmentRegister::Ds},  // [bx-0x8000]
        {{0x8b, 0x06, 0x10, 0x00}, false, Gpr::Rax, false, Gpr::Rax, 0x10, SegmentRegister::Ds},  // [0x10]
        {{0x36, 0x8b, 0x07}, true, Gpr::Rbx, false, Gpr::Rax, 0, SegmentRegister::Ss},       // ss:[bx]
    };
    for (const Case& c : cases) {
        const Instruction insn = decode(c.bytes, k16);
        CHECK(insn.memory.address_size == 2);
        CHECK(insn.memory.has_base == c.has_base);
        if (c.has_base) CHECK(insn.memory.base == c.base);
        CHECK(insn.memory.has_index == c.has_index);
        if (c.has_index) CHECK(insn.memory.index == c.index);
        CHECK(insn.memory.scale == 1);
        CHECK(insn.memory.displacement == c.displacement);
        CHECK(insn.memory.segment == c.segment);
    }
    // mov eax, [si-0x100]: a 32-bit operand, 16-bit addressing
    Instruction insn = decode({0x66, 0x8b, 0x84, 0x00, 0xff}, k16);
    CHECK(insn.access_size == 4);
    CHECK(insn.memory.base == Gpr::Rsi);
    CHECK(insn.memory.displacement == sext(-0x100));
    // mov eax, [ebx+ecx*4] in 16-bit code
    insn = decode({0x67, 0x66, 0x8b, 0x04, 0x8b}, k16);
    CHECK(insn.memory.address_size == 4);
    CHECK(insn.memory.base == Gpr::Rbx);
    CHECK(insn.memory.index == Gpr::Rcx);
    CHECK(insn.memory.scale == 4);
    // mov al, [bx+si+0x10] in 32-bit code
    insn = decode({0x67, 0x8a, 0x40, 0x10}, k32);
    CHECK(insn.memory.address_size == 2);
    CHECK(insn.memory.base == Gpr::Rbx);
    CHECK(insn.memory.index == Gpr::Rsi);
    CHECK(insn.memory.displacement == 0x10);
}

TEST_CASE("decoder: LOCK only on read-modify-writes of memory; REP is ignored outside the 0F map") {
    Instruction insn = decode({0xf0, 0x83, 0x0c, 0x24, 0x00}, k64);  // lock or dword [rsp], 0
    CHECK(insn.operation == Operation::Or);
    CHECK(insn.length == 5);
    CHECK(decode({0xf0, 0x87, 0x01}, k64).operation == Operation::Xchg);
    CHECK(decode({0xf0, 0x29, 0x03}, k64).operation == Operation::Sub);
    for (auto bytes : {std::vector<u8>{0xf0, 0x89, 0x03}, {0xf0, 0x8b, 0x03}, {0xf0, 0x39, 0x03},
                       {0xf0, 0x85, 0x03}, {0xf0, 0x03, 0x03}, {0xf0, 0xc6, 0x03, 0x01}}) {
        CHECK(status_of(bytes, k64) == DecodeStatus::Invalid);
    }
    CHECK(decode({0xf3, 0x89, 0x03}, k64).operation == Operation::Mov);  // XRELEASE MOV
    CHECK(decode({0xf2, 0xf0, 0x01, 0x03}, k64).operation == Operation::Add);  // XACQUIRE LOCK ADD
}

TEST_CASE("decoder: truncated, over-long, register-only and unsupported instructions") {
    SECTION("every proper prefix of an instruction is truncated") {
        for (auto bytes : {std::vector<u8>{0x4f, 0x89, 0x4c, 0xec, 0x80},
                           {0x48, 0xa3, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00},
                           {0x66, 0x81, 0x23, 0x00, 0xff},
                           {0x67, 0x89, 0x0d, 0x00, 0x01, 0x00, 0x00},
                           {0x48, 0x0f, 0xbf, 0x0f}}) {
            for (usize n = 0; n < bytes.size(); ++n) {
                Instruction insn;
                CHECK(decode_instruction(bytes.data(), n, k64, insn) == DecodeStatus::Truncated);
            }
        }
    }
    SECTION("15 bytes is the limit, whatever the buffer holds") {
        std::vector<u8> bytes(13, 0x66);
        bytes.insert(bytes.end(), {0x8b, 0x03});
        CHECK(decode(bytes, k64).length == 15);
        bytes.insert(bytes.begin(), 0x66);  // 16 bytes
        CHECK(status_of(bytes, k64) == DecodeStatus::TooLong);
        bytes.resize(15);
        CHECK(status_of(bytes, k64) == DecodeStatus::TooLong);
        CHECK(status_of(std::vector<u8>(40, 0x66), k64) == DecodeStatus::TooLong);
        CHECK(status_of(std::vector<u8>(10, 0x66), k64) == DecodeStatus::Truncated);
        // Bytes after the instruction are not part of it
        std::vector<u8> trailing = {0x8b, 0x03};
        trailing.resize(32, 0x90);
        Instruction insn;
        REQUIRE(decode_instruction(trailing.data(), trailing.size(), k64, insn) == DecodeStatus::Ok);
        CHECK(insn.length == 2);
    }
    SECTION("register-only forms cannot have touched a device") {
        CHECK(status_of({0x89, 0xc3}, k64) == DecodeStatus::NoMemoryOperand);        // mov ebx, eax
        CHECK(status_of({0x0f, 0xb6, 0xc0}, k64) == DecodeStatus::NoMemoryOperand);  // movzx eax, al
        CHECK(status_of({0x81, 0xc0, 1, 0, 0, 0}, k32) == DecodeStatus::NoMemoryOperand);  // add eax, 1
    }
    SECTION("anything else is unsupported: string instructions among them") {
        for (auto bytes : {std::vector<u8>{0xa4}, {0xa5}, {0xaa}, {0x48, 0xab}, {0xf3, 0xab}, {0xf3, 0xa4},
                           {0x0f, 0x0b}, {0xff, 0x00}, {0xfe, 0x00}, {0x8f, 0x00}, {0x04, 0x01}, {0x90},
                           {0x0f, 0x10, 0x00}}) {
            CHECK(status_of(bytes, k64) == DecodeStatus::Unsupported);
        }
        CHECK(status_of({0x40, 0x8b, 0x03}, k32) == DecodeStatus::Unsupported);  // INC EAX outside 64-bit mode
    }
    CHECK(status_of({0x48}, k64) == DecodeStatus::Truncated);
    CHECK(status_of({0x0f}, k64) == DecodeStatus::Truncated);
    for (auto status : {DecodeStatus::Ok, DecodeStatus::Truncated, DecodeStatus::TooLong, DecodeStatus::Invalid,
                        DecodeStatus::NoMemoryOperand, DecodeStatus::Unsupported}) {
        CHECK(decode_status_name(status)[0] != '?');
    }
}

TEST_CASE("decoder: the code segment's default size from CR0.PE, EFER.LMA, RFLAGS.VM, CS.L and CS.D") {
    constexpr u64 pe = 1, lma = 1u << 10, vm = 1u << 17;
    constexpr u16 l = 1u << 13, d = 1u << 14;
    CHECK(code_mode(0, 0, 2, 0) == k16);                 // real mode
    CHECK(code_mode(0, 0, 2, d) == k16);                 // real mode keeps 16 bits
    CHECK(code_mode(pe, 0, 2, d) == k32);
    CHECK(code_mode(pe, 0, 2, 0) == k16);                // a 16-bit protected-mode segment
    CHECK(code_mode(pe, 0, 2 | vm, d) == k16);           // virtual-8086
    CHECK(code_mode(pe, 0, 2, l | d) == k32);            // L means nothing outside IA-32e mode
    CHECK(code_mode(pe | (1u << 31), lma, 2, l) == k64);
    CHECK(code_mode(pe | (1u << 31), lma, 2, d) == k32);  // compatibility mode
    CHECK(code_mode(pe | (1u << 31), lma, 2, 0) == k16);
}
