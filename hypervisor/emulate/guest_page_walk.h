// The guest's own paging, walked in software the way the CPU walks it (SDM Vol. 3A ch. 4): the
// emulator needs the guest-physical address of the instruction a stage-2 fault stopped, and the
// exit gives only the data access's address. Hardware-independent (Catch2 tests).
//
// Accessed and dirty bits are not set: the walks here are for instructions that already ran
// once up to their faulting access, and that run set them.
#pragma once

#include <lamina/types.h>

namespace lamina::emulate {

// The guest's physical memory as the hypervisor reads it (through the stage-2 mapping).
class GuestPhysicalReader {
public:
    // Copies [gpa, gpa + size) into out; false, copying nothing, when any of it is not guest RAM.
    virtual bool read(u64 gpa, void* out, usize size) = 0;

protected:
    ~GuestPhysicalReader() = default;
};

// What the guest's CPU model offers its paging, from the domain's CPUID: constant per domain.
struct PagingFeatures {
    u8 physical_address_bits;  // MAXPHYADDR, CPUID 8000_0008h EAX[7:0]: 32..52 (clamped to it)
    bool pages_1g;             // CPUID 8000_0001h EDX[26]; without it PS in a PDPTE is reserved
};

// The registers that select the paging mode and its rules.
struct PagingState {
    u64 cr0;
    u64 cr3;
    u64 cr4;
    u64 efer;
    PagingFeatures features;
};

enum class AccessKind : u8 { Read, Write, Fetch };

struct Access {
    AccessKind kind;
    bool user;       // CPL 3 (SDM 4.6: every other access here is a supervisor-mode access)
    bool rflags_ac;  // RFLAGS.AC: with CR4.SMAP, lets supervisor data accesses reach user pages
};

enum class WalkStatus : u8 {
    Ok,
    PageFault,     // the CPU would raise #PF with error_code, CR2 = the linear address
    NonCanonical,  // the CPU would raise #GP(0) (or #SS(0)) before paging
    NotRam,        // a paging-structure entry lies at `address`, which is not guest RAM
};

// #PF error code bits (SDM Vol. 3A 4.7).
namespace page_fault {
constexpr u32 kPresent = 1u << 0;   // 0: a not-present entry; 1: a protection or reserved-bit fault
constexpr u32 kWrite = 1u << 1;
constexpr u32 kUser = 1u << 2;
constexpr u32 kReserved = 1u << 3;  // an entry sets a reserved bit
constexpr u32 kFetch = 1u << 4;
}  // namespace page_fault

struct WalkResult {
    WalkStatus status;
    u32 error_code;  // PageFault
    u64 address;     // Ok: the guest-physical address; NotRam: the entry's guest-physical address

    bool operator==(const WalkResult&) const = default;
};

// Translates one linear address for one access, with the checks the CPU makes.
WalkResult translate(GuestPhysicalReader& memory, const PagingState& paging, u64 linear, Access access);

}  // namespace lamina::emulate
