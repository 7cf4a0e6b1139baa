#include <hypervisor/mm/frame_allocator.h>

#include <lamina/assert.h>

namespace lamina {
namespace {

constexpr u64 kLowMemoryFrames = FrameAllocator::kLowMemoryEnd / kFrameSize;

// End of [base, base + length), clamped to the physical limit (a map entry may claim a length
// that runs past it, or past 2^64).
u64 clamped_end(u64 base, u64 length) {
    u64 end;
    if (add_overflows(base, length, &end) || end > FrameAllocator::kPhysicalLimit) {
        return FrameAllocator::kPhysicalLimit;
    }
    return end;
}

bool all_set(const Bitmap& bitmap, u64 first, u64 count) {
    return bitmap.find_first_clear(first) >= first + count;
}

}  // namespace

FrameAllocator::FrameSpan FrameAllocator::round_inward(u64 base, u64 length) {
    if (length == 0 || base >= kPhysicalLimit) return {0, 0};
    const u64 first = align_up(base, kFrameSize) / kFrameSize;
    const u64 end = clamped_end(base, length) / kFrameSize;
    return first < end ? FrameSpan{first, end} : FrameSpan{0, 0};
}

FrameAllocator::FrameSpan FrameAllocator::round_outward(u64 base, u64 length) {
    if (length == 0 || base >= kPhysicalLimit) return {0, 0};
    return {base / kFrameSize, align_up(clamped_end(base, length), kFrameSize) / kFrameSize};
}

template <typename Visit>
void FrameAllocator::for_each_usable_span(Visit&& visit) const {
    for (usize i = 0; i < region_count_; ++i) {
        if (regions_[i].kind != MemoryKind::Usable) continue;
        const FrameSpan span = round_inward(regions_[i].base, regions_[i].length);
        if (span.first < span.end) visit(span);
    }
}

// Everything that must never be handed out. A kind that is neither Usable nor Reserved (a bad
// cast upstream) counts as Reserved: unknown memory is not ours.
template <typename Visit>
void FrameAllocator::for_each_blocked_span(Visit&& visit) const {
    visit(FrameSpan{0, 1});  // frame 0, so that 0 can mean "no frame"
    for (usize i = 0; i < region_count_; ++i) {
        if (regions_[i].kind == MemoryKind::Usable) continue;
        const FrameSpan span = round_outward(regions_[i].base, regions_[i].length);
        if (span.first < span.end) visit(span);
    }
    for (usize i = 0; i < excluded_count_; ++i) {
        const FrameSpan span = round_outward(excluded_[i].base, excluded_[i].length);
        if (span.first < span.end) visit(span);
    }
}

bool FrameAllocator::run_is_usable(u64 first, u64 count) const {
    const u64 end = first + count;
    bool blocked = false;
    for_each_blocked_span([&](FrameSpan span) {
        if (span.first < end && first < span.end) blocked = true;
    });
    if (blocked) return false;
    // Usable regions may be split into adjacent or overlapping entries: walk their union.
    u64 covered = first;
    while (covered < end) {
        u64 reach = covered;
        for_each_usable_span([&](FrameSpan span) {
            if (span.first <= covered && covered < span.end && span.end > reach) reach = span.end;
        });
        if (reach == covered) return false;
        covered = reach;
    }
    return true;
}

// The lowest usable run at or above floor_frame either starts at the floor, where a usable
// region starts, or right where a blocked span ends; only those candidates need testing.
bool FrameAllocator::place_storage(u64 storage_frames, u64 floor_frame, u64 limit_frame) {
    constexpr u64 kNone = ~u64{0};
    u64 best = kNone;
    auto consider = [&](u64 candidate) {
        if (candidate < floor_frame || candidate >= best || candidate > limit_frame ||
            limit_frame - candidate < storage_frames) {
            return;
        }
        if (run_is_usable(candidate, storage_frames)) best = candidate;
    };
    consider(floor_frame);
    for_each_usable_span([&](FrameSpan span) { consider(span.first); });
    for_each_blocked_span([&](FrameSpan span) { consider(span.end); });
    if (best == kNone) return false;
    storage_first_frame_ = best;
    return true;
}

FrameAllocator::PlanStatus FrameAllocator::plan(const MemoryRegion* regions, usize region_count,
                                                const PhysRange* excluded, usize excluded_count,
                                                u64 storage_limit) {
    LAMINA_ASSERT(!ready_);
    regions_ = regions;
    region_count_ = regions ? region_count : 0;
    excluded_ = excluded;
    excluded_count_ = excluded ? excluded_count : 0;
    storage_words_ = 0;

    u64 highest_end = 0;
    for_each_usable_span([&](FrameSpan span) { highest_end = max(highest_end, span.end); });
    if (highest_end == 0) return PlanStatus::NoUsableMemory;
    frame_count_ = highest_end;

    const u64 words = 2 * Bitmap::words_for(frame_count_);
    const u64 storage_frames = align_up(words * sizeof(u64), kFrameSize) / kFrameSize;
    const u64 limit_frame = min(storage_limit / kFrameSize, frame_count_);
    // Stay out of low memory if possible: real-mode code needs it later.
    if (!place_storage(storage_frames, kLowMemoryFrames, limit_frame) &&
        !place_storage(storage_frames, 0, limit_frame)) {
        return PlanStatus::NoRoomForBookkeeping;
    }
    storage_words_ = words;
    return PlanStatus::Ok;
}

void FrameAllocator::withdraw(FrameSpan span) {
    usable_.clear_range(span.first, span.end - span.first);
    in_use_.set_range(span.first, span.end - span.first);
}

void FrameAllocator::init(void* storage) {
    LAMINA_ASSERT(storage_words_ != 0 && !ready_);  // plan() first, and only once
    LAMINA_ASSERT(storage != nullptr && is_aligned(reinterpret_cast<uptr>(storage), sizeof(u64)));
    u64* words = static_cast<u64*>(storage);
    usable_.init(words, frame_count_);
    in_use_.init(words + storage_words_ / 2, frame_count_);

    // Add all usable spans first, then withdraw the blocked ones: reserved wins regardless of
    // the order of the map.
    in_use_.set_range(0, frame_count_);
    for_each_usable_span([&](FrameSpan span) {
        usable_.set_range(span.first, span.end - span.first);
        in_use_.clear_range(span.first, span.end - span.first);
    });
    for_each_blocked_span([&](FrameSpan span) { withdraw(span); });
    withdraw(round_outward(storage_phys(), storage_bytes()));

    usable_frames_ = usable_.count_set();
    free_frames_ = usable_frames_;
    next_fit_ = kLowMemoryFrames;
    regions_ = nullptr;
    region_count_ = 0;
    excluded_ = nullptr;
    excluded_count_ = 0;
    ready_ = true;
}

// Next fit from where the last allocation ended, then the rest above low memory, and low
// memory last.
u64 FrameAllocator::find_run(u64 count, u64 align, u64 limit) const {
    const u64 starts[] = {max(next_fit_, kLowMemoryFrames), kLowMemoryFrames, 0};
    for (u64 start : starts) {
        const usize found = in_use_.find_clear_run(count, align, start, limit);
        if (found != Bitmap::kNotFound) return found;
    }
    return Bitmap::kNotFound;
}

u64 FrameAllocator::allocate(u64 count, u64 align_frames, u64 max_phys) {
    if (count == 0 || !is_power_of_two(align_frames)) return kNoFrame;
    LockGuard guard(lock_);
    LAMINA_ASSERT(ready_);
    const u64 limit = min(max_phys / kFrameSize, frame_count_);
    const u64 first = find_run(count, align_frames, limit);
    if (first == Bitmap::kNotFound) return kNoFrame;
    in_use_.set_range(first, count);
    free_frames_ -= count;
    frames_allocated_ += count;
    next_fit_ = first + count;
    return first * kFrameSize;
}

u64 FrameAllocator::allocate_at(u64 phys, u64 count) {
    if (count == 0 || !is_aligned(phys, kFrameSize)) return kNoFrame;
    LockGuard guard(lock_);
    LAMINA_ASSERT(ready_);
    const u64 first = phys / kFrameSize;
    if (first >= frame_count_ || count > frame_count_ - first) return kNoFrame;
    if (!all_set(usable_, first, count) || in_use_.find_first_set(first) < first + count) return kNoFrame;
    in_use_.set_range(first, count);
    free_frames_ -= count;
    frames_allocated_ += count;
    return phys;
}

void FrameAllocator::free(u64 phys, u64 count) {
    LockGuard guard(lock_);
    LAMINA_ASSERT(ready_);
    LAMINA_ASSERT(is_aligned(phys, kFrameSize) && count != 0);
    const u64 first = phys / kFrameSize;
    LAMINA_ASSERT(first < frame_count_ && count <= frame_count_ - first);
    // Not memory this allocator manages: firmware, the image, or a wild address.
    LAMINA_ASSERT(all_set(usable_, first, count));
    // Managed but not allocated: a double free.
    LAMINA_ASSERT(all_set(in_use_, first, count));
    in_use_.clear_range(first, count);
    free_frames_ += count;
    frames_freed_ += count;
}

bool FrameAllocator::reserve(u64 base, u64 length) {
    FrameSpan span = round_outward(base, length);
    LockGuard guard(lock_);
    LAMINA_ASSERT(ready_);
    span.end = min(span.end, frame_count_);
    u64 withdrawn = 0;
    for (u64 frame = span.first; frame < span.end; ++frame) {
        if (!usable_.test(frame)) continue;
        if (in_use_.test(frame)) return false;
        ++withdrawn;
    }
    if (withdrawn == 0) return true;
    withdraw(span);
    usable_frames_ -= withdrawn;
    free_frames_ -= withdrawn;
    return true;
}

FrameAllocator::Stats FrameAllocator::stats() const {
    LockGuard guard(lock_);
    return {usable_frames_ * kFrameSize, free_frames_ * kFrameSize, frames_allocated_,
            frames_freed_};
}

}  // namespace lamina
