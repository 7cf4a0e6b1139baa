// Decodes the one x86 instruction that stopped at an emulated device's memory (SDM Vol. 2 ch. 2):
// the forms device drivers use on MMIO (MOV and its zero/sign-extending loads, the ALU operations,
// TEST and XCHG with a memory operand). Everything else is reported as such, never guessed at:
// string instructions (MOVS, STOS...) among them, for now. Hardware-independent (Catch2 tests).
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/types.h>

namespace lamina::emulate {

// The code segment's default operand and address size.
enum class CodeMode : u8 { Bits16, Bits32, Bits64 };

// From CR0.PE, EFER.LMA, RFLAGS.VM and CS's attributes (L, D: the VMX access-rights layout).
CodeMode code_mode(u64 cr0, u64 efer, u64 rflags, u16 cs_attributes);

constexpr usize kMaxInstructionLength = 15;  // SDM Vol. 2 2.3.11: longer is #GP

// The bits of a 1, 2, 4 or 8-byte operand.
constexpr u64 operand_mask(u8 size) { return size >= 8 ? ~u64{0} : (u64{1} << (8 * size)) - 1; }
constexpr u64 sign_extend(u64 value, u8 size) {
    const u32 unused = 64 - 8 * size;
    return static_cast<u64>(static_cast<i64>(value << unused) >> unused);
}

enum class DecodeStatus : u8 {
    Ok,
    Truncated,        // the bytes ran out first (the fetch stopped at memory that is not RAM)
    TooLong,          // over 15 bytes: the CPU raises #GP
    Invalid,          // an encoding the CPU refuses with #UD (LOCK on what cannot be locked)
    NoMemoryOperand,  // a register-only form: it cannot have touched a device
    Unsupported,      // an instruction this emulator does not handle
};

const char* decode_status_name(DecodeStatus status);

enum class Operation : u8 { Mov, Add, Or, And, Sub, Xor, Cmp, Test, Xchg };

// How a load widens the memory value to the register (MOVZX, MOVSX, MOVSXD).
enum class Extension : u8 { None, Zero, Sign };

// The effective-address inputs (SDM Vol. 2 2.1.5): segment base + (base + index * scale +
// displacement), the sum wrapping at address_size.
struct MemoryOperand {
    SegmentRegister segment;  // after overrides; in 64-bit mode only FS and GS override
    u8 address_size;          // 2, 4 or 8 bytes
    bool rip_relative;        // the base is the next instruction's RIP (64-bit mode)
    bool has_base;
    bool has_index;
    Gpr base;
    Gpr index;
    u8 scale;                 // 1, 2, 4 or 8
    u64 displacement;         // sign-extended; a moffs is an offset, zero-extended
};

struct Instruction {
    Operation operation;
    // The memory operand comes first in the encoding's operand order: it is the destination of
    // MOV stores, the ALU r/m forms, TEST and XCHG, and the minuend of CMP r/m, x.
    bool memory_is_destination;
    bool has_immediate;   // the other operand is `immediate`, not `reg`
    u8 length;
    u8 access_size;       // bytes of the memory access: 1, 2, 4 or 8
    u8 operand_size;      // bytes of the register operand: wider than access_size when extending
    Extension extension;
    Gpr reg;
    bool high_byte;       // reg names AH, CH, DH or BH (bits 15:8 of RAX..RBX)
    u64 immediate;        // sign-extended from its encoding to 64 bits
    CodeMode mode;
    MemoryOperand memory;

    bool reads_memory() const { return !(operation == Operation::Mov && memory_is_destination); }
    bool writes_memory() const {
        return memory_is_destination && operation != Operation::Cmp && operation != Operation::Test;
    }
    bool writes_register() const {
        return operation == Operation::Xchg || (!memory_is_destination && operation != Operation::Cmp);
    }
};

// Decodes the instruction at the start of `bytes` (`size` may exceed 15; only 15 are looked at).
// `out` is complete only when the result is Ok.
DecodeStatus decode_instruction(const u8* bytes, usize size, CodeMode mode, Instruction& out);

}  // namespace lamina::emulate
