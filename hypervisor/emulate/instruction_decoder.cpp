#include <hypervisor/emulate/instruction_decoder.h>

#include <arch/x86_64/registers.h>

namespace lamina::emulate {
namespace {

constexpr u16 kCsLong = 1u << 13;     // L
constexpr u16 kCsDefault32 = 1u << 14;  // D/B

// REX.WRXB (SDM Vol. 2 2.2.1).
constexpr u8 kRexW = 1u << 3;
constexpr u8 kRexR = 1u << 2;
constexpr u8 kRexX = 1u << 1;
constexpr u8 kRexB = 1u << 0;

struct Prefixes {
    bool operand_size = false;  // 66
    bool address_size = false;  // 67
    bool lock = false;          // F0
    bool rep = false;           // F2 or F3
    bool segment_override = false;
    SegmentRegister segment = SegmentRegister::Ds;
    u8 rex = 0;                 // the REX byte (0x40-0x4f), 0 when there is none
};

// The operations of the 0x00-0x3f block and of group 1 (80/81/83), by their 3-bit number;
// ADC (2) and SBB (3) are not emulated.
bool alu_operation(u8 number, Operation& out) {
    constexpr Operation kByNumber[8] = {Operation::Add, Operation::Or,  Operation::Add, Operation::Add,
                                        Operation::And, Operation::Sub, Operation::Xor, Operation::Cmp};
    if (number == 2 || number == 3) return false;
    out = kByNumber[number];
    return true;
}

class Decoder {
public:
    Decoder(const u8* bytes, usize size, CodeMode mode, Instruction& out)
        : bytes_(bytes), size_(min(size, kMaxInstructionLength)), mode_(mode), out_(out) {}

    DecodeStatus run() {
        out_ = {};
        out_.mode = mode_;
        u8 opcode;
        if (!read_prefixes(opcode) || !decode(opcode)) return status_;
        // LOCK is for read-modify-writes of memory; anywhere else the CPU raises #UD.
        if (prefixes_.lock && !(out_.writes_memory() && out_.operation != Operation::Mov)) {
            return DecodeStatus::Invalid;
        }
        out_.length = static_cast<u8>(position_);
        return DecodeStatus::Ok;
    }

private:
    bool fail(DecodeStatus status) {
        status_ = status;
        return false;
    }

    bool next(u8& out) {
        if (position_ == kMaxInstructionLength) return fail(DecodeStatus::TooLong);
        if (position_ == size_) return fail(DecodeStatus::Truncated);
        out = bytes_[position_++];
        return true;
    }

    bool little_endian(u8 bytes, u64& out) {
        out = 0;
        for (u8 i = 0; i < bytes; ++i) {
            u8 byte;
            if (!next(byte)) return false;
            out |= u64{byte} << (8 * i);
        }
        return true;
    }

    bool read_prefixes(u8& opcode) {
        for (;;) {
            u8 byte;
            if (!next(byte)) return false;
            if (mode_ == CodeMode::Bits64 && (byte & 0xf0) == 0x40) {
                prefixes_.rex = byte;
                continue;
            }
            switch (byte) {
                case 0x66: prefixes_.operand_size = true; break;
                case 0x67: prefixes_.address_size = true; break;
                case 0xf0: prefixes_.lock = true; break;
                case 0xf2:
                case 0xf3: prefixes_.rep = true; break;
                case 0x26: override_segment(SegmentRegister::Es); break;
                case 0x2e: override_segment(SegmentRegister::Cs); break;
                case 0x36: override_segment(SegmentRegister::Ss); break;
                case 0x3e: override_segment(SegmentRegister::Ds); break;
                case 0x64: override_segment(SegmentRegister::Fs); break;
                case 0x65: override_segment(SegmentRegister::Gs); break;
                default: opcode = byte; return true;
            }
            prefixes_.rex = 0;  // a REX counts only right before the opcode (SDM Vol. 2 2.2.1)
        }
    }

    void override_segment(SegmentRegister segment) {
        prefixes_.segment_override = true;
        prefixes_.segment = segment;
    }

    u8 operand_size() const {
        if (mode_ == CodeMode::Bits64 && (prefixes_.rex & kRexW)) return 8;
        return (mode_ == CodeMode::Bits16) != prefixes_.operand_size ? 2 : 4;
    }

    u8 address_size() const {
        switch (mode_) {
            case CodeMode::Bits16: return prefixes_.address_size ? 4 : 2;
            case CodeMode::Bits32: return prefixes_.address_size ? 2 : 4;
            case CodeMode::Bits64: return prefixes_.address_size ? 4 : 8;
        }
        return 0;
    }

    bool decode(u8 opcode) {
        const u8 full = operand_size();
        // The ALU block: op r/m, reg (bit 1 clear) and op reg, r/m; bit 0 selects the full size.
        if (opcode < 0x40 && (opcode & 7) < 4) {
            Operation operation;
            if (!alu_operation(opcode >> 3, operation)) return fail(DecodeStatus::Unsupported);
            return register_form(operation, (opcode & 1) ? full : 1, !(opcode & 2));
        }
        switch (opcode) {
            case 0x0f: return two_byte_opcode();
            case 0x63:
                // MOVSXD; without REX.W it is a plain 32-bit move, outside 64-bit mode ARPL.
                if (mode_ != CodeMode::Bits64 || !(prefixes_.rex & kRexW)) return fail(DecodeStatus::Unsupported);
                return extending_load(4, Extension::Sign);
            case 0x80:
            case 0x81:
            case 0x83: {
                u8 digit;
                Operation operation;
                if (!modrm(digit)) return false;
                if (!alu_operation(digit & 7, operation)) return fail(DecodeStatus::Unsupported);
                const u8 size = opcode == 0x80 ? 1 : full;
                return immediate_form(operation, size, opcode == 0x81 ? immediate_size(size) : 1);
            }
            case 0x84:
            case 0x85: return register_form(Operation::Test, (opcode & 1) ? full : 1, true);
            case 0x86:
            case 0x87: return register_form(Operation::Xchg, (opcode & 1) ? full : 1, true);
            case 0x88:
            case 0x89:
            case 0x8a:
            case 0x8b: return register_form(Operation::Mov, (opcode & 1) ? full : 1, !(opcode & 2));
            case 0xa0:
            case 0xa1:
            case 0xa2:
            case 0xa3: return memory_offset((opcode & 1) ? full : 1, opcode & 2);
            case 0xc6:
            case 0xc7: return group_with_immediate(Operation::Mov, (opcode & 1) ? full : 1);
            case 0xf6:
            case 0xf7: return group_with_immediate(Operation::Test, (opcode & 1) ? full : 1);
            default: return fail(DecodeStatus::Unsupported);  // string instructions among them
        }
    }

    bool two_byte_opcode() {
        u8 opcode;
        if (!next(opcode)) return false;
        // In this map F2/F3 select other instructions (F3 0F B8 is POPCNT).
        if (prefixes_.rep) return fail(DecodeStatus::Unsupported);
        switch (opcode) {
            case 0xb6: return extending_load(1, Extension::Zero);
            case 0xb7: return extending_load(2, Extension::Zero);
            case 0xbe: return extending_load(1, Extension::Sign);
            case 0xbf: return extending_load(2, Extension::Sign);
            default: return fail(DecodeStatus::Unsupported);
        }
    }

    // iz: 16 bits for a 16-bit operand, else 32 (sign-extended for a 64-bit one).
    static u8 immediate_size(u8 operand_size) { return operand_size == 2 ? 2 : 4; }

    // op r/m, reg or op reg, r/m.
    bool register_form(Operation operation, u8 size, bool memory_is_destination) {
        u8 reg;
        if (!modrm(reg)) return false;
        set_operation(operation, size, memory_is_destination);
        set_register(reg, size);
        return true;
    }

    // MOVZX, MOVSX, MOVSXD: reg <- r/m, widened from access_size to the operand size.
    bool extending_load(u8 access_size, Extension extension) {
        u8 reg;
        if (!modrm(reg)) return false;
        set_operation(Operation::Mov, access_size, false);
        out_.operand_size = operand_size();
        out_.extension = extension;
        set_register(reg, out_.operand_size);
        return true;
    }

    // C6/C7 /0 (MOV) and F6/F7 /0 (TEST): the ModRM reg field must be 0.
    bool group_with_immediate(Operation operation, u8 size) {
        u8 digit;
        if (!modrm(digit)) return false;
        if ((digit & 7) != 0) return fail(DecodeStatus::Unsupported);
        return immediate_form(operation, size, size == 1 ? 1 : immediate_size(size));
    }

    // op r/m, imm (the ModRM byte already read).
    bool immediate_form(Operation operation, u8 size, u8 immediate_bytes) {
        u64 immediate;
        if (!little_endian(immediate_bytes, immediate)) return false;
        set_operation(operation, size, true);
        out_.has_immediate = true;
        out_.immediate = sign_extend(immediate, immediate_bytes);
        return true;
    }

    // MOV AL/rAX, moffs and MOV moffs, AL/rAX: an absolute offset the width of an address.
    bool memory_offset(u8 size, bool memory_is_destination) {
        MemoryOperand& memory = out_.memory;
        memory.address_size = address_size();
        memory.scale = 1;
        if (!little_endian(memory.address_size, memory.displacement)) return false;
        set_segment(SegmentRegister::Ds);
        set_operation(Operation::Mov, size, memory_is_destination);
        out_.reg = Gpr::Rax;
        return true;
    }

    void set_operation(Operation operation, u8 size, bool memory_is_destination) {
        out_.operation = operation;
        out_.access_size = size;
        out_.operand_size = size;
        out_.memory_is_destination = memory_is_destination;
    }

    // Without REX, byte registers 4-7 are AH, CH, DH, BH; with any REX, SPL, BPL, SIL, DIL
    // (SDM Vol. 1 3.4.1.1, Vol. 2 table 3-1).
    void set_register(u8 number, u8 size) {
        out_.high_byte = size == 1 && prefixes_.rex == 0 && number >= 4;
        out_.reg = static_cast<Gpr>(out_.high_byte ? number - 4 : number);
    }

    // ModRM, SIB and displacement (SDM Vol. 2 2.1.5, tables 2-1 to 2-3, 2.2.1.6). Returns the
    // reg field (with REX.R) in `reg`: a register number or an opcode extension.
    bool modrm(u8& reg) {
        u8 byte;
        if (!next(byte)) return false;
        const u8 mod = byte >> 6;
        const u8 rm = byte & 7;
        reg = ((byte >> 3) & 7) | ((prefixes_.rex & kRexR) ? 8 : 0);
        if (mod == 3) return fail(DecodeStatus::NoMemoryOperand);

        MemoryOperand& memory = out_.memory;
        memory.address_size = address_size();
        memory.scale = 1;
        u8 displacement_size = mod == 1 ? 1 : mod == 2 ? (memory.address_size == 2 ? 2 : 4) : 0;
        if (memory.address_size == 2) {
            // [BX+SI] [BX+DI] [BP+SI] [BP+DI] [SI] [DI] [BP] [BX]; mod 0 with rm 6 is [disp16].
            constexpr Gpr kBase[8] = {Gpr::Rbx, Gpr::Rbx, Gpr::Rbp, Gpr::Rbp, Gpr::Rsi, Gpr::Rdi, Gpr::Rbp, Gpr::Rbx};
            if (mod == 0 && rm == 6) {
                displacement_size = 2;
            } else {
                memory.has_base = true;
                memory.base = kBase[rm];
                memory.has_index = rm < 4;
                memory.index = (rm & 1) ? Gpr::Rdi : Gpr::Rsi;
            }
        } else {
            u8 base = rm;
            if (rm == 4) {
                u8 sib;
                if (!next(sib)) return false;
                const u8 index = ((sib >> 3) & 7) | ((prefixes_.rex & kRexX) ? 8 : 0);
                memory.has_index = index != 4;  // 100 without REX.X: no index (R12 is one)
                memory.index = static_cast<Gpr>(index);
                memory.scale = static_cast<u8>(1u << (sib >> 6));
                base = sib & 7;
            }
            if (mod == 0 && base == 5) {
                // No base, a disp32; in 64-bit mode rm 101 (no SIB) means RIP + disp32.
                displacement_size = 4;
                memory.rip_relative = rm == 5 && mode_ == CodeMode::Bits64;
            } else {
                memory.has_base = true;
                memory.base = static_cast<Gpr>(base | ((prefixes_.rex & kRexB) ? 8 : 0));
            }
        }
        if (!little_endian(displacement_size, memory.displacement)) return false;
        if (displacement_size != 0) memory.displacement = sign_extend(memory.displacement, displacement_size);

        const bool stack = memory.has_base && (memory.base == Gpr::Rsp || memory.base == Gpr::Rbp);
        set_segment(stack ? SegmentRegister::Ss : SegmentRegister::Ds);
        return true;
    }

    // The default segment unless overridden; in 64-bit mode only FS and GS overrides count, the
    // others are ignored (SDM Vol. 1 3.3.7.1).
    void set_segment(SegmentRegister default_segment) {
        const bool counts = mode_ != CodeMode::Bits64 || prefixes_.segment == SegmentRegister::Fs ||
                            prefixes_.segment == SegmentRegister::Gs;
        out_.memory.segment = prefixes_.segment_override && counts ? prefixes_.segment : default_segment;
    }

    const u8* bytes_;
    usize size_;
    usize position_ = 0;
    CodeMode mode_;
    Instruction& out_;
    Prefixes prefixes_;
    DecodeStatus status_ = DecodeStatus::Ok;
};

}  // namespace

CodeMode code_mode(u64 cr0, u64 efer, u64 rflags, u16 cs_attributes) {
    if ((efer & x86::kEferLma) && (cs_attributes & kCsLong)) return CodeMode::Bits64;
    if (!(cr0 & x86::kCr0Pe) || (rflags & x86::kRflagsVm)) return CodeMode::Bits16;  // real and virtual-8086
    return (cs_attributes & kCsDefault32) ? CodeMode::Bits32 : CodeMode::Bits16;
}

const char* decode_status_name(DecodeStatus status) {
    switch (status) {
        case DecodeStatus::Ok: return "ok";
        case DecodeStatus::Truncated: return "the instruction runs past the bytes that could be fetched";
        case DecodeStatus::TooLong: return "the instruction is longer than 15 bytes";
        case DecodeStatus::Invalid: return "an invalid encoding (LOCK where it is not allowed)";
        case DecodeStatus::NoMemoryOperand: return "the instruction has no memory operand";
        case DecodeStatus::Unsupported: return "an instruction the MMIO emulator does not handle";
    }
    return "?";
}

DecodeStatus decode_instruction(const u8* bytes, usize size, CodeMode mode, Instruction& out) {
    return Decoder(bytes, size, mode, out).run();
}

}  // namespace lamina::emulate
