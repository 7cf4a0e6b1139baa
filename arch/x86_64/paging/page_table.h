// A 4-level page-table engine, generic over where tables live and how entries are encoded
// (the approach of NOVA/Hedron: one walker, tested on the host against a fake memory).
//
// Memory policy (an object the table keeps a reference to):
//   u64  allocate_table();        physical address of a zeroed 4 KiB table, 0 when out of memory
//   void free_table(u64 phys);
//   u64* table(u64 phys);         where the engine reads and writes that table
// Tables are freed as soon as they empty, before the caller flushes the TLBs; a policy for live
// tables must hold freed tables back until the flush that follows (paging-structure caches may
// still point at them).
//
// Format policy: X86Format (host paging, AMD NPT) or EptFormat. See those headers.
//
// Operations validate their arguments and report a Status; they never assert on them. Callers
// serialize operations on one table (a domain's p2m lock, the hypervisor's mapping lock).
#pragma once

#include <arch/x86_64/paging/paging.h>
#include <lamina/assert.h>
#include <lamina/types.h>

namespace lamina::paging {

enum class Status : u8 {
    Ok,
    NotInitialized,         // init() has not succeeded, or destroy() ran
    Misaligned,             // an address or the size is not a multiple of 4 KiB
    BadSize,                // size 0
    OutsideAddressSpace,    // non-canonical (x86), at or above 2^48 (EPT), or crossing either
    PhysicalOutOfRange,     // the physical range reaches past 2^52
    UnsupportedAttributes,  // the format cannot express the attributes
    AlreadyMapped,          // map() without replace over a mapped page
    NotMapped,              // protect() over a hole
    OutOfMemory,            // no page for a table
};

const char* status_name(Status status);

struct Result {
    Status status;
    // An entry the hardware may have cached was changed or removed: flush (INVLPG and a
    // shootdown, INVEPT, or an NPT ASID flush) before relying on the change.
    bool needs_flush;

    bool ok() const { return status == Status::Ok; }
};

struct MapOptions {
    // 1 GiB leaves exist only on CPUs that have them (CPUID.80000001H:EDX[26] for paging, the
    // EPT capability MSR for EPT).
    bool allow_1g_pages = false;
    // Map over existing mappings instead of failing with AlreadyMapped.
    bool replace = false;
};

struct Translation {
    u64 phys;  // the translation of the address asked about, offset included
    PageSize page_size;
    Attributes attributes;
    bool accessed;
    bool dirty;
};

struct Leaf {
    u64 virt;  // first address of the page (canonical for x86)
    u64 phys;
    PageSize page_size;
    Attributes attributes;
};

template <typename Format, typename Memory>
class PageTable {
public:
    explicit PageTable(Memory& memory) : memory_(memory) {}
    PageTable(const PageTable&) = delete;
    PageTable& operator=(const PageTable&) = delete;

    // Allocates the root table; OutOfMemory if there is no page for it.
    Status init() {
        if (!root_) root_ = memory_.allocate_table();
        return root_ ? Status::Ok : Status::OutOfMemory;
    }
    // Frees every table, the root included.
    void destroy() {
        if (root_) free_tree(root_, kRootLevel);
        root_ = 0;
    }
    // Physical address of the root, for CR3, the EPTP or the VMCB's nCR3.
    u64 root() const { return root_; }

    // Maps [virt, virt + size) to [phys, phys + size), each part with the largest page that its
    // alignment allows. Without replace, any mapped page in the range fails the whole call with
    // AlreadyMapped and nothing changes, and OutOfMemory undoes what was done. With replace, the
    // parts of large pages outside the range keep their mapping, and after OutOfMemory each page
    // maps either as before or as asked.
    Result map(u64 virt, u64 phys, u64 size, const Attributes& attributes,
               MapOptions options = {}) {
        Range range;
        Status status = check_range(virt, size, &range);
        if (status == Status::Ok) status = check_target(phys, size, attributes);
        if (status != Status::Ok) return {status, false};

        bool needs_flush = false;
        if (!options.replace) {
            if (any_leaf(range)) return {Status::AlreadyMapped, false};
            status = map_range(root_, kRootLevel, 0, range, phys, attributes, options,
                               &needs_flush);
            if (status != Status::Ok) unmap_range(root_, kRootLevel, 0, range, &needs_flush);
            return {status, needs_flush};
        }
        status = split_edges(range, &needs_flush);
        if (status == Status::Ok) {
            status = map_range(root_, kRootLevel, 0, range, phys, attributes, options,
                               &needs_flush);
        }
        return {status, needs_flush};
    }

    // Removes every mapping in the range (holes are fine) and frees tables that become empty.
    // Large pages that reach outside the range are split first; if that runs out of memory,
    // nothing is unmapped.
    Result unmap(u64 virt, u64 size) {
        Range range;
        const Status status = check_range(virt, size, &range);
        if (status != Status::Ok) return {status, false};
        bool needs_flush = false;
        const Status split = split_edges(range, &needs_flush);
        if (split == Status::Ok) unmap_range(root_, kRootLevel, 0, range, &needs_flush);
        return {split, needs_flush};
    }

    // Gives every page of the range new attributes, keeping its physical address. The whole
    // range must be mapped (NotMapped otherwise, with nothing changed).
    Result protect(u64 virt, u64 size, const Attributes& attributes) {
        Range range;
        Status status = check_range(virt, size, &range);
        if (status == Status::Ok && !Format::can_express(attributes)) {
            status = Status::UnsupportedAttributes;
        }
        if (status == Status::Ok && !fully_mapped(range)) status = Status::NotMapped;
        if (status != Status::Ok) return {status, false};
        bool needs_flush = false;
        status = split_edges(range, &needs_flush);
        if (status == Status::Ok) {
            protect_range(root_, kRootLevel, 0, range, attributes, &needs_flush);
        }
        return {status, needs_flush};
    }

    // False when virt is not mapped (or not an address of this table's space).
    bool translate(u64 virt, Translation* out) const {
        u64 address;
        if (!root_ || !to_walk_address(virt, &address)) return false;
        u64 table = root_;
        for (int level = kRootLevel;; --level) {
            const u64 entry = load(memory_.table(table) + level_index(address, level));
            if (!Format::present(entry)) return false;
            if (Format::is_leaf(entry, level)) {
                out->phys = Format::leaf_address(entry, level) + address % level_span(level);
                out->page_size = page_size_at(level);
                out->attributes = Format::leaf_attributes(entry, level);
                out->accessed = Format::accessed(entry);
                out->dirty = Format::dirty(entry);
                return true;
            }
            table = Format::table_address(entry);
        }
    }

    // Calls visit(const Leaf&) for every mapped page, in address order (for x86: the lower half,
    // then the upper half). visit returns false to stop.
    template <typename Visit>
    void for_each_leaf(Visit&& visit) const {
        if (!root_) return;
        auto on_leaf = [&](u64 base, u64 entry, int level) {
            return visit(Leaf{to_virtual(base), Format::leaf_address(entry, level),
                              page_size_at(level), Format::leaf_attributes(entry, level)});
        };
        visit_leaves(root_, kRootLevel, 0, Range{0, kWalkSpace}, on_leaf);
    }

    // W^X check: finds a page that is both writable and executable, if any.
    bool find_writable_executable(Leaf* found = nullptr) const {
        bool violation = false;
        for_each_leaf([&](const Leaf& leaf) {
            if (!(leaf.attributes.write && leaf.attributes.execute)) return true;
            if (found) *found = leaf;
            violation = true;
            return false;
        });
        return violation;
    }

private:
    // Addresses inside the engine are walk addresses: the low 48 bits, so that the upper half of
    // an x86 address space follows the lower half without a hole.
    static constexpr u64 kWalkSpace = u64{1} << 48;
    static constexpr u64 kPhysicalSpace = u64{1} << 52;
    static constexpr u64 kPageBytes = 4 * KiB;

    struct Range {
        u64 start;
        u64 end;  // exclusive, at most kWalkSpace
    };

    static u64 load(const u64* slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }
    // Release: a table's contents must be visible before the entry that links it.
    static void store(u64* slot, u64 value) { __atomic_store_n(slot, value, __ATOMIC_RELEASE); }

    static bool canonical(u64 address) {
        const u64 upper = address >> 47;
        return upper == 0 || upper == (u64{1} << 17) - 1;
    }

    static bool to_walk_address(u64 virt, u64* address) {
        if (Format::kSignExtendedAddresses ? !canonical(virt) : virt >= kWalkSpace) return false;
        *address = virt % kWalkSpace;
        return true;
    }

    static u64 to_virtual(u64 address) {
        if (Format::kSignExtendedAddresses && (address >> 47)) return address | ~(kWalkSpace - 1);
        return address;
    }

    Status check_range(u64 virt, u64 size, Range* range) const {
        if (!root_) return Status::NotInitialized;
        if (size == 0) return Status::BadSize;
        if (!is_aligned(virt, kPageBytes) || !is_aligned(size, kPageBytes)) {
            return Status::Misaligned;
        }
        u64 last;
        u64 first_address;
        u64 last_address;
        // The walk range must be as long as the virtual one: that rules out wrapping past 2^64
        // and crossing the non-canonical hole.
        if (add_overflows(virt, size - 1, &last) || !to_walk_address(virt, &first_address) ||
            !to_walk_address(last, &last_address) ||
            last_address - first_address != last - virt) {
            return Status::OutsideAddressSpace;
        }
        *range = {first_address, last_address + 1};
        return Status::Ok;
    }

    static Status check_target(u64 phys, u64 size, const Attributes& attributes) {
        if (!is_aligned(phys, kPageBytes)) return Status::Misaligned;
        if (phys > kPhysicalSpace || size > kPhysicalSpace - phys) {
            return Status::PhysicalOutOfRange;
        }
        if (!Format::can_express(attributes)) return Status::UnsupportedAttributes;
        return Status::Ok;
    }

    static bool leaf_allowed(int level, const MapOptions& options) {
        return level < kLargestLeafLevel || (level == kLargestLeafLevel && options.allow_1g_pages);
    }

    // Calls visit(slot, entry_base, part) for each entry of the table at `level` (which maps
    // from table_base) that overlaps range; `part` is the overlap. Stops when visit returns
    // false, and then returns false.
    template <typename Visit>
    bool for_each_entry(u64 table, int level, u64 table_base, Range range, Visit&& visit) const {
        const u64 span = level_span(level);
        u64* entries = memory_.table(table);
        const u64 first = (range.start - table_base) / span;
        const u64 last = (range.end - 1 - table_base) / span;
        for (u64 index = first; index <= last; ++index) {
            const u64 entry_base = table_base + index * span;
            const Range part{max(range.start, entry_base), min(range.end, entry_base + span)};
            if (!visit(entries + index, entry_base, part)) return false;
        }
        return true;
    }

    static bool covers_entry(Range part, u64 entry_base, int level) {
        return part.start == entry_base && part.end - part.start == level_span(level);
    }

    // Calls visit(base, entry, level) for every leaf overlapping range, in address order;
    // returns false when visit stopped the walk.
    template <typename Visit>
    bool visit_leaves(u64 table, int level, u64 table_base, Range range, Visit& visit) const {
        return for_each_entry(table, level, table_base, range,
                              [&](u64* slot, u64 entry_base, Range part) {
                                  const u64 entry = load(slot);
                                  if (!Format::present(entry)) return true;
                                  if (Format::is_leaf(entry, level)) {
                                      return visit(entry_base, entry, level);
                                  }
                                  return visit_leaves(Format::table_address(entry), level - 1,
                                                      entry_base, part, visit);
                              });
    }

    bool any_leaf(Range range) const {
        auto stop = [](u64, u64, int) { return false; };
        return !visit_leaves(root_, kRootLevel, 0, range, stop);
    }

    bool fully_mapped(Range range) const {
        u64 covered = range.start;
        auto extend = [&](u64 base, u64, int level) {
            if (base > covered) return false;  // a hole before this leaf
            covered = base + level_span(level);
            return true;
        };
        visit_leaves(root_, kRootLevel, 0, range, extend);
        return covered >= range.end;
    }

    bool table_empty(u64 table) const {
        const u64* entries = memory_.table(table);
        for (u64 index = 0; index < kTableEntries; ++index) {
            if (Format::present(load(entries + index))) return false;
        }
        return true;
    }

    void free_tree(u64 table, int level) {
        if (level > 0) {
            const u64* entries = memory_.table(table);
            for (u64 index = 0; index < kTableEntries; ++index) {
                const u64 entry = load(entries + index);
                if (Format::present(entry) && !Format::is_leaf(entry, level)) {
                    free_tree(Format::table_address(entry), level - 1);
                }
            }
        }
        memory_.free_table(table);
    }

    // Replaces the large leaf in *slot by a table of leaves one level down that map the same
    // memory the same way.
    Status split(u64* slot, int level) {
        const u64 child = memory_.allocate_table();
        if (!child) return Status::OutOfMemory;
        const u64 entry = load(slot);
        const u64 base = Format::leaf_address(entry, level);
        const Attributes attributes = Format::leaf_attributes(entry, level);
        u64* entries = memory_.table(child);
        for (u64 index = 0; index < kTableEntries; ++index) {
            entries[index] = Format::leaf_entry(base + index * level_span(level - 1), level - 1,
                                                attributes);
        }
        store(slot, Format::table_entry(child));
        return Status::Ok;
    }

    // Splits the large leaves that straddle `address`, so that it becomes a page boundary.
    Status split_at(u64 address, bool* needs_flush) {
        if (address >= kWalkSpace) return Status::Ok;
        u64 table = root_;
        for (int level = kRootLevel; level > 0; --level) {
            u64* slot = memory_.table(table) + level_index(address, level);
            const u64 entry = load(slot);
            if (!Format::present(entry)) return Status::Ok;
            if (Format::is_leaf(entry, level)) {
                if (is_aligned(address, level_span(level))) return Status::Ok;
                const Status status = split(slot, level);
                if (status != Status::Ok) return status;
                *needs_flush = true;
            }
            table = Format::table_address(load(slot));
        }
        return Status::Ok;
    }

    // Afterwards every leaf that overlaps the range lies inside it.
    Status split_edges(Range range, bool* needs_flush) {
        const Status status = split_at(range.start, needs_flush);
        return status == Status::Ok ? split_at(range.end, needs_flush) : status;
    }

    // `phys` is the target of range.start.
    Status map_range(u64 table, int level, u64 table_base, Range range, u64 phys,
                     const Attributes& attributes, const MapOptions& options, bool* needs_flush) {
        Status status = Status::Ok;
        for_each_entry(table, level, table_base, range, [&](u64* slot, u64 entry_base, Range part) {
            const u64 entry = load(slot);
            const u64 part_phys = phys + (part.start - range.start);
            if (covers_entry(part, entry_base, level) && leaf_allowed(level, options) &&
                is_aligned(part_phys, level_span(level))) {
                store(slot, Format::leaf_entry(part_phys, level, attributes));
                if (Format::present(entry)) {
                    *needs_flush = true;
                    if (!Format::is_leaf(entry, level)) {
                        free_tree(Format::table_address(entry), level - 1);
                    }
                }
                return true;
            }
            if (!Format::present(entry)) {
                const u64 child = memory_.allocate_table();
                if (!child) {
                    status = Status::OutOfMemory;
                    return false;
                }
                store(slot, Format::table_entry(child));
            } else if (Format::is_leaf(entry, level)) {
                // Only with replace, and the edges are split, so this leaf lies inside the
                // range. Splitting rather than emptying it keeps every page mapped, old or new.
                status = split(slot, level);
                if (status != Status::Ok) return false;
                *needs_flush = true;
            }
            status = map_range(Format::table_address(load(slot)), level - 1, entry_base, part,
                               part_phys, attributes, options, needs_flush);
            return status == Status::Ok;
        });
        return status;
    }

    // The edges must be split: every leaf met lies inside the range.
    void unmap_range(u64 table, int level, u64 table_base, Range range, bool* needs_flush) {
        for_each_entry(table, level, table_base, range, [&](u64* slot, u64 entry_base, Range part) {
            const u64 entry = load(slot);
            if (!Format::present(entry)) return true;
            const bool whole = covers_entry(part, entry_base, level);
            if (Format::is_leaf(entry, level)) {
                LAMINA_ASSERT(whole);
                store(slot, 0);
                *needs_flush = true;
                return true;
            }
            const u64 child = Format::table_address(entry);
            if (!whole) {
                unmap_range(child, level - 1, entry_base, part, needs_flush);
                if (!table_empty(child)) return true;
            }
            store(slot, 0);
            free_tree(child, level - 1);
            *needs_flush = true;
            return true;
        });
    }

    // The range must be mapped and its edges split.
    void protect_range(u64 table, int level, u64 table_base, Range range,
                       const Attributes& attributes, bool* needs_flush) {
        for_each_entry(table, level, table_base, range, [&](u64* slot, u64 entry_base, Range part) {
            const u64 entry = load(slot);
            LAMINA_ASSERT(Format::present(entry));
            if (!Format::is_leaf(entry, level)) {
                protect_range(Format::table_address(entry), level - 1, entry_base, part,
                              attributes, needs_flush);
                return true;
            }
            const u64 updated =
                Format::leaf_entry(Format::leaf_address(entry, level), level, attributes);
            if (updated != entry) {
                store(slot, updated);
                *needs_flush = true;
            }
            return true;
        });
    }

    Memory& memory_;
    u64 root_ = 0;
};

}  // namespace lamina::paging
