// MMIO emulation: a guest access to a device region stops with a stage-2 fault that names only
// the guest-physical address. The core fetches the instruction through the guest's paging,
// decodes it, makes the access through the device's handler and completes the instruction in
// the guest's registers. Hardware-independent (Catch2 tests).
#pragma once

#include <hypervisor/emulate/guest_page_walk.h>
#include <hypervisor/emulate/instruction_decoder.h>
#include <hypervisor/vcpu.h>
#include <lamina/range_map.h>
#include <lamina/types.h>

namespace lamina::emulate {

class MmioHandler {
public:
    // `size` is 1, 2, 4 or 8; a read returns the value in its low `size` bytes.
    virtual u64 read(u64 gpa, u8 size) = 0;
    virtual void write(u64 gpa, u8 size, u64 value) = 0;

protected:
    ~MmioHandler() = default;
};

// A domain's device regions: which handler owns which guest-physical range.
using MmioMap = RangeMap<MmioHandler, 16>;

// Performs a decoded instruction whose memory operand is at `gpa`, owned by `handler`: the
// access with the decoded size (a read, a write, or a read then a write), the register
// write-back (SDM Vol. 1 3.4.1.1: a 32-bit destination zero-extends into the 64-bit register,
// 8 and 16-bit ones keep the rest), the arithmetic flags, and RIP past the instruction.
void execute(Vcpu& vcpu, const Instruction& insn, u64 gpa, MmioHandler& handler);

enum class MmioStatus : u8 {
    Ok,                 // done, RIP is past the instruction
    Fault,              // fetching the instruction faults now (its code or paging changed since it
                        // ran): the guest takes `vector` with `error_code`, CR2 = `address` for #PF
    CodeNotInRam,       // the fetch or its page walk reached `address`, a gpa that is not RAM
    Undecodable,        // `decode` says why
    DirectionMismatch,  // the instruction does not make the kind of access that faulted
    AddressMismatch,    // its memory operand is not at the faulting gpa (it starts in another page)
    Unclaimed,          // no handler owns every byte of the access
};

const char* mmio_status_name(MmioStatus status);

struct MmioResult {
    MmioStatus status;
    DecodeStatus decode;  // Undecodable
    u8 vector;            // Fault: 14 (#PF) or 13 (#GP)
    u32 error_code;       // Fault
    u64 address;          // Fault: the linear address (CR2 for #PF); CodeNotInRam: the gpa
};

constexpr u8 kPageFaultVector = 14;
constexpr u8 kGeneralProtectionVector = 13;

// The whole stage-2 fault path at `gpa` (a data access, not an execute fault): fetches the
// instruction at CS:RIP through the guest's paging (page by page), decodes it, checks it against
// the fault and executes it through the handler `devices` has for it. Anything but Ok leaves
// the vCPU untouched; the caller injects a Fault or ends the guest with the status's report.
MmioResult emulate_mmio(Vcpu& vcpu, GuestPhysicalReader& memory, const MmioMap& devices,
                        const PagingFeatures& features, u64 gpa, bool write_fault);

}  // namespace lamina::emulate
