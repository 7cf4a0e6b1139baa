// Vocabulary shared by the page-table entry formats and the engine: 4-level geometry, page
// sizes, and the neutral attributes each format translates into its own bits.
#pragma once

#include <lamina/types.h>

namespace lamina::paging {

// Level 0 holds 4 KiB pages (PT), level 1 2 MiB (PD), level 2 1 GiB (PDPT), level 3 is the
// root (PML4). Every table is one 4 KiB page of 512 entries.
constexpr int kRootLevel = 3;
constexpr int kLargestLeafLevel = 2;
constexpr u64 kTableEntries = 512;
constexpr u64 kTableBytes = 4 * KiB;

// Bytes one entry of a table at `level` maps.
constexpr u64 level_span(int level) { return u64{4 * KiB} << (9 * level); }
constexpr u64 level_index(u64 address, int level) {
    return (address >> (12 + 9 * level)) % kTableEntries;
}

enum class PageSize : u8 { Size4K, Size2M, Size1G };

constexpr int level_of(PageSize size) { return static_cast<int>(size); }
constexpr PageSize page_size_at(int level) { return static_cast<PageSize>(level); }
constexpr u64 page_bytes(PageSize size) { return level_span(level_of(size)); }

enum class CacheType : u8 {
    WriteBack,
    WriteThrough,
    Uncacheable,
    WriteCombining,
    UncacheableMinus,  // UC that MTRR WC may override; PAT only
};

// The architectural memory-type encodings that IA32_PAT entries and EPT leaves hold (SDM Vol. 3A
// "IA32_PAT MSR", memory types that can be encoded with PAT; EPT uses the same values,
// SDM Vol. 3C 29.3.7 "EPT and Memory Typing").
constexpr u8 memory_type_encoding(CacheType cache) {
    switch (cache) {
        case CacheType::WriteBack: return 6;
        case CacheType::WriteThrough: return 4;
        case CacheType::Uncacheable: return 0;
        case CacheType::WriteCombining: return 1;
        case CacheType::UncacheableMinus: return 7;
    }
    return 0;
}

// What a mapping allows, independent of the format that expresses it.
struct Attributes {
    bool read = true;
    bool write = false;
    bool execute = false;
    bool user = false;
    CacheType cache = CacheType::WriteBack;
    bool global = false;

    constexpr bool operator==(const Attributes&) const = default;
};

// What both entry formats share: where the output address sits (bits 12..51, MAXPHYADDR <= 52)
// and bit 7, which marks a 2 MiB or 1 GiB leaf in PDEs and PDPTEs (PS in x86 tables, the
// large-page bit in EPT).
struct CommonEntryLayout {
    static constexpr u64 kAddressMask = 0x000f'ffff'ffff'f000;
    static constexpr u64 kLargePage = u64{1} << 7;

    static constexpr bool is_leaf(u64 entry, int level) {
        return level == 0 || (level <= kLargestLeafLevel && (entry & kLargePage));
    }
    static constexpr u64 table_address(u64 entry) { return entry & kAddressMask; }
    // A large leaf's low address bits hold flags (x86's PAT bit 12) or must be zero.
    static constexpr u64 leaf_address(u64 entry, int level) {
        return entry & kAddressMask & ~(level_span(level) - 1);
    }
};

}  // namespace lamina::paging
