#include <hypervisor/hypercall/vcpu_context.h>

namespace lamina::hypercall {
namespace {

using namespace x86;

constexpr u64 kRealModeReach = 0x100000;  // CS:IP reaches no further than 1 MiB
constexpr u64 kCanonicalBits = 48;        // 4-level paging: LA57 is not a start state

// RFLAGS a vCPU may start with: interrupts off (it has no IDT yet), no single-step trap, no
// virtual-8086 mode, I/O privilege 0, and only bits the architecture defines.
constexpr u64 kRflagsRefused = kRflagsInterrupt | kRflagsTrap | kRflagsVm | kRflagsIopl | kRflagsReserved;

// The LONG64 paging state: what it must hold, and the most it may. CR0 and EFER: every bit the
// architecture defines there (EFER's as a guest's WRMSR may write them, LMA following LME).
// CR4: only bits every x86-64 CPU has, so that no start state depends on the host's features;
// the guest turns on the rest itself once CPUID says they are there.
constexpr u64 kLong64Cr0Needed = kCr0Pe | kCr0Pg;
constexpr u64 kLong64Cr0Allowed =
    kLong64Cr0Needed | kCr0Mp | kCr0Em | kCr0Ts | kCr0Et | kCr0Ne | kCr0Wp | kCr0Am | kCr0Nw | kCr0Cd;
constexpr u64 kLong64Cr4Needed = kCr4Pae;
constexpr u64 kLong64Cr4Allowed = kLong64Cr4Needed | kCr4Tsd | kCr4De | kCr4Pse | kCr4Mce | kCr4Pge | kCr4Pce |
                                  kCr4Osfxsr | kCr4Osxmmexcpt;
constexpr u64 kLong64EferNeeded = kEferLme;
constexpr u64 kLong64EferAllowed = kLong64EferNeeded | kEferSce | kEferNxe | kEferLma;
// Without PCIDE CR3's low 12 bits are PWT, PCD and bits that must be 0 (SDM Vol. 3A 4.5).
constexpr u64 kCr3PageOffset = 0xfff;
constexpr u64 kCr3Flags = kCr3Pwt | kCr3Pcd;

bool holds_only(u64 value, u64 needed, u64 allowed) { return (value & needed) == needed && !(value & ~allowed); }

bool canonical(u64 address) {
    const i64 sign_extended = static_cast<i64>(address << (64 - kCanonicalBits)) >> (64 - kCanonicalBits);
    return static_cast<u64>(sign_extended) == address;
}

bool long64_paging_valid(const lamina_vcpu_context& c, u8 physical_address_bits) {
    // MOV to CR0 refuses NW without CD (SDM Vol. 2B "MOV - Move to/from Control Registers").
    if (!holds_only(c.cr0, kLong64Cr0Needed, kLong64Cr0Allowed) || ((c.cr0 & kCr0Nw) && !(c.cr0 & kCr0Cd)))
        return false;
    const bool cr3_in_reach = physical_address_bits >= 64 || (c.cr3 >> physical_address_bits) == 0;
    return holds_only(c.cr4, kLong64Cr4Needed, kLong64Cr4Allowed) &&
           holds_only(c.efer, kLong64EferNeeded, kLong64EferAllowed) && cr3_in_reach &&
           !(c.cr3 & kCr3PageOffset & ~kCr3Flags);
}

// Outside 64-bit mode a register has 32 bits (R8-R15 none): anything above would be a value the
// vCPU can neither see nor have set itself.
bool registers_fit_32_bits(const lamina_cpu_registers& regs) {
    const u64* all = &regs.rax;
    constexpr usize kCount = sizeof(lamina_cpu_registers) / sizeof(u64);
    for (usize i = 0; i < kCount; ++i) {
        if (all[i] >> 32) return false;
    }
    return true;
}

}  // namespace

bool entry_state_from_context(const lamina_vcpu_context& context, u8 physical_address_bits, EntryState* entry) {
    const lamina_cpu_registers& regs = context.regs;
    if (context.flags != 0 || !(regs.rflags & kRflagsFixed) || (regs.rflags & kRflagsRefused)) return false;
    const bool no_paging_state = (context.cr0 | context.cr3 | context.cr4 | context.efer) == 0;
    EntryMode mode;
    switch (context.mode) {
        case LAMINA_VCPU_MODE_REAL:
            if (!no_paging_state || !registers_fit_32_bits(regs) || regs.rip >= kRealModeReach) return false;
            mode = EntryMode::Real;
            break;
        case LAMINA_VCPU_MODE_PROTECTED32:
            if (!no_paging_state || !registers_fit_32_bits(regs)) return false;
            mode = EntryMode::Protected32;
            break;
        case LAMINA_VCPU_MODE_LONG64:
            if (!canonical(regs.rip) || !long64_paging_valid(context, physical_address_bits)) return false;
            mode = EntryMode::Long64;
            break;
        default: return false;
    }
    static_assert(sizeof(EntryState::gprs) == __builtin_offsetof(lamina_cpu_registers, rip), "the GPRs, in one order");
    *entry = {.mode = mode,
              .rip = regs.rip,
              .rflags = regs.rflags,
              .cr0 = context.cr0,
              .cr3 = context.cr3,
              .cr4 = context.cr4,
              .efer = context.efer};
    const u64* gprs = &regs.rax;
    for (usize i = 0; i < kGprCount; ++i) entry->gprs[i] = gprs[i];
    return true;
}

}  // namespace lamina::hypercall
