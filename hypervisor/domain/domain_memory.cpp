#include <hypervisor/domain/domain_memory.h>

#include <hypervisor/memory.h>
#include <lamina/string.h>

namespace lamina {
namespace {

constexpr i64 error(u32 code) { return -static_cast<i64>(code); }
constexpr u64 kLargePageFrames = 2 * MiB / kFrameSize;
// Guest frames above this are beyond any stage-2 format's reach (52-bit guest-physical).
constexpr u64 kGfnLimit = u64{1} << (52 - 12);

}  // namespace

i64 DomainMemory::set_max_frames(u64 max_frames) {
    if (max_frames < frames_) return error(LAMINA_EBUSY);
    max_frames_ = max_frames;
    return 0;
}

// Whether [first_gfn, first_gfn + count) may become new RAM of the domain: 0 or the errno.
i64 DomainMemory::check_new_ram(u64 first_gfn, u64 count) const {
    u64 end;
    if (count == 0 || add_overflows(first_gfn, count, &end) || end > kGfnLimit) return error(LAMINA_EINVAL);
    if (frames_ + count > max_frames_ || extent_count_ == kMaxExtents) return error(LAMINA_ENOSPC);
    if (overlaps(first_gfn, count)) return error(LAMINA_EEXIST);
    return 0;
}

i64 DomainMemory::populate_step(u64 first_gfn, u64 count) {
    count = min(count, kPopulateStepFrames);
    if (const i64 refused = check_new_ram(first_gfn, count)) return refused;
    // 2 MiB aligned when the guest frames are, so that stage 2 maps it with large pages.
    const bool large = first_gfn % kLargePageFrames == 0 && count >= kLargePageFrames;
    const u64 hpa = memory::allocate_frames(count, large ? kLargePageFrames : 1);
    if (!hpa) return error(LAMINA_ENOMEM);
    if (const i64 failed = add_extent(first_gfn, hpa, count)) return failed;
    return static_cast<i64>(count);
}

i64 DomainMemory::populate_identity(u64 first_gfn, u64 count) {
    if (const i64 refused = check_new_ram(first_gfn, count)) return refused;
    if (!memory::allocate_frames_at(first_gfn * kFrameSize, count)) return error(LAMINA_ENOMEM);
    if (const i64 failed = add_extent(first_gfn, first_gfn * kFrameSize, count)) return failed;
    return static_cast<i64>(count);
}

// Maps the frames (freed again if stage 2 has no table for them) and records the extent.
i64 DomainMemory::add_extent(u64 first_gfn, u64 hpa, u64 count) {
    if (!space_.map(first_gfn * kFrameSize, hpa, count * kFrameSize, {.read = true, .write = true, .execute = true}).ok()) {
        memory::free_frames(hpa, count);
        return error(LAMINA_ENOMEM);  // no frame for a table
    }
    Extent* last = extent_count_ ? &extents_[extent_count_ - 1] : nullptr;
    if (last && last->gfn + last->count == first_gfn && last->hpa + last->count * kFrameSize == hpa) {
        last->count += count;
    } else {
        extents_[extent_count_++] = {first_gfn, hpa, count};
    }
    frames_ += count;
    return 0;
}

void* DomainMemory::translate(u64 gpa, u64 size) const {
    u64 end;
    if (add_overflows(gpa, size, &end)) return nullptr;
    for (usize i = 0; i < extent_count_; ++i) {
        const Extent& e = extents_[i];
        const u64 start = e.gfn * kFrameSize;
        if (gpa >= start && end <= start + e.count * kFrameSize) return memory::phys_to_virt(e.hpa + (gpa - start));
    }
    return nullptr;
}

u64 DomainMemory::host_frame(u64 gfn) const {
    for (usize i = 0; i < extent_count_; ++i) {
        const Extent& e = extents_[i];
        if (gfn >= e.gfn && gfn - e.gfn < e.count) return e.hpa + (gfn - e.gfn) * kFrameSize;
    }
    return 0;
}

bool DomainMemory::overlaps(u64 first_gfn, u64 count) const {
    for (usize i = 0; i < extent_count_; ++i) {
        const Extent& e = extents_[i];
        if (first_gfn < e.gfn + e.count && e.gfn < first_gfn + count) return true;
    }
    return false;
}

void DomainMemory::release() {
    for (usize i = 0; i < extent_count_; ++i) {
        const Extent& e = extents_[i];
        (void)space_.unmap(e.gfn * kFrameSize, e.count * kFrameSize);
        memory::free_frames(e.hpa, e.count);
    }
    extent_count_ = 0;
    frames_ = 0;
}

}  // namespace lamina
