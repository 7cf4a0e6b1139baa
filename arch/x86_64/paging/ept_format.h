// Intel EPT entries (SDM Vol. 3C 29.3.2): read, write and execute in bits 0-2 (an entry with
// none of them is not present), the memory type in bits 3-5 of leaves, the large-page bit 7,
// accessed/dirty in bits 8/9 (kept by the CPU only when the EPTP enables them).
#pragma once

#include <arch/x86_64/paging/paging.h>

namespace lamina::paging {

struct EptFormat : CommonEntryLayout {
    // Guest-physical addresses of a 4-level EPT are below 2^48.
    static constexpr bool kSignExtendedAddresses = false;

    static constexpr u64 kRead = u64{1} << 0;
    static constexpr u64 kWrite = u64{1} << 1;
    static constexpr u64 kExecute = u64{1} << 2;
    static constexpr u64 kMemoryTypeShift = 3;
    static constexpr u64 kMemoryTypeMask = u64{7} << kMemoryTypeShift;
    static constexpr u64 kAccessed = u64{1} << 8;
    static constexpr u64 kDirty = u64{1} << 9;

    static constexpr bool present(u64 entry) { return entry & (kRead | kWrite | kExecute); }

    // Tables grant everything: the leaf decides. Non-leaf entries have no memory type.
    static constexpr u64 table_entry(u64 table) { return table | kRead | kWrite | kExecute; }

    // Write without read is an EPT misconfiguration (SDM Vol. 3C 29.3.3.1), and no access at all
    // means not present. Execute-only is expressible; whether the CPU allows it
    // (IA32_VMX_EPT_VPID_CAP bit 0) is the caller's to check. EPT has no privilege levels and no
    // global pages, and UC- is a PAT-only type.
    static constexpr bool can_express(const Attributes& attributes) {
        return (attributes.read || attributes.execute) && (attributes.read || !attributes.write) &&
               !attributes.user && !attributes.global &&
               attributes.cache != CacheType::UncacheableMinus;
    }

    // The ignore-PAT bit (6) stays clear: the guest's own PAT combines with this type
    // (SDM Vol. 3C 29.3.7.2), as on bare metal.
    static constexpr u64 leaf_entry(u64 phys, int level, const Attributes& attributes) {
        u64 entry = phys | u64{memory_type_encoding(attributes.cache)} << kMemoryTypeShift;
        if (attributes.read) entry |= kRead;
        if (attributes.write) entry |= kWrite;
        if (attributes.execute) entry |= kExecute;
        if (level > 0) entry |= kLargePage;
        return entry;
    }

    // The same bits at every level.
    static constexpr Attributes leaf_attributes(u64 entry, int /*level*/) {
        Attributes attributes;
        attributes.read = entry & kRead;
        attributes.write = entry & kWrite;
        attributes.execute = entry & kExecute;
        attributes.user = false;
        attributes.cache = cache_type((entry & kMemoryTypeMask) >> kMemoryTypeShift);
        attributes.global = false;
        return attributes;
    }

    static constexpr bool accessed(u64 entry) { return entry & kAccessed; }
    static constexpr bool dirty(u64 entry) { return entry & kDirty; }

private:
    // Leaves written here hold one of these four; anything else (WP, a reserved value) from a
    // foreign table reads as the strictest type.
    static constexpr CacheType cache_type(u64 encoding) {
        constexpr CacheType kEptTypes[] = {CacheType::WriteBack, CacheType::WriteThrough,
                                           CacheType::Uncacheable, CacheType::WriteCombining};
        for (CacheType type : kEptTypes) {
            if (memory_type_encoding(type) == encoding) return type;
        }
        return CacheType::Uncacheable;
    }
};

}  // namespace lamina::paging
