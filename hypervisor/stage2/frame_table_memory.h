// The image's table policy for stage-2 spaces: each table is a zeroed frame from the frame
// allocator, reached through the physmap. Image only (the host tests bring their own policy).
#pragma once

#include <hypervisor/memory.h>
#include <hypervisor/stage2/stage2_space.h>

namespace lamina::stage2 {

class FrameTableMemory {
public:
    u64 allocate_table() { return memory::allocate_frames(); }
    void free_table(u64 phys) { memory::free_frames(phys); }
    u64* table(u64 phys) { return static_cast<u64*>(memory::phys_to_virt(phys)); }
};

// Stateless, so this one object serves every space.
inline FrameTableMemory frame_table_memory;
using GuestSpace = Stage2Space<FrameTableMemory>;

}  // namespace lamina::stage2
