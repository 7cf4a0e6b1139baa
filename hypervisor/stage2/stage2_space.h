// A guest's physical address space: guest-physical to host-physical translations in the format
// of this machine's second-stage tables, Intel EPT or AMD NPT. One implementation over the
// page-table engine serves both formats; the backends only put root() into the EPTP or nCR3.
//
// Memory is the engine's table policy (allocate_table / free_table / table, see
// arch/x86_64/paging/page_table.h): frame_table_memory.h in the image, a fake in the host tests.
//
// TLB coherence. A change that the hardware may have cached (needs_flush in the Result) moves
// generation(). A backend keeps, per vCPU, the generation it last flushed at; on VM entry it
// compares and flushes (INVEPT single-context, or the NPT ASID flush) only when the generation
// moved, so VM exits do no work for it. Two rules follow for the callers:
//   - A vCPU that runs on a CPU other than the last one flushes there whatever the generation
//     (INVEPT and ASID flushes act on the executing CPU only).
//   - A change is in effect for a running vCPU only once it has exited and entered again: the
//     caller forces that (an IPI) when it cannot wait, and must not reuse an unmapped frame
//     before every vCPU has flushed at the generation the unmap produced.
// Tables that an operation frees are still reachable through the paging-structure caches until
// that flush, so they are retired rather than freed: reclaim() frees them once the caller knows
// that every vCPU of the space has flushed at a given generation.
//
// Operations validate their arguments and report a Status (the engine's); they never assert
// on them. Callers serialize the operations on one space (the domain's p2m lock); generation()
// may be read at any time, from any CPU.
#pragma once

#include <arch/x86_64/paging/ept_format.h>
#include <arch/x86_64/paging/npt_format.h>
#include <arch/x86_64/paging/page_table.h>
#include <lamina/atomic.h>
#include <lamina/new.h>
#include <lamina/types.h>

namespace lamina::stage2 {

using paging::CacheType;
using paging::PageSize;
using paging::Result;
using paging::Status;
using paging::status_name;

enum class Stage2Format : u8 { Ept, Npt };

struct Stage2Access {
    bool read = false;
    bool write = false;
    bool execute = false;

    constexpr bool operator==(const Stage2Access&) const = default;
};

// What the CPU's second-stage tables support, from the capability MSRs (IA32_VMX_EPT_VPID_CAP)
// or CPUID (Fn8000_0001 EDX[26] for NPT 1 GiB pages, Fn8000_0008 EAX[7:0] for MAXPHYADDR).
// 2 MiB leaves are always used where alignment allows: NPT has them in every long-mode CPU,
// EPT needs IA32_VMX_EPT_VPID_CAP[16], which the VMX backend must require.
struct Stage2Limits {
    u8 physical_address_bits = 52;  // host MAXPHYADDR: higher entry bits are reserved
    bool pages_1g = false;
    bool execute_only = false;  // EPT: IA32_VMX_EPT_VPID_CAP[0]; NPT never has it
};

struct Stage2Mapping {
    u64 hpa;  // the translation of the address asked about, offset included
    Stage2Access access;
    PageSize page_size;
    CacheType cache;
};

template <typename Memory>
class Stage2Space {
public:
    Stage2Space(Stage2Format format, Memory& memory, Stage2Limits limits = {})
        : format_(format), limits_(limits), retiring_(memory) {
        if (format_ == Stage2Format::Ept) {
            new (&tables_.ept) EptTable(retiring_);
        } else {
            new (&tables_.npt) NptTable(retiring_);
        }
    }
    ~Stage2Space() { destroy(); }
    Stage2Space(const Stage2Space&) = delete;
    Stage2Space& operator=(const Stage2Space&) = delete;

    // Allocates the root table; OutOfMemory if there is no page for it. Calling it again on a
    // live space changes nothing.
    Status init() {
        return with_table([](auto& table) { return table.init(); });
    }

    // Frees every table, the retired ones and the root included. No CPU may hold translations
    // of this space any more: the caller has flushed them (INVEPT, or retired the ASID), since
    // a later space may get the same root.
    void destroy() {
        with_table([](auto& table) { table.destroy(); });
        retiring_.free_retired();
        // A later init() gets a new root: the vCPUs flush before they use it.
        generation_.store(generation_.load(MemoryOrder::Relaxed) + 1, MemoryOrder::Release);
    }

    Stage2Format format() const { return format_; }
    // The physical address of the root table, for the EPTP or the VMCB's nCR3; 0 before init().
    u64 root() const {
        return with_table([](const auto& table) { return table.root(); });
    }
    // Starts at 1, so that a vCPU that has never flushed (0) flushes before its first entry.
    u64 generation() const { return generation_.load(MemoryOrder::Acquire); }
    // The counter itself, for the vCPUs, which read it at every entry (Stage2Binding).
    const Atomic<u64>& generation_counter() const { return generation_; }

    // Maps [gpa, gpa + size) to [hpa, hpa + size), each part with the largest page that the
    // alignment of both allows. Mapping over a mapped page fails with AlreadyMapped and changes
    // nothing: to remap, unmap first (and keep the old frame until the flush, see above).
    Result map(u64 gpa, u64 hpa, u64 size, Stage2Access access,
               CacheType cache = CacheType::WriteBack) {
        Status status = check_host_range(hpa, size);
        if (status == Status::Ok) status = check_access(access);
        if (status != Status::Ok) return {status, false};
        const paging::Attributes attributes = to_attributes(access, cache);
        const paging::MapOptions options{.allow_1g_pages = limits_.pages_1g};
        return record(with_table([&](auto& table) {
            return table.map(gpa, hpa, size, attributes, options);
        }));
    }

    // Removes every mapping in the range; holes are fine.
    Result unmap(u64 gpa, u64 size) {
        return record(with_table([&](auto& table) { return table.unmap(gpa, size); }));
    }

    // Gives every page of the range new access rights, keeping its host frame and cache type.
    // The whole range must be mapped (NotMapped otherwise, with nothing changed). After
    // OutOfMemory (splitting a large page), each page has either its old or its new rights.
    Result protect(u64 gpa, u64 size, Stage2Access access) {
        const Status status = check_access(access);
        if (status != Status::Ok) return {status, false};
        return record(with_table([&](auto& table) {
            return protect_keeping_cache(table, gpa, size, access);
        }));
    }

    // False when gpa is not mapped (or not a guest-physical address of this space).
    bool translate(u64 gpa, Stage2Mapping* out) const {
        paging::Translation translation;
        const bool mapped = with_table([&](const auto& table) {
            return table.translate(gpa, &translation);
        });
        if (!mapped) return false;
        const paging::Attributes& attributes = translation.attributes;
        *out = {translation.phys,
                {attributes.read, attributes.write, attributes.execute},
                translation.page_size,
                attributes.cache};
        return true;
    }

    // Frees the tables retired before every vCPU of this space has flushed at
    // flushed_generation or later (the lowest of the vCPUs' flushed generations).
    void reclaim(u64 flushed_generation) {
        if (flushed_generation >= retiring_.newest_generation()) retiring_.free_retired();
    }

private:
    // Holds freed tables back until reclaim(). A retired table is chained through its entry 0:
    // the link is 4 KiB-aligned, so the entry reads as not present in both formats to a walker
    // that still caches the table, which sees its other entries as they were.
    class RetiringMemory {
    public:
        explicit RetiringMemory(Memory& memory) : memory_(memory) {}

        u64 allocate_table() { return memory_.allocate_table(); }
        u64* table(u64 phys) { return memory_.table(phys); }
        void free_table(u64 phys) {
            __atomic_store_n(memory_.table(phys), retired_, __ATOMIC_RELAXED);
            retired_ = phys;
            retired_now_ = true;
        }

        // Whether the operation that just ran retired a table; marks those tables as retired at
        // `generation`.
        bool take_retired(u64 generation) {
            const bool retired = retired_now_;
            if (retired) newest_generation_ = generation;
            retired_now_ = false;
            return retired;
        }
        u64 newest_generation() const { return newest_generation_; }

        void free_retired() {
            while (retired_) {
                const u64 next = memory_.table(retired_)[0];
                memory_.free_table(retired_);
                retired_ = next;
            }
            retired_now_ = false;
        }

    private:
        Memory& memory_;
        u64 retired_ = 0;  // the latest retired table, 0 when none
        bool retired_now_ = false;
        u64 newest_generation_ = 0;
    };

    static constexpr u64 kPageBytes = 4 * KiB;

    using EptTable = paging::PageTable<paging::EptFormat, RetiringMemory>;
    using NptTable = paging::PageTable<paging::NptFormat, RetiringMemory>;

    // The engine's table in this space's format. Both hold only a policy reference and the root,
    // so neither needs destruction beyond destroy().
    union Tables {
        Tables() {}
        EptTable ept;
        NptTable npt;
    };
    static_assert(__is_trivially_destructible(EptTable) && __is_trivially_destructible(NptTable));

    // Runs `operation` on the table of this space's format: the one place that picks it.
    template <typename Operation>
    decltype(auto) with_table(Operation&& operation) {
        return format_ == Stage2Format::Ept ? operation(tables_.ept) : operation(tables_.npt);
    }
    template <typename Operation>
    decltype(auto) with_table(Operation&& operation) const {
        return format_ == Stage2Format::Ept ? operation(tables_.ept) : operation(tables_.npt);
    }

    // Setting bits above MAXPHYADDR in an entry is a reserved-bit violation: an EPT
    // misconfiguration, a nested page fault with RSVD on NPT.
    Status check_host_range(u64 hpa, u64 size) const {
        const u64 end_limit = u64{1} << min<u8>(limits_.physical_address_bits, 52);
        if (hpa > end_limit || size > end_limit - hpa) return Status::PhysicalOutOfRange;
        return Status::Ok;
    }

    // The formats refuse what they cannot express (EPT write without read, NPT without read);
    // execute-only is expressible in EPT but needs the CPU's consent.
    Status check_access(Stage2Access access) const {
        const bool execute_only = access.execute && !access.read && !access.write;
        if (execute_only && !limits_.execute_only) return Status::UnsupportedAttributes;
        return Status::Ok;
    }

    static paging::Attributes to_attributes(Stage2Access access, CacheType cache) {
        paging::Attributes attributes;
        attributes.read = access.read;
        attributes.write = access.write;
        attributes.execute = access.execute;
        attributes.cache = cache;
        return attributes;
    }

    // The engine's protect sets whole attributes, cache type included, so the range is protected
    // one run of a single cache type at a time: one run, one call, in the usual case.
    template <typename Table>
    static Result protect_keeping_cache(Table& table, u64 gpa, u64 size, Stage2Access access) {
        u64 end;
        const auto whole = [](u64, u64, CacheType) { return true; };
        const bool walkable = size != 0 && is_aligned(gpa | size, kPageBytes) &&
                              !add_overflows(gpa, size, &end) &&
                              for_each_cache_run(table, gpa, end, whole);
        // Whatever is wrong with the range (alignment, size, bounds, a hole, no root), the
        // engine refuses it with the status that says why, and changes nothing.
        if (!walkable) return table.protect(gpa, size, to_attributes(access, CacheType::WriteBack));

        Result result{Status::Ok, false};
        for_each_cache_run(table, gpa, end, [&](u64 start, u64 run_end, CacheType cache) {
            const Result run = table.protect(start, run_end - start, to_attributes(access, cache));
            result = {run.status, result.needs_flush || run.needs_flush};
            return run.ok();
        });
        return result;
    }

    // Calls visit(start, end, cache) for each maximal run of [gpa, end) mapped with one cache
    // type, in order, while visit returns true. False at a hole (and nothing visited past it)
    // or when visit stops.
    template <typename Table, typename Visit>
    static bool for_each_cache_run(const Table& table, u64 gpa, u64 end, Visit&& visit) {
        u64 run_start = gpa;
        CacheType run_cache = CacheType::WriteBack;
        for (u64 address = gpa; address < end;) {
            paging::Translation page;
            if (!table.translate(address, &page)) return false;
            if (address != run_start && page.attributes.cache != run_cache) {
                if (!visit(run_start, address, run_cache)) return false;
                run_start = address;
            }
            run_cache = page.attributes.cache;
            address = align_down(address, page_bytes(page.page_size)) + page_bytes(page.page_size);
        }
        return visit(run_start, end, run_cache);
    }

    // Moves the generation when the hardware may cache what the operation changed or freed.
    Result record(Result result) {
        const u64 next = generation_.load(MemoryOrder::Relaxed) + 1;
        const bool retired = retiring_.take_retired(next);
        if (result.needs_flush || retired) generation_.store(next, MemoryOrder::Release);
        return result;
    }

    Stage2Format format_;
    Stage2Limits limits_;
    RetiringMemory retiring_;
    Tables tables_;
    Atomic<u64> generation_{1};
};

}  // namespace lamina::stage2
