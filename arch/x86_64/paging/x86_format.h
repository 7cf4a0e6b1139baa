// Long-mode page-table entries (SDM Vol. 3A 4.5). AMD's nested page tables use the same format
// (APM Vol. 2 15.25.5); nested walks count as user accesses, so NPT leaves need user = true.
#pragma once

#include <arch/x86_64/paging/paging.h>

namespace lamina::paging {

// x86 entries pick their memory type through PAT: the entry's PAT, PCD and PWT bits index the
// eight IA32_PAT entries (SDM Vol. 3A "Selecting a Memory Type from the PAT"). This is the layout
// the entries assume. Entries 0-3 are the reset default (WB, WT, UC-, UC), so ordinary mappings
// mean the same before IA32_PAT is programmed; entry 4 is WC, and 5-7 repeat 1-3. Every CPU must
// load kPatMsrValue into IA32_PAT before it uses a WC mapping.
inline constexpr CacheType kPatLayout[8] = {
    CacheType::WriteBack,      CacheType::WriteThrough,   CacheType::UncacheableMinus,
    CacheType::Uncacheable,    CacheType::WriteCombining, CacheType::WriteThrough,
    CacheType::UncacheableMinus, CacheType::Uncacheable,
};

constexpr u64 pat_msr_value() {
    u64 value = 0;
    for (u64 i = 0; i < 8; ++i) value |= u64{memory_type_encoding(kPatLayout[i])} << (8 * i);
    return value;
}
inline constexpr u64 kPatMsrValue = pat_msr_value();
static_assert(kPatMsrValue == 0x0007'0401'0007'0406);

struct X86Format : CommonEntryLayout {
    // Virtual addresses are 48-bit canonical: bits 63..47 all equal.
    static constexpr bool kSignExtendedAddresses = true;

    static constexpr u64 kPresent = u64{1} << 0;
    static constexpr u64 kWritable = u64{1} << 1;
    static constexpr u64 kUser = u64{1} << 2;
    static constexpr u64 kWriteThrough = u64{1} << 3;  // PWT
    static constexpr u64 kCacheDisable = u64{1} << 4;  // PCD
    static constexpr u64 kAccessed = u64{1} << 5;
    static constexpr u64 kDirty = u64{1} << 6;
    static constexpr u64 kPat4K = u64{1} << 7;  // in a PTE, bit 7 is PAT rather than PS
    static constexpr u64 kGlobal = u64{1} << 8;
    static constexpr u64 kPatLarge = u64{1} << 12;  // PAT of a 2 MiB or 1 GiB leaf
    static constexpr u64 kNoExecute = u64{1} << 63;  // needs EFER.NXE

    static constexpr bool present(u64 entry) { return entry & kPresent; }

    // Tables grant everything and leave each decision to the leaf: R/W and U/S are ANDed across
    // the levels of a walk and XD is ORed (SDM Vol. 3A 4.6).
    static constexpr u64 table_entry(u64 table) { return table | kPresent | kWritable | kUser; }

    // A present x86 page is always readable.
    static constexpr bool can_express(const Attributes& attributes) { return attributes.read; }

    static constexpr u64 leaf_entry(u64 phys, int level, const Attributes& attributes) {
        u64 entry = phys | kPresent;
        if (attributes.write) entry |= kWritable;
        if (attributes.user) entry |= kUser;
        if (attributes.global) entry |= kGlobal;
        if (!attributes.execute) entry |= kNoExecute;
        if (level > 0) entry |= kLargePage;
        const u64 pat = pat_index(attributes.cache);
        if (pat & 1) entry |= kWriteThrough;
        if (pat & 2) entry |= kCacheDisable;
        if (pat & 4) entry |= level == 0 ? kPat4K : kPatLarge;
        return entry;
    }

    static constexpr Attributes leaf_attributes(u64 entry, int level) {
        const u64 pat_bit = level == 0 ? kPat4K : kPatLarge;
        const u64 pat = ((entry & kWriteThrough) ? 1 : 0) | ((entry & kCacheDisable) ? 2 : 0) |
                        ((entry & pat_bit) ? 4 : 0);
        Attributes attributes;
        attributes.read = true;
        attributes.write = entry & kWritable;
        attributes.execute = !(entry & kNoExecute);
        attributes.user = entry & kUser;
        attributes.cache = kPatLayout[pat];
        attributes.global = entry & kGlobal;
        return attributes;
    }

    static constexpr bool accessed(u64 entry) { return entry & kAccessed; }
    static constexpr bool dirty(u64 entry) { return entry & kDirty; }

private:
    static constexpr u64 pat_index(CacheType cache) {
        u64 index = 0;
        while (kPatLayout[index] != cache) ++index;  // every CacheType is in entries 0-4
        return index;
    }
};

}  // namespace lamina::paging
