// The PVH domain builder: loads a PVH ELF kernel, named modules (a Linux kernel takes the first
// as its initrd) and the boot information (xen/include/public/arch-x86/hvm/start_info.h, through
// <lamina/pvh.h>) into a new domain's RAM and says how its first vCPU starts. The hypervisor
// builds Dom0 with it and Dom0's toolstack every other PVH domain; each supplies a
// GuestMemoryWriter over the domain's memory.
//
// The domain's RAM is guest-physical [0, ram_bytes), less the reserved regions the caller passes
// (MMIO holes, ACPI tables, pages the hypervisor keeps). The layout is deterministic:
//
//   kernel       each PT_LOAD segment at its p_paddr; bytes past p_filesz (the BSS) zeroed
//   boot info    two pages, the lowest free ones at or above 4 KiB (page 0 stays empty: 0 means
//                "not present" in the start info), so 0x1000 for a kernel linked at 1 MiB:
//                  +0       StartInfo                 (EBX points here)
//                  +64      ModuleEntry[]             (at most kMaxModules)
//                  +576     MemoryMapEntry[]          (at most kMaxMemoryMapEntries)
//                  +3072    the module names, 64 bytes each, NUL-terminated: module i's
//                           ModuleEntry::command_line is +3072 + 64 * i (0 if it has no name)
//                  +4096    the command line, NUL-terminated (at most kMaxCommandLine bytes)
//                the rest of the two pages is zero
//   modules      in request order, each page-aligned at the lowest free address above the
//                previous one's end (the first: above the kernel's end)
//
// "Free" means inside RAM, below 4 GiB (the kernel reads all of it in 32-bit mode, paging off),
// and clear of the kernel's segments, the reserved regions and whatever was placed before. The
// memory map lists RAM with the reserved regions cut out and the regions themselves, in address
// order; the kernel, boot info and modules are RAM in it (the kernel knows where they are from
// the start info). The builder writes nothing else: the rest of RAM is as the caller gave it
// (a new domain's frames are zeroed when they are allocated).
#pragma once

#include <lamina/format.h>
#include <lamina/pvh.h>
#include <lamina/types.h>

namespace lamina::pvh {

// The domain's memory as the builder sees it: guest-physical writes, each refused (false) when
// any byte of it lies outside the domain's memory.
class GuestMemoryWriter {
public:
    virtual bool write(u64 gpa, const void* data, usize size) = 0;
    virtual bool zero(u64 gpa, u64 size) = 0;

protected:
    ~GuestMemoryWriter() = default;
};

// A range the builder must not use, reported to the guest in the memory map with its type.
struct Region {
    u64 address;
    u64 size;
    MemoryType type;  // anything but Ram
};

constexpr u64 kPageSize = 4096;
constexpr usize kMaxRegions = 32;
// RAM split around every region, plus the regions.
constexpr usize kMaxMemoryMapEntries = 2 * kMaxRegions + 1;
constexpr usize kMaxModules = 16;
constexpr usize kMaxModuleName = 63;     // bytes before the NUL
constexpr usize kMaxCommandLine = 2047;  // bytes before the NUL; Linux's x86 COMMAND_LINE_SIZE is 2048
constexpr u64 kBootInfoSize = 2 * kPageSize;
constexpr u64 kBootInfoModuleOffset = 64;
constexpr u64 kBootInfoMemoryMapOffset = 576;
constexpr u64 kBootInfoModuleNameOffset = 3072;
constexpr u64 kBootInfoModuleNameSize = kMaxModuleName + 1;
constexpr u64 kBootInfoCommandLineOffset = 4096;
static_assert(kBootInfoModuleOffset >= sizeof(StartInfo));
static_assert(kBootInfoMemoryMapOffset >= kBootInfoModuleOffset + kMaxModules * sizeof(ModuleEntry));
static_assert(kBootInfoModuleNameOffset >= kBootInfoMemoryMapOffset + kMaxMemoryMapEntries * sizeof(MemoryMapEntry));
static_assert(kBootInfoCommandLineOffset >= kBootInfoModuleNameOffset + kMaxModules * kBootInfoModuleNameSize);
static_assert(kBootInfoCommandLineOffset + kMaxCommandLine + 1 <= kBootInfoSize);

// A file the kernel gets along with its command line: a ramdisk, a config, another kernel.
struct Module {
    const u8* data;    // may be null when size is 0
    usize size;
    const char* name;  // NUL-terminated, at most kMaxModuleName bytes; null or "" for none
};

struct BuildRequest {
    const u8* kernel = nullptr;  // the ELF image
    usize kernel_size = 0;
    u64 ram_bytes = 0;           // a multiple of 4 KiB
    const Module* modules = nullptr;     // at most kMaxModules, placed in this order
    usize module_count = 0;
    const char* command_line = nullptr;  // NUL-terminated; null or "" for none
    const Region* regions = nullptr;     // in ascending address order, not overlapping
    usize region_count = 0;
    u32 flags = 0;                       // StartInfo::flags (kFlagPrivileged | kFlagInitialDomain for Dom0)
    u64 rsdp = 0;                        // the guest's ACPI RSDP, 0 if it has none
};

// How the first vCPU starts: what the vCPU interface's EntryState (hypervisor/vcpu.h), which
// lib/ cannot include, is made from. PVH is always Protected32: flat 32-bit segments, paging
// off, EBX = the start info, no stack.
enum class EntryMode : u8 { Real, Protected32 };

struct EntryState {
    EntryMode mode;
    u64 rip;
    u64 rbx;
    u64 rsp;
};

// Where everything went; 0 for what is absent.
struct Layout {
    EntryState entry;
    u64 kernel_start;        // lowest segment address
    u64 kernel_end;          // end of the highest segment, exclusive
    u64 start_info;          // the boot info (== entry.rbx)
    u64 module_list;
    u32 module_count;
    u64 modules[kMaxModules];  // where each module went, in request order
    u64 memory_map;
    u32 memory_map_entries;
    u64 command_line;
    u64 highest_used;        // end of the highest thing placed (an empty module counts), exclusive
};

enum class Status : u8 {
    Ok,
    BadImage,                // the ELF parser refused the kernel
    NoPvhEntry,
    BadRamSize,
    TooManyRegions,
    BadRegion,
    RegionsOutOfOrder,
    SegmentOutsideRam,
    SegmentsOverlap,
    SegmentInRegion,
    EntryOutsideSegments,
    CommandLineTooLong,
    TooManyModules,
    ModuleNameTooLong,
    NoRoomForBootInfo,
    ModuleTooBig,
    WriteFailed,
};

struct Result {
    Status status;
    // A static one-line message; its {} placeholders take `values` in order (or, for BadImage,
    // the ELF parser's reason). describe() puts them together.
    const char* message;
    u64 values[4];
    const char* image_reason;  // BadImage only
    bool ok() const { return status == Status::Ok; }
};

// Validates everything first and writes only once it all fits; a failed write (the writer's
// refusal) can still leave part of the domain written.
Result build(const BuildRequest& request, GuestMemoryWriter& memory, Layout& layout);

// The one-line message of a result, numbers filled in.
void describe(Sink& sink, const Result& result);

}  // namespace lamina::pvh
