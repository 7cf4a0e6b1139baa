// Xen's PVH boot ABI, as every PVH loader implements it (Xen, QEMU, Firecracker,
// cloud-hypervisor): the kernel's 32-bit entry gets EBX = the guest-physical address of this
// structure (xen/include/public/arch-x86/hvm/start_info.h, version 1).
#pragma once

#include <lamina/types.h>

namespace lamina::pvh {

constexpr u32 kStartInfoMagic = 0x336ec578;

struct StartInfo {
    u32 magic;
    u32 version;
    u32 flags;
    u32 module_count;
    u64 module_list;    // guest-physical array of ModuleEntry
    u64 command_line;   // guest-physical, NUL-terminated
    u64 rsdp;
    u64 memory_map;     // guest-physical array of MemoryMapEntry (version >= 1)
    u32 memory_map_entries;
    u32 reserved;
};
static_assert(sizeof(StartInfo) == 56);

struct MemoryMapEntry {
    u64 address;
    u64 size;
    u32 type;  // E820 types: 1 = RAM, 2 = reserved
    u32 reserved;
};
static_assert(sizeof(MemoryMapEntry) == 24);

}  // namespace lamina::pvh
