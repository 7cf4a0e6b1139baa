#include <hypervisor/emulate/mmio.h>

#include <arch/x86_64/registers.h>

namespace lamina::emulate {
namespace {

// The arithmetic flags in RFLAGS (SDM Vol. 1 3.4.3.1).
constexpr u64 kCarry = u64{1} << 0;
constexpr u64 kParity = u64{1} << 2;
constexpr u64 kAdjust = u64{1} << 4;
constexpr u64 kZero = u64{1} << 6;
constexpr u64 kSign = u64{1} << 7;
constexpr u64 kOverflow = u64{1} << 11;
constexpr u64 kArithmeticFlags = kCarry | kParity | kAdjust | kZero | kSign | kOverflow;

constexpr u64 kPageSize = 4 * KiB;
constexpr u64 kPageOffset = kPageSize - 1;
constexpr u16 kDplShift = 5;

u64 read_register(const Vcpu& vcpu, const Instruction& insn, u8 size) {
    const u64 value = vcpu.gpr(insn.reg);
    return insn.high_byte ? (value >> 8) & 0xff : value & operand_mask(size);
}

// SDM Vol. 1 3.4.1.1: a 32-bit result zero-extends into the 64-bit register; 8 and 16-bit
// results (AH..BH among them) leave the other bits alone.
void write_register(Vcpu& vcpu, const Instruction& insn, u64 value) {
    const u64 old = vcpu.gpr(insn.reg);
    const u64 mask = operand_mask(insn.operand_size);
    u64 updated;
    if (insn.high_byte) {
        updated = (old & ~u64{0xff00}) | ((value & 0xff) << 8);
    } else if (insn.operand_size == 4) {
        updated = value & mask;
    } else {
        updated = (old & ~mask) | (value & mask);
    }
    vcpu.set_gpr(insn.reg, updated);
}

struct AluResult {
    u64 value;
    u64 flags;
};

// `first` op `second` on `size`-byte operands, with the flags the SDM gives each operation:
// ADD, SUB and CMP set all six; AND, OR, XOR and TEST clear CF and OF and leave AF undefined,
// which is cleared here.
AluResult compute(Operation operation, u64 first, u64 second, u8 size) {
    const u64 mask = operand_mask(size);
    const u64 sign = u64{1} << (8 * size - 1);
    u64 value = 0;
    u64 flags = 0;
    switch (operation) {
        case Operation::Add:
            value = (first + second) & mask;
            if (value < first) flags |= kCarry;
            if ((first ^ value) & (second ^ value) & sign) flags |= kOverflow;  // both inputs' sign lost
            if ((first ^ second ^ value) & 0x10) flags |= kAdjust;
            break;
        case Operation::Sub:
        case Operation::Cmp:
            value = (first - second) & mask;
            if (first < second) flags |= kCarry;  // a borrow
            if ((first ^ second) & (first ^ value) & sign) flags |= kOverflow;
            if ((first ^ second ^ value) & 0x10) flags |= kAdjust;
            break;
        case Operation::And:
        case Operation::Test: value = first & second; break;
        case Operation::Or: value = first | second; break;
        case Operation::Xor: value = first ^ second; break;
        case Operation::Mov:
        case Operation::Xchg: break;  // no arithmetic: execute() does not come here
    }
    if (value == 0) flags |= kZero;
    if (value & sign) flags |= kSign;
    if (!__builtin_parity(static_cast<u32>(value & 0xff))) flags |= kParity;  // PF: an even count
    return {value, flags};
}

// The linear address of the memory operand (SDM Vol. 1 3.7.5): the offset wraps at the address
// size; in 64-bit mode only FS and GS have a base (3.3.7.1), elsewhere the sum wraps at 4 GiB.
u64 operand_linear_address(const Vcpu& vcpu, const Instruction& insn) {
    const MemoryOperand& memory = insn.memory;
    u64 offset = memory.displacement;
    if (memory.has_base) offset += vcpu.gpr(memory.base);
    if (memory.has_index) offset += vcpu.gpr(memory.index) * memory.scale;
    if (memory.rip_relative) offset += vcpu.rip() + insn.length;
    offset &= operand_mask(memory.address_size);
    if (insn.mode == CodeMode::Bits64) {
        const bool based = memory.segment == SegmentRegister::Fs || memory.segment == SegmentRegister::Gs;
        return based ? offset + vcpu.segment(memory.segment).base : offset;
    }
    return (offset + vcpu.segment(memory.segment).base) & 0xffffffff;
}

MmioResult result(MmioStatus status) { return {status, DecodeStatus::Ok, 0, 0, 0}; }

MmioResult walk_failure(const WalkResult& walk, u64 linear) {
    switch (walk.status) {
        case WalkStatus::PageFault:
            return {MmioStatus::Fault, DecodeStatus::Ok, kPageFaultVector, walk.error_code, linear};
        case WalkStatus::NonCanonical:
            return {MmioStatus::Fault, DecodeStatus::Ok, kGeneralProtectionVector, 0, linear};
        case WalkStatus::NotRam:
        case WalkStatus::Ok: break;
    }
    return {MmioStatus::CodeNotInRam, DecodeStatus::Ok, 0, 0, walk.address};
}

struct Fetched {
    usize size;
    MmioResult stop;  // why the fetch ended short of 15 bytes; Ok if it did not
};

// Up to 15 bytes of code at `linear`, translated a page at a time: the bytes that follow the
// instruction may lie in a page the guest never mapped, so a page that fails only matters if
// the decoder needs its bytes.
Fetched fetch_code(GuestPhysicalReader& memory, const PagingState& paging, Access access, u64 linear,
                   CodeMode mode, u8 (&bytes)[kMaxInstructionLength]) {
    usize size = 0;
    while (size < kMaxInstructionLength) {
        const u64 at = mode == CodeMode::Bits64 ? linear + size : (linear + size) & 0xffffffff;
        const WalkResult walk = translate(memory, paging, at, access);
        if (walk.status != WalkStatus::Ok) return {size, walk_failure(walk, at)};
        const usize chunk = min<u64>(kMaxInstructionLength - size, kPageSize - (at & kPageOffset));
        if (!memory.read(walk.address, bytes + size, chunk)) {
            return {size, {MmioStatus::CodeNotInRam, DecodeStatus::Ok, 0, 0, walk.address}};
        }
        size += chunk;
    }
    return {size, result(MmioStatus::Ok)};
}

}  // namespace

void execute(Vcpu& vcpu, const Instruction& insn, u64 gpa, MmioHandler& handler) {
    const u8 size = insn.access_size;
    const u64 mask = operand_mask(size);
    // The operand that is not memory.
    const u64 other = insn.has_immediate ? insn.immediate & mask : read_register(vcpu, insn, size);
    if (insn.operation == Operation::Mov && insn.memory_is_destination) {
        handler.write(gpa, size, other);
    } else if (insn.operation == Operation::Mov) {
        const u64 value = handler.read(gpa, size) & mask;
        write_register(vcpu, insn, insn.extension == Extension::Sign ? sign_extend(value, size) : value);
    } else if (insn.operation == Operation::Xchg) {
        const u64 old = handler.read(gpa, size) & mask;
        handler.write(gpa, size, other);
        write_register(vcpu, insn, old);
    } else {
        const u64 in_memory = handler.read(gpa, size) & mask;
        const AluResult result = insn.memory_is_destination ? compute(insn.operation, in_memory, other, size)
                                                            : compute(insn.operation, other, in_memory, size);
        if (insn.writes_memory()) handler.write(gpa, size, result.value);
        if (insn.writes_register()) write_register(vcpu, insn, result.value);
        vcpu.set_rflags((vcpu.rflags() & ~kArithmeticFlags) | result.flags);
    }
    // Not advance_rip(): the backends know instruction lengths only for their own exits.
    const u64 next = vcpu.rip() + insn.length;
    vcpu.set_rip(insn.mode == CodeMode::Bits64 ? next : next & 0xffffffff);
}

MmioResult emulate_mmio(Vcpu& vcpu, GuestPhysicalReader& memory, const MmioMap& devices,
                        const PagingFeatures& features, u64 gpa, bool write_fault) {
    const PagingState paging{vcpu.control_register(ControlRegister::Cr0), vcpu.control_register(ControlRegister::Cr3),
                             vcpu.control_register(ControlRegister::Cr4), vcpu.efer(), features};
    const u64 rflags = vcpu.rflags();
    const Segment cs = vcpu.segment(SegmentRegister::Cs);
    const CodeMode mode = code_mode(paging.cr0, paging.efer, rflags, cs.attributes);
    // CPL: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL (which VMX defines as the CPL).
    const bool user = (paging.cr0 & x86::kCr0Pe) &&
                      ((rflags & x86::kRflagsVm) || ((vcpu.segment(SegmentRegister::Ss).attributes >> kDplShift) & 3) == 3);
    const u64 rip = vcpu.rip();
    const u64 linear = mode == CodeMode::Bits64 ? rip : (cs.base + (rip & 0xffffffff)) & 0xffffffff;

    u8 bytes[kMaxInstructionLength];
    const Fetched fetched = fetch_code(memory, paging, {AccessKind::Fetch, user, false}, linear, mode, bytes);
    Instruction insn;
    const DecodeStatus decoded = decode_instruction(bytes, fetched.size, mode, insn);
    // Bytes the CPU fetched when the instruction ran are not there now: as it would now, fault.
    if (decoded == DecodeStatus::Truncated && fetched.stop.status != MmioStatus::Ok) return fetched.stop;
    if (decoded != DecodeStatus::Ok) return {MmioStatus::Undecodable, decoded, 0, 0, 0};

    // A read-modify-write may fault on either access; other instructions make one kind.
    if (write_fault ? !insn.writes_memory() : !insn.reads_memory()) return result(MmioStatus::DirectionMismatch);
    // The fault names the byte that faulted: for an access that begins in the page before (RAM)
    // it is not where the operand starts, and page offsets survive translation.
    if ((operand_linear_address(vcpu, insn) ^ gpa) & kPageOffset) return result(MmioStatus::AddressMismatch);
    MmioHandler* handler = devices.find(gpa, insn.access_size);
    if (!handler) return result(MmioStatus::Unclaimed);
    execute(vcpu, insn, gpa, *handler);
    return result(MmioStatus::Ok);
}

const char* mmio_status_name(MmioStatus status) {
    switch (status) {
        case MmioStatus::Ok: return "ok";
        case MmioStatus::Fault: return "fetching the instruction faults";
        case MmioStatus::CodeNotInRam: return "the instruction or its page tables are not in RAM";
        case MmioStatus::Undecodable: return "the instruction cannot be emulated";
        case MmioStatus::DirectionMismatch: return "the instruction does not make the faulting access";
        case MmioStatus::AddressMismatch: return "the instruction's memory operand is not at the faulting address";
        case MmioStatus::Unclaimed: return "no device claims the whole access";
    }
    return "?";
}

}  // namespace lamina::emulate
