// The physical frame (4 KiB) allocator, built from the boot loader's memory map.
//
// Which frames are usable: a frame is usable when a Usable region covers all of it and no
// Reserved region or excluded range touches any of it. So usable regions round inward,
// reserved ones round outward, and reserved wins wherever the two overlap, whatever the order
// or overlap of the input. Frame 0 is never usable, which lets 0 mean "no frame".
//
// Bring-up is two steps, because the bookkeeping must itself live in usable memory:
//   FrameAllocator::PlanStatus s = frames.plan(regions, n, excluded, m, 4 * GiB);
//   frames.init(physmap + frames.storage_phys());   // host tests pass a buffer instead
// plan() sizes the bookkeeping and picks a usable, non-excluded place for it; init() builds it
// there and withdraws that place from the pool.
#pragma once

#include <lamina/bitmap.h>
#include <lamina/spinlock.h>
#include <lamina/types.h>

namespace lamina {

constexpr u64 kFrameSize = 4 * KiB;

enum class MemoryKind : u8 { Usable, Reserved };

// One entry of the memory map (the caller maps Multiboot2/E820 types: ACPI, NVS, bad and
// firmware ranges are Reserved).
struct MemoryRegion {
    u64 base;
    u64 length;
    MemoryKind kind;
};

// A byte range of physical memory (the image, boot modules, boot info, ACPI tables...).
struct PhysRange {
    u64 base;
    u64 length;
};

class FrameAllocator {
public:
    // allocate()'s failure value: frame 0 is never handed out.
    static constexpr u64 kNoFrame = 0;
    static constexpr u64 kNoLimit = ~u64{0};
    // Unconstrained allocations come from above this first, so that real-mode users (the SMP
    // trampoline) still find low memory late in boot.
    static constexpr u64 kLowMemoryEnd = 1 * MiB;
    // The architectural limit on physical addresses (SDM Vol. 3A 4.1.4, MAXPHYADDR <= 52);
    // anything a memory map claims above it is ignored.
    static constexpr u64 kPhysicalLimit = u64{1} << 52;

    enum class PlanStatus : u8 {
        Ok,
        NoUsableMemory,        // the map has no usable frame at all
        NoRoomForBookkeeping,  // no usable, non-excluded run below the limit is large enough
    };

    struct Stats {
        u64 usable_bytes;      // frames the allocator manages (bookkeeping not included)
        u64 free_bytes;
        u64 frames_allocated;  // handed out since init()
        u64 frames_freed;      // given back since init()
    };

    constexpr FrameAllocator() = default;
    FrameAllocator(const FrameAllocator&) = delete;
    FrameAllocator& operator=(const FrameAllocator&) = delete;

    // Step 1. Both arrays must stay valid until init() returns. The bookkeeping will end at or
    // below storage_limit (the part of physical memory the caller can already address).
    PlanStatus plan(const MemoryRegion* regions, usize region_count, const PhysRange* excluded,
                    usize excluded_count, u64 storage_limit);
    // Where plan() put the bookkeeping: storage_bytes() bytes at physical storage_phys().
    u64 storage_phys() const { return storage_first_frame_ * kFrameSize; }
    u64 storage_bytes() const { return storage_words_ * sizeof(u64); }

    // Step 2. `storage` is where the caller can access storage_phys() (8-byte aligned).
    void init(void* storage);

    // `count` contiguous frames whose first frame number is a multiple of align_frames (a power
    // of two) and which end at or below max_phys. Returns the physical address of the first
    // frame, or kNoFrame.
    u64 allocate(u64 count = 1, u64 align_frames = 1, u64 max_phys = kNoLimit);
    // The `count` frames from `phys` exactly (a 1:1 mapping needs them there): their physical
    // address, or kNoFrame when one of them is not usable or is allocated already.
    u64 allocate_at(u64 phys, u64 count);
    // Gives back frames from allocate(). Freeing a frame that is not allocated (a double free)
    // or not usable memory at all is a hypervisor bug: LAMINA_ASSERT.
    void free(u64 phys, u64 count = 1);
    // Late exclusion: the frames touching [base, base + length) are never handed out again.
    // Fails, changing nothing, if one of them is allocated right now.
    bool reserve(u64 base, u64 length);

    Stats stats() const;

private:
    struct FrameSpan {
        u64 first;
        u64 end;  // exclusive
    };

    static FrameSpan round_inward(u64 base, u64 length);
    static FrameSpan round_outward(u64 base, u64 length);
    template <typename Visit>
    void for_each_usable_span(Visit&& visit) const;
    template <typename Visit>
    void for_each_blocked_span(Visit&& visit) const;
    bool run_is_usable(u64 first, u64 count) const;
    bool place_storage(u64 storage_frames, u64 floor_frame, u64 limit_frame);
    void withdraw(FrameSpan span);
    u64 find_run(u64 count, u64 align, u64 limit) const;

    // Planning input, only valid between plan() and init().
    const MemoryRegion* regions_ = nullptr;
    usize region_count_ = 0;
    const PhysRange* excluded_ = nullptr;
    usize excluded_count_ = 0;

    u64 frame_count_ = 0;  // frames the bitmaps describe: up to the highest usable one
    u64 storage_first_frame_ = 0;
    u64 storage_words_ = 0;

    mutable SpinLock lock_;
    // A set bit in usable_ marks a frame this allocator manages; a set bit in in_use_ marks one
    // it cannot hand out (allocated, or not usable). Two maps, so that free() can tell a double
    // free from a free of firmware memory.
    Bitmap usable_;
    Bitmap in_use_;
    u64 next_fit_ = 0;  // where the next search starts
    u64 usable_frames_ = 0;
    u64 free_frames_ = 0;
    u64 frames_allocated_ = 0;
    u64 frames_freed_ = 0;
    bool ready_ = false;
};

}  // namespace lamina
