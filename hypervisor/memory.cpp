#include <hypervisor/memory.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <arch/x86_64/interrupt_guard.h>
#include <arch/x86_64/paging/page_table.h>
#include <arch/x86_64/paging/x86_format.h>
#include <boot/multiboot2/multiboot2.h>
#include <hypervisor/log.h>
#include <hypervisor/mm/frame_allocator.h>
#include <hypervisor/panic.h>
#include <hypervisor/percpu.h>
#include <hypervisor/selftest.h>
#include <hypervisor/platform.h>
#include <lamina/string.h>

extern "C" char __image_start_phys[], __text_start[], __text_end[], __rodata_start[], __rodata_end[],
    __data_start[], __data_end[], __ksyms_start[], __image_end[];

namespace lamina::memory {
namespace {

constexpr u64 kKernelVirtOffset = 0xffffffff80000000;
// Guard-paged stacks live in their own region (PML4 slot 510), one slot per stack.
constexpr u64 kStackRegionBase = 0xffffff0000000000;
constexpr u64 kStackSlotBytes = 64 * KiB;
constexpr u64 kStackRegionSlots = 4096;
// Until the hypervisor's tables are up, only the loader's 4 GiB physmap window exists.
constexpr u64 kBootPhysmapLimit = 4 * GiB;

FrameAllocator frames;

class TableMemory {
public:
    u64 allocate_table() {
        u64 phys = frames.allocate(1, 1, kBootPhysmapLimit);
        if (phys) str::fill_bytes(phys_to_virt(phys), 0, paging::kTableBytes);
        return phys;
    }
    void free_table(u64 phys) { frames.free(phys); }
    u64* table(u64 phys) { return static_cast<u64*>(phys_to_virt(phys)); }
};

TableMemory table_memory;
paging::PageTable<paging::X86Format, TableMemory> kernel_table(table_memory);
SpinLock mapping_lock;
u64 next_stack_slot = 0;
u64 usable_ram_bytes = 0;

constexpr paging::Attributes kText{.read = true, .write = false, .execute = true};
constexpr paging::Attributes kReadOnly{.read = true, .write = false, .execute = false};
constexpr paging::Attributes kReadWrite{.read = true, .write = true, .execute = false};
constexpr paging::Attributes kDevice{.read = true, .write = true, .execute = false,
                                     .cache = paging::CacheType::Uncacheable};

u64 image_phys(const char* symbol) { return reinterpret_cast<u64>(symbol) - kKernelVirtOffset; }

paging::MapOptions map_options() { return {.allow_1g_pages = x86::cpu_features().pages_1g}; }

void map_or_panic(u64 virt, u64 phys, u64 size, const paging::Attributes& attributes, const char* what) {
    paging::Result r = kernel_table.map(virt, phys, size, attributes, map_options());
    if (!r.ok()) panic("memory: cannot map {} at {:#x}: {}", what, virt, paging::status_name(r.status));
}

void map_image_section(const char* start, const char* end, const paging::Attributes& attributes, const char* what) {
    u64 virt = reinterpret_cast<u64>(start);
    u64 size = align_up(reinterpret_cast<u64>(end), 4096) - virt;
    if (size) map_or_panic(virt, image_phys(start), size, attributes, what);
}

// Maps a physical range into the physmap unless some of it is mapped already (then each
// unmapped page is mapped on its own, keeping the first mapper's attributes elsewhere).
bool map_physmap_range(u64 phys, u64 size, const paging::Attributes& attributes) {
    u64 first = align_down(phys, 4096);
    u64 end = align_up(phys + size, 4096);
    paging::Result r = kernel_table.map(kPhysmapBase + first, first, end - first, attributes, map_options());
    if (r.status != paging::Status::AlreadyMapped) return r.ok();
    for (u64 page = first; page < end; page += 4096) {
        paging::Translation t;
        if (kernel_table.translate(kPhysmapBase + page, &t)) continue;
        if (!kernel_table.map(kPhysmapBase + page, page, 4096, attributes).ok()) return false;
    }
    return true;
}

bool is_ram(const mb2::MemoryRegion& region) {
    mb2::MemoryType type = region.type();
    return type == mb2::MemoryType::Available || type == mb2::MemoryType::AcpiReclaimable ||
           type == mb2::MemoryType::AcpiNvs;
}

void plan_frames(const mb2::BootInfo& boot, u64 info_phys, u64 info_size) {
    static MemoryRegion regions[mb2::BootInfo::kMaxRegions];
    static PhysRange excluded[8 + mb2::BootInfo::kMaxModules + acpi::kMaxTables];
    usize region_count = 0, excluded_count = 0;
    for (const mb2::MemoryRegion& r : boot.memory_regions())
        regions[region_count++] = {r.base, r.length, r.available() ? MemoryKind::Usable : MemoryKind::Reserved};
    excluded[excluded_count++] = {0, 4096};  // real-mode IVT and BIOS data: never ours
    excluded[excluded_count++] = {reinterpret_cast<u64>(__image_start_phys), image_bytes()};
    excluded[excluded_count++] = {info_phys, info_size};
    for (const mb2::Module& m : boot.modules()) excluded[excluded_count++] = {m.start, m.size()};
    u64 bases[acpi::kMaxTables], lengths[acpi::kMaxTables];
    usize tables = platform::firmware_table_ranges(bases, lengths, acpi::kMaxTables);
    for (usize i = 0; i < tables; ++i) excluded[excluded_count++] = {bases[i], lengths[i]};

    FrameAllocator::PlanStatus status = frames.plan(regions, region_count, excluded, excluded_count, kBootPhysmapLimit);
    if (status != FrameAllocator::PlanStatus::Ok)
        panic("memory: {}", status == FrameAllocator::PlanStatus::NoUsableMemory ? "no usable RAM in the memory map"
                                                                                 : "no room for the frame bookkeeping");
    frames.init(phys_to_virt(frames.storage_phys()));
}

}  // namespace

u64 image_bytes() { return image_phys(__image_end) - reinterpret_cast<u64>(__image_start_phys); }

void init(const mb2::BootInfo& boot, u64 info_phys, u64 info_size) {
    plan_frames(boot, info_phys, info_size);
    usable_ram_bytes = boot.usable_bytes();

    if (kernel_table.init() != paging::Status::Ok) panic("memory: no page for the root table");
    map_image_section(__text_start, __text_end, kText, "text");
    map_image_section(__rodata_start, __rodata_end, kReadOnly, "rodata");
    map_image_section(__data_start, __data_end, kReadWrite, "data");
    map_image_section(__ksyms_start, __image_end, kReadOnly, "symbols");
    for (const mb2::MemoryRegion& r : boot.memory_regions()) {
        if (is_ram(r) && r.length && !map_physmap_range(r.base, r.length, kReadWrite))
            panic("memory: cannot map RAM {:#x}+{:#x} into the physmap", r.base, r.length);
    }
    u64 bases[acpi::kMaxTables], lengths[acpi::kMaxTables];
    usize tables = platform::firmware_table_ranges(bases, lengths, acpi::kMaxTables);
    for (usize i = 0; i < tables; ++i) map_physmap_range(bases[i], lengths[i], kReadOnly);

    // The boot section, the loader's identity map and the 4 GiB boot physmap are gone after this.
    x86::write_cr3(kernel_table.root());
    FrameAllocator::Stats s = frames.stats();
    log::info("memory: {} MiB usable, {} MiB free, page tables at {:#x}", usable_ram_bytes / MiB,
              s.free_bytes / MiB, kernel_table.root());
}

u64 allocate_frames(usize count, usize align_frames, u64 max_phys) {
    u64 phys = frames.allocate(count, align_frames, max_phys);
    if (phys) str::fill_bytes(phys_to_virt(phys), 0, count * kFrameSize);
    return phys;
}

u64 allocate_frames_at(u64 phys, usize count) {
    if (frames.allocate_at(phys, count) == FrameAllocator::kNoFrame) return 0;
    str::fill_bytes(phys_to_virt(phys), 0, count * kFrameSize);
    return phys;
}

void free_frames(u64 phys, usize count) { frames.free(phys, count); }

u64 virt_to_phys(const void* virt) {
    u64 v = reinterpret_cast<u64>(virt);
    if (v >= kKernelVirtOffset) return v - kKernelVirtOffset;
    if (v >= kPhysmapBase && v < kStackRegionBase) return v - kPhysmapBase;
    paging::Translation t;
    x86::IrqSpinLockGuard guard(mapping_lock);
    return kernel_table.translate(v, &t) ? t.phys : 0;
}

bool is_mapped(u64 virt) {
    paging::Translation t;
    if (!kernel_table.root()) return virt >= kPhysmapBase;  // still on the loader's tables
    return kernel_table.translate(virt, &t);
}

void* map_device(u64 phys, usize size) {
    x86::IrqSpinLockGuard guard(mapping_lock);
    if (!map_physmap_range(phys, size, kDevice)) return nullptr;
    return phys_to_virt(phys);
}

bool map_identity_executable(u64 phys) {
    x86::IrqSpinLockGuard guard(mapping_lock);
    return kernel_table.map(phys, phys, 4096, kText).ok();
}

void unmap_identity(u64 phys) {
    x86::IrqSpinLockGuard guard(mapping_lock);
    kernel_table.unmap(phys, 4096);
    x86::invlpg(phys);
}

u64 allocate_stack(usize pages) {
    if (pages == 0 || (pages + 1) * kFrameSize > kStackSlotBytes) return 0;
    x86::IrqSpinLockGuard guard(mapping_lock);
    if (next_stack_slot == kStackRegionSlots) return 0;
    u64 slot = kStackRegionBase + next_stack_slot * kStackSlotBytes;
    // The slot's first page stays unmapped: an overflow faults there instead of corrupting.
    u64 bottom = slot + kStackSlotBytes - pages * kFrameSize;
    for (usize i = 0; i < pages; ++i) {
        u64 frame = frames.allocate();
        if (!frame || !kernel_table.map(bottom + i * kFrameSize, frame, kFrameSize, kReadWrite).ok()) {
            if (frame) frames.free(frame);
            for (usize j = 0; j < i; ++j) {
                paging::Translation t;
                if (kernel_table.translate(bottom + j * kFrameSize, &t)) frames.free(t.phys);
            }
            kernel_table.unmap(bottom, i * kFrameSize);
            return 0;
        }
    }
    ++next_stack_slot;
    return slot + kStackSlotBytes;
}

Stats stats() {
    FrameAllocator::Stats s = frames.stats();
    u64 kept = image_bytes() + frames.storage_bytes() + (s.frames_allocated - s.frames_freed) * kFrameSize;
    return {usable_ram_bytes, s.free_bytes, kept};
}

}  // namespace lamina::memory

// ---- self-tests -------------------------------------------------------------------------------

namespace lamina::memory {
namespace {

bool mapped_as(u64 virt, bool write, bool execute) {
    paging::Translation t;
    return kernel_table.translate(virt, &t) && t.attributes.write == write && t.attributes.execute == execute;
}

}  // namespace

LAMINA_SELFTEST("memory: no hypervisor page is both writable and executable (W^X)") {
    paging::Leaf leaf;
    t.expect(!kernel_table.find_writable_executable(&leaf), "page {:#x} -> {:#x} is W+X", leaf.virt, leaf.phys);
}

LAMINA_SELFTEST("memory: text is RX, rodata R, data RW+NX, the physmap NX") {
    u64 text = reinterpret_cast<u64>(__text_start), rodata = reinterpret_cast<u64>(__rodata_start);
    u64 data = reinterpret_cast<u64>(__data_start);
    t.expect(mapped_as(text, false, true), "text at {:#x} is not read+execute only", text);
    t.expect(mapped_as(rodata, false, false), "rodata at {:#x} is not read-only, no-execute", rodata);
    t.expect(mapped_as(data, true, false), "data at {:#x} is not read+write, no-execute", data);
    u64 physmap_ram = reinterpret_cast<u64>(phys_to_virt(frames.storage_phys()));
    t.expect(mapped_as(physmap_ram, true, false), "physmap at {:#x} is not read+write, no-execute", physmap_ram);
    t.expect(!mapped_as(0x200000, true, true) && !mapped_as(0x200000, false, true),
             "the boot section is still mapped executable");
}

LAMINA_SELFTEST("memory: an unmapped guard page lies under this CPU's stack") {
    u64 top = this_cpu()->stack_top;
    if (!t.expect(top > kStackRegionBase, "this CPU runs on no guard-paged stack")) return;
    u64 slot = top - kStackSlotBytes;
    paging::Translation tr;
    t.expect(!kernel_table.translate(slot, &tr), "guard page {:#x} is mapped", slot);
    t.expect(mapped_as(top - kFrameSize, true, false), "stack top page {:#x} is not RW+NX", top - kFrameSize);
}

LAMINA_SELFTEST("frames: allocations avoid the image and come back on free") {
    constexpr usize kCount = 64;
    u64 got[kCount];
    FrameAllocator::Stats before = frames.stats();
    u64 image_start = reinterpret_cast<u64>(__image_start_phys), image_end = image_start + image_bytes();
    for (u64& frame : got) {
        frame = allocate_frames(1);
        if (!t.expect(frame != 0, "out of frames after {} allocations", &frame - got)) return;
        t.expect(frame >= 4096 && (frame >= image_end || frame + kFrameSize <= image_start),
                 "frame {:#x} overlaps page 0 or the image", frame);
        const u64* words = static_cast<const u64*>(phys_to_virt(frame));
        for (usize i = 0; i < kFrameSize / 8; ++i)
            if (!t.expect(words[i] == 0, "frame {:#x} was not zeroed", frame)) break;
    }
    for (usize i = 0; i < kCount; ++i)
        for (usize j = i + 1; j < kCount; ++j) t.expect(got[i] != got[j], "frame {:#x} handed out twice", got[i]);
    for (u64 frame : got) free_frames(frame);
    t.expect(frames.stats().free_bytes == before.free_bytes, "free memory {} != {} after freeing",
             frames.stats().free_bytes, before.free_bytes);
    u64 low = allocate_frames(1, 1, 1 * MiB);
    t.expect(low != 0 && low < 1 * MiB, "no frame below 1 MiB ({:#x})", low);
    if (low) free_frames(low);
}

}  // namespace lamina::memory
