// Xen's PVH boot ABI, as every PVH loader implements it (Xen, QEMU, Firecracker,
// cloud-hypervisor): the kernel's 32-bit entry (XEN_ELFNOTE_PHYS32_ENTRY) gets EBX = the
// guest-physical address of the start info. These are xen/include/public/arch-x86/hvm/start_info.h's
// hvm_start_info (version 1, with the memory map), hvm_modlist_entry and hvm_memmap_table_entry,
// byte for byte. Every address is guest-physical; 0 means "not present" (Xen loads nothing at 0).
#pragma once

#include <lamina/types.h>

namespace lamina::pvh {

constexpr u32 kStartInfoMagic = 0x336ec578;  // XEN_HVM_START_MAGIC_VALUE: "xEn3" with 0x80 in "E"
constexpr u32 kStartInfoVersion = 1;         // the first version with memory_map

// StartInfo::flags, the SIF_* flags of xen/include/public/xen.h.
constexpr u32 kFlagPrivileged = 1u << 0;     // SIF_PRIVILEGED: the domain controls the machine
constexpr u32 kFlagInitialDomain = 1u << 1;  // SIF_INITDOMAIN: the domain the hypervisor built (Dom0)

struct StartInfo {                // hvm_start_info
    u32 magic;
    u32 version;
    u32 flags;
    u32 module_count;             // nr_modules
    u64 module_list;              // modlist_paddr: array of ModuleEntry
    u64 command_line;             // cmdline_paddr: NUL-terminated
    u64 rsdp;                     // rsdp_paddr: the ACPI RSDP
    u64 memory_map;               // memmap_paddr: array of MemoryMapEntry (version >= 1)
    u32 memory_map_entries;       // memmap_entries: 0 = no map
    u32 reserved;                 // must be zero
};
static_assert(sizeof(StartInfo) == 56);

struct ModuleEntry {              // hvm_modlist_entry (a Linux kernel takes the first as initrd)
    u64 address;                  // paddr
    u64 size;
    u64 command_line;             // cmdline_paddr, 0 if none
    u64 reserved;
};
static_assert(sizeof(ModuleEntry) == 32);

// XEN_HVM_MEMMAP_TYPE_*: the ACPI address range types (ACPI 6.2, section 15), as in an E820 map.
enum class MemoryType : u32 {
    Ram = 1,
    Reserved = 2,
    AcpiReclaimable = 3,
    AcpiNvs = 4,
    Unusable = 5,
    Disabled = 6,
    Persistent = 7,
};

struct MemoryMapEntry {           // hvm_memmap_table_entry
    u64 address;                  // addr
    u64 size;
    MemoryType type;
    u32 reserved;                 // must be zero
};
static_assert(sizeof(MemoryMapEntry) == 24);

}  // namespace lamina::pvh
