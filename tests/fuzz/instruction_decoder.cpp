// Feeds instruction bytes (after a code-mode byte) to the MMIO decoder; checks the fields (length
// 1..15 and within the bytes, sizes, registers), that exactly `length` bytes decode the same, and that
// executing it makes one read and/or write of access_size, changes only its register, moves RIP.
#include "fuzz_support.h"
#include "fake_vcpu.h"

#include <hypervisor/emulate/mmio.h>

#include <vector>

using namespace lamina;
using namespace lamina::emulate;

namespace {

constexpr u64 kGpa = 0xfed00040;
constexpr u64 kRip = 0xfffff000;  // near the 4 GiB wrap, where 16 and 32-bit RIP must wrap
constexpr u64 kDeviceValue = 0x8877665544332211;

class Device final : public MmioHandler {
public:
    explicit Device(u8 access_size) : access_size_(access_size) {}
    u64 read(u64 gpa, u8 size) override {
        FUZZ_CHECK(gpa == kGpa && size == access_size_);
        ++reads;
        return kDeviceValue;
    }
    void write(u64 gpa, u8 size, u64 value) override {
        FUZZ_CHECK(gpa == kGpa && size == access_size_);
        FUZZ_CHECK((value & ~operand_mask(size)) == 0);
        ++writes;
    }
    int reads = 0;
    int writes = 0;

private:
    u8 access_size_;
};

bool is_access_size(u8 size) { return size == 1 || size == 2 || size == 4 || size == 8; }

bool same_instruction(const Instruction& a, const Instruction& b) {
    const MemoryOperand& m = a.memory;
    const MemoryOperand& n = b.memory;
    return a.operation == b.operation && a.memory_is_destination == b.memory_is_destination &&
           a.has_immediate == b.has_immediate && a.length == b.length && a.access_size == b.access_size &&
           a.operand_size == b.operand_size && a.extension == b.extension && a.reg == b.reg &&
           a.high_byte == b.high_byte && a.immediate == b.immediate && a.mode == b.mode && m.segment == n.segment &&
           m.address_size == n.address_size && m.rip_relative == n.rip_relative && m.has_base == n.has_base &&
           m.has_index == n.has_index && (!m.has_base || m.base == n.base) && (!m.has_index || m.index == n.index) &&
           m.scale == n.scale && m.displacement == n.displacement;
}

void check_fields(const Instruction& insn, CodeMode mode, usize size) {
    FUZZ_CHECK(insn.length >= 1 && insn.length <= kMaxInstructionLength && insn.length <= size);
    FUZZ_CHECK(insn.mode == mode);
    FUZZ_CHECK(is_access_size(insn.access_size) && is_access_size(insn.operand_size));
    FUZZ_CHECK(insn.operand_size >= insn.access_size);
    if (insn.extension == Extension::None) FUZZ_CHECK(insn.operand_size == insn.access_size);
    if (insn.access_size == 8 || insn.operand_size == 8) FUZZ_CHECK(mode == CodeMode::Bits64);
    FUZZ_CHECK(static_cast<u8>(insn.reg) < kGprCount);
    if (insn.high_byte) FUZZ_CHECK(insn.operand_size == 1 && static_cast<u8>(insn.reg) < 4);
    if (insn.has_immediate) FUZZ_CHECK(insn.memory_is_destination);

    const MemoryOperand& memory = insn.memory;
    FUZZ_CHECK(is_access_size(memory.address_size) && memory.address_size != 1);
    if (mode != CodeMode::Bits64) FUZZ_CHECK(memory.address_size != 8 && !memory.rip_relative);
    if (mode == CodeMode::Bits64) FUZZ_CHECK(memory.address_size != 2);
    FUZZ_CHECK(is_access_size(memory.scale));
    if (memory.has_base) FUZZ_CHECK(static_cast<u8>(memory.base) < kGprCount);
    if (memory.has_index) FUZZ_CHECK(static_cast<u8>(memory.index) < kGprCount);
    if (memory.rip_relative) FUZZ_CHECK(!memory.has_base && !memory.has_index);
    // In 64-bit mode only FS and GS overrides count (SDM Vol. 1 3.3.7.1).
    if (mode == CodeMode::Bits64)
        FUZZ_CHECK(memory.segment == SegmentRegister::Ds || memory.segment == SegmentRegister::Ss ||
                   memory.segment == SegmentRegister::Fs || memory.segment == SegmentRegister::Gs);
}

void check_execution(const Instruction& insn) {
    testing::FakeVcpu vcpu;
    vcpu.rip_value = kRip;
    for (u8 r = 0; r < kGprCount; ++r) vcpu.set_gpr(static_cast<Gpr>(r), 0x0101010101010101 * (r + 1));
    Device device(insn.access_size);
    execute(vcpu, insn, kGpa, device);

    FUZZ_CHECK(device.reads == (insn.reads_memory() ? 1 : 0));
    FUZZ_CHECK(device.writes == (insn.writes_memory() ? 1 : 0));
    const u64 next = kRip + insn.length;
    FUZZ_CHECK(vcpu.rip_value == (insn.mode == CodeMode::Bits64 ? next : next & 0xffffffff));
    FUZZ_CHECK(vcpu.advanced == 0);
    for (u8 r = 0; r < kGprCount; ++r) {
        const bool written = insn.writes_register() && static_cast<Gpr>(r) == insn.reg;
        if (!written) FUZZ_CHECK(vcpu.gpr(static_cast<Gpr>(r)) == 0x0101010101010101 * (r + 1));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return -1;
    constexpr CodeMode kModes[4] = {CodeMode::Bits16, CodeMode::Bits32, CodeMode::Bits64, CodeMode::Bits64};
    const CodeMode mode = kModes[data[0] & 3];
    // An exact-size copy: ASan flags a read past the bytes the fetch got.
    const std::vector<u8> bytes(data + 1, data + size);
    Instruction insn;
    const DecodeStatus status = decode_instruction(bytes.data(), bytes.size(), mode, insn);
    FUZZ_CHECK(decode_status_name(status) != nullptr);
    if (status == DecodeStatus::TooLong) FUZZ_CHECK(bytes.size() >= kMaxInstructionLength);
    if (status == DecodeStatus::Truncated) FUZZ_CHECK(bytes.size() < kMaxInstructionLength);
    if (status != DecodeStatus::Ok) return 0;
    check_fields(insn, mode, bytes.size());

    // Exactly its own bytes decode to the same instruction; one fewer cannot.
    Instruction again;
    FUZZ_CHECK(decode_instruction(bytes.data(), insn.length, mode, again) == DecodeStatus::Ok);
    FUZZ_CHECK(same_instruction(insn, again));
    FUZZ_CHECK(decode_instruction(bytes.data(), insn.length - 1u, mode, again) == DecodeStatus::Truncated);

    check_execution(insn);
    return 0;
}
