#include <hypervisor/emulate/guest_page_walk.h>

#include <arch/x86_64/registers.h>

namespace lamina::emulate {
namespace {

using namespace x86;

// Paging-structure entry bits (SDM Vol. 3A 4.3-4.5).
constexpr u64 kPresent = u64{1} << 0;
constexpr u64 kWritable = u64{1} << 1;
constexpr u64 kUserPage = u64{1} << 2;
constexpr u64 kLargePage = u64{1} << 7;  // PS
constexpr u64 kExecuteDisable = u64{1} << 63;

// Bits high..low set; none when high < low (a reserved range that MAXPHYADDR left empty).
constexpr u64 bit_range(u32 high, u32 low) {
    return high < low ? 0 : (~u64{0} >> (63 - high)) & (~u64{0} << low);
}

// What the entries of one translation allow together (SDM 4.6): every level must grant
// writes or user access, any level may forbid execution.
struct Rights {
    bool writable = true;
    bool user = true;
    bool execute_disable = false;

    void add(u64 entry) {
        writable = writable && (entry & kWritable);
        user = user && (entry & kUserPage);
        execute_disable = execute_disable || (entry & kExecuteDisable);
    }
};

// MAXPHYADDR, held to the range CPUID can report.
u32 physical_address_bits(const PagingState& paging) {
    return max<u32>(32, min<u32>(paging.features.physical_address_bits, 52));
}

WalkResult page_fault(const PagingState& paging, Access access, u32 cause) {
    u32 code = cause;
    if (access.kind == AccessKind::Write) code |= page_fault::kWrite;
    if (access.user) code |= page_fault::kUser;
    // I/D is reported only where execute protection exists (SDM 4.7).
    const bool fetch_protection =
        (paging.cr4 & kCr4Smep) || ((paging.cr4 & kCr4Pae) && (paging.efer & kEferNxe));
    if (access.kind == AccessKind::Fetch && fetch_protection) code |= page_fault::kFetch;
    return {WalkStatus::PageFault, code, 0};
}

// SDM 4.6.1. `rights.execute_disable` is set only where EFER.NXE gives XD a meaning.
bool allowed(const PagingState& paging, Access access, Rights rights) {
    if (access.user) {
        if (!rights.user) return false;
        if (access.kind == AccessKind::Write) return rights.writable;
        return access.kind != AccessKind::Fetch || !rights.execute_disable;
    }
    if (access.kind == AccessKind::Fetch) {
        return !rights.execute_disable && !(rights.user && (paging.cr4 & kCr4Smep));
    }
    // Explicit supervisor data accesses to user pages need RFLAGS.AC under SMAP.
    if (rights.user && (paging.cr4 & kCr4Smap) && !access.rflags_ac) return false;
    return access.kind == AccessKind::Read || rights.writable || !(paging.cr0 & kCr0Wp);
}

WalkResult finish(const PagingState& paging, Access access, Rights rights, u64 gpa) {
    if (!allowed(paging, access, rights)) return page_fault(paging, access, page_fault::kPresent);
    return {WalkStatus::Ok, 0, gpa};
}

WalkResult reserved_bit_fault(const PagingState& paging, Access access) {
    return page_fault(paging, access, page_fault::kPresent | page_fault::kReserved);
}

// 32-bit paging (SDM 4.3): 4-byte entries, 4 MiB pages under CR4.PSE, no execute protection.
WalkResult walk_32bit(GuestPhysicalReader& memory, const PagingState& paging, u32 linear, Access access) {
    const u64 pde_address = (paging.cr3 & 0xfffff000) | ((linear >> 22) << 2);
    u32 pde;
    if (!memory.read(pde_address, &pde, sizeof pde)) return {WalkStatus::NotRam, 0, pde_address};
    if (!(pde & kPresent)) return page_fault(paging, access, 0);
    Rights rights;
    rights.add(pde);

    if ((paging.cr4 & kCr4Pse) && (pde & kLargePage)) {
        // PSE-36: PDE bits (M-20):13 are physical bits (M-1):32, M = min(MAXPHYADDR, 40); the
        // bits from there to 21 are reserved (SDM table 4-4).
        const u32 m = min<u32>(physical_address_bits(paging), 40);
        if (pde & bit_range(21, m - 19)) return reserved_bit_fault(paging, access);
        const u64 page = (pde & 0xffc00000) | (u64{pde & static_cast<u32>(bit_range(m - 20, 13))} << 19);
        return finish(paging, access, rights, page | (linear & 0x3fffff));
    }

    const u64 pte_address = (pde & 0xfffff000) | (((linear >> 12) & 0x3ff) << 2);
    u32 pte;
    if (!memory.read(pte_address, &pte, sizeof pte)) return {WalkStatus::NotRam, 0, pte_address};
    if (!(pte & kPresent)) return page_fault(paging, access, 0);
    rights.add(pte);
    return finish(paging, access, rights, (pte & 0xfffff000) | (linear & 0xfff));
}

// Reserved bits of an 8-byte entry that depend on its level and PS (SDM tables 4-8 to 4-20).
// A PS bit where no page can be mapped is itself reserved, so a present entry that passes this
// check with PS set is a leaf.
u64 level_reserved_bits(u32 shift, u64 entry, bool pages_1g) {
    const bool large = entry & kLargePage;
    switch (shift) {
        case 48:  // PML5E
        case 39:  // PML4E
            return kLargePage;
        case 30: return !large ? 0 : pages_1g ? bit_range(29, 13) : kLargePage;
        case 21: return large ? bit_range(20, 13) : 0;
        default: return 0;  // a PTE: bit 7 is PAT
    }
}

// PAE, 4-level and 5-level paging (SDM 4.4, 4.5): 8-byte entries, 9 index bits a level.
WalkResult walk_64bit_entries(GuestPhysicalReader& memory, const PagingState& paging, u64 linear, Access access) {
    const bool long_mode = paging.efer & kEferLma;
    const u32 m = physical_address_bits(paging);
    const u64 address_mask = bit_range(m - 1, 12);
    u64 common_reserved = long_mode ? bit_range(51, m) : bit_range(62, m);
    if (!(paging.efer & kEferNxe)) common_reserved |= kExecuteDisable;

    u32 shift;
    u64 table;
    if (long_mode) {
        shift = (paging.cr4 & kCr4La57) ? 48 : 39;
        const u32 unused_bits = 64 - (shift + 9);
        if (static_cast<u64>(static_cast<i64>(linear << unused_bits) >> unused_bits) != linear) {
            return {WalkStatus::NonCanonical, 0, 0};
        }
        table = paging.cr3 & address_mask;
    } else {
        // The CPU walks from the four PDPTE registers it loaded with CR3 (on VMX with EPT, from
        // the VMCS); reading the PDPT again sees the same entries unless the guest changed it
        // without reloading CR3, which the SDM leaves to its own risk (4.10.4).
        shift = 30;
        linear &= 0xffffffff;
        table = paging.cr3 & bit_range(31, 5);
    }

    Rights rights;
    for (;; shift -= 9) {
        const bool pae_pdpte = !long_mode && shift == 30;
        const u64 entry_address = table + ((linear >> shift) & (pae_pdpte ? 3 : 511)) * 8;
        u64 entry;
        if (!memory.read(entry_address, &entry, sizeof entry)) return {WalkStatus::NotRam, 0, entry_address};
        if (!(entry & kPresent)) return page_fault(paging, access, 0);
        // A PDPTE with reserved bits fails MOV to CR3 with #GP; one seen here was written
        // after that load, and is reported as the reserved-bit fault the other levels give.
        const u64 reserved = pae_pdpte ? bit_range(63, m) | bit_range(8, 5) | bit_range(2, 1)
                                       : common_reserved | level_reserved_bits(shift, entry, paging.features.pages_1g);
        if (entry & reserved) return reserved_bit_fault(paging, access);
        if (!pae_pdpte) rights.add(entry);  // PAE PDPTEs carry no access rights
        if (shift == 12 || (entry & kLargePage)) {
            const u64 offset_mask = (u64{1} << shift) - 1;
            return finish(paging, access, rights, (entry & address_mask & ~offset_mask) | (linear & offset_mask));
        }
        table = entry & address_mask;
    }
}

}  // namespace

WalkResult translate(GuestPhysicalReader& memory, const PagingState& paging, u64 linear, Access access) {
    // Without paging there is no long mode: linear addresses are 32-bit physical ones.
    if (!(paging.cr0 & kCr0Pg)) return {WalkStatus::Ok, 0, linear & 0xffffffff};
    if (!(paging.cr4 & kCr4Pae)) return walk_32bit(memory, paging, static_cast<u32>(linear), access);
    return walk_64bit_entries(memory, paging, linear, access);
}

}  // namespace lamina::emulate
