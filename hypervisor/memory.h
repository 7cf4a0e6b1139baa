// The hypervisor's memory as the rest of the image sees it: frames, the physmap (all RAM at a
// fixed offset, never executable) and device mappings. Built from the boot memory map.
#pragma once

#include <lamina/types.h>

namespace lamina::mb2 {
struct BootInfo;
}

namespace lamina::memory {

constexpr u64 kPhysmapBase = 0xffff800000000000;
constexpr u64 kNoLimit = ~u64{0};

// Phase 1 of boot: builds the frame allocator from the memory map (never handing out the image,
// the boot information, the modules or the ACPI tables) and the hypervisor's page tables
// (text RX, rodata R, data RW+NX, all RAM in the physmap RW+NX), then switches to them.
void init(const mb2::BootInfo& boot, u64 info_phys, u64 info_size);
// Bytes of the loaded image (all of its segments, bss included).
u64 image_bytes();

// Zeroed frames; returns 0 when none are left (frame 0 is never handed out).
u64 allocate_frames(usize count = 1, usize align_frames = 1, u64 max_phys = kNoLimit);
// Zeroed frames at exactly [phys, phys + count frames); 0 when any of them is taken or not RAM.
u64 allocate_frames_at(u64 phys, usize count);
void free_frames(u64 phys, usize count = 1);

inline void* phys_to_virt(u64 phys) { return reinterpret_cast<void*>(kPhysmapBase + phys); }
u64 virt_to_phys(const void* virt);

// Maps device registers uncached into the physmap (one alias per frame, so no conflicting
// memory types); returns the virtual address.
void* map_device(u64 phys, usize size);

// Identity-maps one page executable (the SMP start-up code, while APs come up) and undoes it.
bool map_identity_executable(u64 phys);
void unmap_identity(u64 phys);

// Whether a hypervisor virtual address is mapped now. Takes no lock: usable on the panic path.
bool is_mapped(u64 virt);

// A kernel stack of `pages` pages with an unmapped guard page below it; returns its top.
u64 allocate_stack(usize pages);

struct Stats {
    u64 usable_bytes;       // RAM the machine has
    u64 free_bytes;         // RAM still free
    u64 hypervisor_bytes;   // RAM the hypervisor keeps for itself (image + allocations)
};
Stats stats();

}  // namespace lamina::memory
