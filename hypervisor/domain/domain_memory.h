// The RAM a domain owns: extents of host frames at guest frames, each mapped in the domain's
// stage-2 space, counted against the domain's maximum. Frames come zeroed from the frame
// allocator, so no domain ever sees what an earlier owner left.
#pragma once

#include <hypervisor/mm/frame_allocator.h>
#include <hypervisor/stage2/frame_table_memory.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>
#include <lamina/types.h>

namespace lamina {

class DomainMemory {
public:
    // Extents one domain may own; populate calls that would need more fail with -ENOSPC.
    static constexpr usize kMaxExtents = 64;
    // Frames one populate step allocates (contiguous) and zeroes before the hypercall lets the
    // CPU go. Hypercall buffers must lie in one extent, so the steps are large.
    static constexpr u64 kPopulateStepFrames = LAMINA_DOMAIN_POPULATE_STEP_PAGES;
    static_assert(kPopulateStepFrames * kFrameSize == 256 * MiB);

    explicit DomainMemory(stage2::GuestSpace& space) : space_(space) {}
    DomainMemory(const DomainMemory&) = delete;
    DomainMemory& operator=(const DomainMemory&) = delete;
    ~DomainMemory() { release(); }

    u64 max_frames() const { return max_frames_; }
    u64 frames() const { return frames_; }
    // -EBUSY: it owns more already.
    i64 set_max_frames(u64 max_frames);

    // Gives the domain zeroed RAM at guest frames [first_gfn, first_gfn + count): at most
    // kPopulateStepFrames of it, in one host extent (merged with the one before when both
    // continue it). Returns how many frames it added (the
    // caller continues with the rest), or -ENOSPC (over the maximum, or out of extents),
    // -ENOMEM (the host has none), -EEXIST (a frame is RAM already), -EINVAL (the range wraps
    // or leaves guest-physical space).
    i64 populate_step(u64 first_gfn, u64 count);
    // RAM at guest frames [first_gfn, first_gfn + count) that are the same host frames (the
    // control domain's 1:1 RAM), in one extent. -ENOMEM when those host frames are not free RAM.
    i64 populate_identity(u64 first_gfn, u64 count);

    // The hypervisor's view of guest-physical [gpa, gpa + size), when it is RAM of one extent;
    // null otherwise.
    void* translate(u64 gpa, u64 size) const;
    // The host frame behind a RAM guest frame; 0 when it is not RAM.
    u64 host_frame(u64 gfn) const;
    // Whether any frame of [first_gfn, first_gfn + count) is RAM.
    bool overlaps(u64 first_gfn, u64 count) const;

    // Unmaps and frees everything. The domain's vCPUs are gone: nothing holds translations.
    void release();

private:
    i64 check_new_ram(u64 first_gfn, u64 count) const;
    i64 add_extent(u64 first_gfn, u64 hpa, u64 count);

    struct Extent {
        u64 gfn;
        u64 hpa;
        u64 count;
    };
    stage2::GuestSpace& space_;
    Extent extents_[kMaxExtents] = {};
    usize extent_count_ = 0;
    u64 frames_ = 0;
    u64 max_frames_ = 0;
};

}  // namespace lamina
