// The Multiboot2 boot information parser (Multiboot2 specification 1.0, section 3.6 "Boot
// information format"). GRUB hands the hypervisor a list of tags; parse() validates every length
// and offset against the structure's own total_size and the bytes the caller can read, and fills a
// BootInfo without allocating.
//
// Strings, module command lines, the framebuffer palette and the EFI memory map are views into
// the boot information itself: the caller keeps those bytes (and reserves their frames) for as
// long as it uses the BootInfo. The BootInfo is large (a few KiB): give it static storage, not a
// stack slot.
#pragma once

#include <lamina/types.h>

namespace lamina::mb2 {

// Tag types (spec 3.6). Types this parser does not read are skipped but still recorded
// in BootInfo::present_tags.
enum class TagType : u32 {
    End = 0,
    CommandLine = 1,
    BootLoaderName = 2,
    Module = 3,
    BasicMemoryInfo = 4,
    BiosBootDevice = 5,
    MemoryMap = 6,
    VbeInfo = 7,
    Framebuffer = 8,
    ElfSections = 9,
    ApmTable = 10,
    Efi32SystemTable = 11,
    Efi64SystemTable = 12,
    SmbiosTables = 13,
    AcpiOldRsdp = 14,
    AcpiNewRsdp = 15,
    NetworkInfo = 16,
    EfiMemoryMap = 17,
    EfiBootServicesNotTerminated = 18,
    Efi32ImageHandle = 19,
    Efi64ImageHandle = 20,
    ImageLoadBase = 21,
};

// Memory map entry types (spec 3.6.8). Any other value means reserved.
enum class MemoryType : u32 {
    Available = 1,
    Reserved = 2,
    AcpiReclaimable = 3,
    AcpiNvs = 4,
    BadRam = 5,
};

struct MemoryRegion {
    u64 base;
    u64 length;
    u32 raw_type;  // as the loader gave it; type() folds unknown values into Reserved

    MemoryType type() const;
    bool available() const { return raw_type == static_cast<u32>(MemoryType::Available); }
    // One past the last byte. Never overflows: the parser drops regions whose end would.
    u64 end() const { return base + length; }
};

// A boot module (spec 3.6.6): physical [start, end) and its command line (never null; may be "").
struct Module {
    u32 start;
    u32 end;
    const char* command_line;

    u32 size() const { return end - start; }
};

// A read-only array view, so callers can range-for over what the parser kept.
template <typename T>
struct View {
    const T* items = nullptr;
    usize count = 0;

    const T* begin() const { return items; }
    const T* end() const { return items + count; }
    usize size() const { return count; }
    bool empty() const { return count == 0; }
    const T& operator[](usize index) const { return items[index]; }
};

// EFI_MEMORY_DESCRIPTOR (UEFI spec 2.10, 7.2 GetMemoryMap()), decoded from the tag's bytes.
struct EfiMemoryDescriptor {
    u32 type;  // EFI_MEMORY_TYPE: 7 = EfiConventionalMemory, 3/4 = boot services code/data, ...
    u64 physical_start;
    u64 virtual_start;
    u64 number_of_pages;  // of 4 KiB, whatever the firmware's own page size
    u64 attribute;

    // One past the last byte; false when the firmware's numbers overflow 64 bits.
    bool physical_end(u64* out) const;
};

// The EFI memory map (tag 17) as a view into the boot information. Firmware may use descriptors
// larger than the structure above (descriptor_size), so they are reached by stride, never by
// casting to an array of structs.
class EfiMemoryMap {
public:
    static constexpr u32 kMinimumDescriptorSize = 40;  // sizeof(EFI_MEMORY_DESCRIPTOR)

    constexpr EfiMemoryMap() = default;
    EfiMemoryMap(const u8* descriptors, usize count, u32 descriptor_size, u32 descriptor_version)
        : descriptors_(descriptors),
          count_(count),
          descriptor_size_(descriptor_size),
          descriptor_version_(descriptor_version) {}

    usize size() const { return count_; }
    bool empty() const { return count_ == 0; }
    u32 descriptor_size() const { return descriptor_size_; }
    u32 descriptor_version() const { return descriptor_version_; }
    EfiMemoryDescriptor operator[](usize index) const;

    class Iterator {
    public:
        Iterator(const EfiMemoryMap* map, usize index) : map_(map), index_(index) {}
        EfiMemoryDescriptor operator*() const { return (*map_)[index_]; }
        Iterator& operator++() {
            ++index_;
            return *this;
        }
        bool operator!=(const Iterator& other) const { return index_ != other.index_; }

    private:
        const EfiMemoryMap* map_;
        usize index_;
    };
    Iterator begin() const { return Iterator(this, 0); }
    Iterator end() const { return Iterator(this, count_); }

private:
    const u8* descriptors_ = nullptr;
    usize count_ = 0;
    u32 descriptor_size_ = 0;
    u32 descriptor_version_ = 0;
};

enum class FramebufferType : u8 { Indexed = 0, DirectRgb = 1, EgaText = 2 };

// Tag 8 (spec 3.6.12). Color information is optional: has_color_info says whether it was there.
struct Framebuffer {
    u64 address;
    u32 pitch;
    u32 width;
    u32 height;
    u8 bits_per_pixel;
    u8 raw_type;  // FramebufferType, or an unknown value from a newer loader
    bool has_color_info;
    // DirectRgb: position and width of each color field.
    u8 red_position, red_mask_size;
    u8 green_position, green_mask_size;
    u8 blue_position, blue_mask_size;
    // Indexed: palette_colors entries of {u8 red, u8 green, u8 blue}, a view into the info.
    const u8* palette;
    u16 palette_colors;
};

// A copy of the RSDP the loader found (tags 14 and 15). Only the bytes are kept: checksums and
// the ACPI revision are the ACPI driver's business.
struct RsdpCopy {
    static constexpr usize kRsdpV1Size = 20;  // ACPI 6.5, 5.2.5.3
    static constexpr usize kRsdpV2Size = 36;
    u8 bytes[kRsdpV2Size];
    usize length;  // bytes kept: 20 for tag 14, up to 36 for tag 15
};

// Conditions that did not stop the parse but lost information.
enum Warning : u32 {
    kWarnRegionsTruncated = 1u << 0,   // more memory map entries than BootInfo::kMaxRegions
    kWarnModulesTruncated = 1u << 1,   // more modules than BootInfo::kMaxModules
    kWarnRegionOverflow = 1u << 2,     // an entry's base + length wrapped 2^64: dropped
    kWarnDuplicateTag = 1u << 3,       // a tag that may appear once appeared again: later ignored
};

struct BootInfo {
    static constexpr usize kMaxRegions = 256;
    static constexpr usize kMaxModules = 32;

    u64 present_tags = 0;  // bit n set: a tag of type n (< 64) was seen, parsed or not
    u32 warnings = 0;      // Warning bits

    const char* command_line = nullptr;      // tag 1
    const char* boot_loader_name = nullptr;  // tag 2
    u32 mem_lower_kib = 0;                   // tag 4: RAM below 1 MiB
    u32 mem_upper_kib = 0;                   // tag 4: RAM from 1 MiB to the first hole
    Framebuffer framebuffer = {};            // tag 8
    u64 efi64_system_table = 0;              // tag 12
    RsdpCopy acpi_old_rsdp = {};             // tag 14
    RsdpCopy acpi_new_rsdp = {};             // tag 15
    EfiMemoryMap efi_memory_map;             // tag 17
    u32 image_load_base = 0;                 // tag 21

    // Tag 6, sorted by base address (stable: equal bases keep the loader's order). Available
    // regions include the hypervisor image, this boot information and the modules (spec 3.6.8):
    // whoever hands out frames must carve those out first.
    MemoryRegion regions[kMaxRegions] = {};
    usize region_count = 0;
    // Tags 3, in the loader's order.
    Module module_list[kMaxModules] = {};
    usize module_count = 0;

    bool has(TagType type) const;
    bool has_warning(Warning warning) const { return (warnings & warning) != 0; }
    // EFI boot services still run (tag 18): ExitBootServices() is the hypervisor's job.
    bool efi_boot_services_active() const { return has(TagType::EfiBootServicesNotTerminated); }

    View<MemoryRegion> memory_regions() const { return {regions, region_count}; }
    View<Module> modules() const { return {module_list, module_count}; }

    // Bytes of Available memory, each byte counted once however many entries cover it.
    u64 usable_bytes() const;
};

enum class Status : u8 {
    Ok,
    BadHeader,           // null/misaligned pointer, total_size too small or beyond what is readable
    TagOutOfBounds,      // a tag header or body does not fit inside total_size
    TagTooSmall,         // a tag smaller than the fixed fields of its type
    MissingEndTag,       // the tags run out before a type 0 tag, or the end tag is malformed
    UnterminatedString,  // no NUL inside the tag
    BadEntrySize,        // (EFI) memory map entries too small, or not filling the tag exactly
    BadModuleRange,      // a module whose start lies after its end
};

struct ParseResult {
    Status status;
    const char* reason;  // one human-readable sentence, static storage
    usize offset;        // byte offset of the offending tag (0 for the fixed part)
    u32 tag_type;        // type of the offending tag (0 for the fixed part)

    bool ok() const { return status == Status::Ok; }
};

// Parses the boot information at `info`, of which `available_bytes` may be read. On failure `out`
// holds whatever was parsed before the error and must not be trusted.
ParseResult parse(const u8* info, usize available_bytes, BootInfo& out);

}  // namespace lamina::mb2
