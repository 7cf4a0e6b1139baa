// AMD nested page tables (APM Vol. 2 15.25.5): the long-mode entry format of X86Format, read
// with guest-physical rather than linear addresses.
#pragma once

#include <arch/x86_64/paging/x86_format.h>

namespace lamina::paging {

struct NptFormat : X86Format {
    // A nested walk translates a guest-physical address, which is never sign-extended: with
    // 4 levels every address below 2^48 is valid, 2^47 and above included.
    static constexpr bool kSignExtendedAddresses = false;

    // Nested walks are user accesses (APM Vol. 2 15.25.5): a leaf without U faults. Table
    // entries from X86Format::table_entry have U already, so every entry of the tree has it.
    // The NX bit counts only while the host's EFER.NXE is set, as it is on every CPU that runs
    // the hypervisor (its own tables use NX).
    static constexpr u64 leaf_entry(u64 phys, int level, const Attributes& attributes) {
        Attributes user_access = attributes;
        user_access.user = true;
        return X86Format::leaf_entry(phys, level, user_access);
    }

    // The user bit is implied rather than chosen; global pages mean nothing for guest-physical
    // translations.
    static constexpr bool can_express(const Attributes& attributes) {
        return X86Format::can_express(attributes) && !attributes.global;
    }
};

}  // namespace lamina::paging
