#include <boot/multiboot2/multiboot2.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::mb2 {
namespace {

// Spec 3.6.2: the fixed part is {u32 total_size, u32 reserved}; every tag starts with
// {u32 type, u32 size} at an 8-byte aligned address, and size excludes the padding.
constexpr usize kFixedPartSize = 8;
constexpr usize kTagHeaderSize = 8;
constexpr usize kTagAlignment = 8;
constexpr usize kMemoryMapHeaderSize = 16;  // tag header + entry_size + entry_version
constexpr usize kMemoryMapEntrySize = 24;   // u64 base, u64 length, u32 type, u32 reserved
constexpr usize kEfiMemoryMapHeaderSize = 16;  // tag header + descriptor_size + descriptor_version
constexpr usize kModuleHeaderSize = 16;        // tag header + mod_start + mod_end
// The spec's prose (3.6.12) gives the framebuffer tag a u8 reserved field and a u32 palette
// count, but its reference multiboot2.h and GRUB use a u16 for both: the common part is 32 bytes,
// color information starts there, and a palette starts with a u16 count.
constexpr usize kFramebufferCommonSize = 32;
constexpr usize kRgbColorInfoSize = 6;
constexpr usize kPaletteEntrySize = 3;

// Reads a little-endian field that may sit at any alignment (descriptors of odd sizes do).
template <typename T>
T load(const u8* bytes) {
    T value;
    __builtin_memcpy(&value, bytes, sizeof(T));
    return value;
}

// Smallest size a tag of each parsed type may have: its fixed fields, plus the NUL of a string.
usize minimum_tag_size(TagType type) {
    switch (type) {
        case TagType::CommandLine:
        case TagType::BootLoaderName: return kTagHeaderSize + 1;
        case TagType::Module: return kModuleHeaderSize + 1;
        case TagType::BasicMemoryInfo: return 16;
        case TagType::MemoryMap: return kMemoryMapHeaderSize;
        case TagType::Framebuffer: return kFramebufferCommonSize;
        case TagType::Efi64SystemTable: return 16;
        case TagType::AcpiOldRsdp:
        case TagType::AcpiNewRsdp: return kTagHeaderSize + RsdpCopy::kRsdpV1Size;
        case TagType::EfiMemoryMap: return kEfiMemoryMapHeaderSize;
        case TagType::ImageLoadBase: return 12;
        default: return kTagHeaderSize;
    }
}

// Tags that describe the whole boot once, so that a second copy would contradict the first.
// Modules and network tags repeat by design (spec 3.6.6, 3.6.18); the others are not read.
bool is_singleton(TagType type) {
    switch (type) {
        case TagType::CommandLine:
        case TagType::BootLoaderName:
        case TagType::BasicMemoryInfo:
        case TagType::MemoryMap:
        case TagType::Framebuffer:
        case TagType::Efi64SystemTable:
        case TagType::AcpiOldRsdp:
        case TagType::AcpiNewRsdp:
        case TagType::EfiMemoryMap:
        case TagType::ImageLoadBase: return true;
        default: return false;
    }
}

// One tag whose header has been checked to lie inside total_size.
struct Tag {
    const u8* bytes;
    u32 size;
    usize offset;
    TagType type;

    u32 u32_at(usize field) const { return load<u32>(bytes + field); }
    u64 u64_at(usize field) const { return load<u64>(bytes + field); }
};

ParseResult success() { return {Status::Ok, "ok", 0, 0}; }

ParseResult failure(Status status, const char* reason, usize offset = 0, u32 tag_type = 0) {
    return {status, reason, offset, tag_type};
}

ParseResult failure(Status status, const char* reason, const Tag& tag) {
    return failure(status, reason, tag.offset, static_cast<u32>(tag.type));
}

// A string occupying bytes [from, tag.size) must end with a NUL inside the tag.
ParseResult read_string(const Tag& tag, usize from, const char** out) {
    const char* text = reinterpret_cast<const char*>(tag.bytes + from);
    if (str::length_bounded(text, tag.size - from) == tag.size - from)
        return failure(Status::UnterminatedString, "string is not NUL-terminated inside its tag",
                       tag);
    *out = text;
    return success();
}

ParseResult parse_module(const Tag& tag, BootInfo& info) {
    const u32 start = tag.u32_at(8);
    const u32 end = tag.u32_at(12);
    if (start > end) return failure(Status::BadModuleRange, "module starts after its end", tag);
    const char* command_line;
    ParseResult result = read_string(tag, kModuleHeaderSize, &command_line);
    if (!result.ok()) return result;
    if (info.module_count == BootInfo::kMaxModules) {
        info.warnings |= kWarnModulesTruncated;
        return success();
    }
    info.module_list[info.module_count++] = {start, end, command_line};
    return success();
}

ParseResult parse_memory_map(const Tag& tag, BootInfo& info) {
    // entry_version is not checked: spec 3.6.8 promises later versions stay compatible, and a
    // larger entry_size carries their extra fields, which are skipped.
    const u32 entry_size = tag.u32_at(8);
    if (entry_size < kMemoryMapEntrySize)
        return failure(Status::BadEntrySize, "memory map entry_size is below 24", tag);
    const usize entries_bytes = tag.size - kMemoryMapHeaderSize;
    if (entries_bytes % entry_size != 0)
        return failure(Status::BadEntrySize, "memory map entries do not fill the tag exactly",
                       tag);
    for (usize at = kMemoryMapHeaderSize; at < tag.size; at += entry_size) {
        const MemoryRegion region{tag.u64_at(at), tag.u64_at(at + 8), tag.u32_at(at + 16)};
        // A region running past 2^64 is corrupt. Dropping it is always safe: memory absent from
        // the map is a hole, which nothing allocates from, whereas clamping could hand out a
        // made-up "Available" range.
        u64 end;
        if (add_overflows(region.base, region.length, &end)) {
            info.warnings |= kWarnRegionOverflow;
            continue;
        }
        if (info.region_count == BootInfo::kMaxRegions) {
            info.warnings |= kWarnRegionsTruncated;
            break;
        }
        info.regions[info.region_count++] = region;
    }
    return success();
}

ParseResult parse_efi_memory_map(const Tag& tag, BootInfo& info) {
    const u32 descriptor_size = tag.u32_at(8);
    const u32 descriptor_version = tag.u32_at(12);
    if (descriptor_size < EfiMemoryMap::kMinimumDescriptorSize)
        return failure(Status::BadEntrySize, "EFI memory map descriptor_size is below 40", tag);
    const usize descriptors_bytes = tag.size - kEfiMemoryMapHeaderSize;
    if (descriptors_bytes % descriptor_size != 0)
        return failure(Status::BadEntrySize,
                       "EFI memory map descriptors do not fill the tag exactly", tag);
    info.efi_memory_map = EfiMemoryMap(tag.bytes + kEfiMemoryMapHeaderSize,
                                       descriptors_bytes / descriptor_size, descriptor_size,
                                       descriptor_version);
    return success();
}

ParseResult parse_framebuffer(const Tag& tag, BootInfo& info) {
    Framebuffer& fb = info.framebuffer;
    fb.address = tag.u64_at(8);
    fb.pitch = tag.u32_at(16);
    fb.width = tag.u32_at(20);
    fb.height = tag.u32_at(24);
    fb.bits_per_pixel = tag.bytes[28];
    fb.raw_type = tag.bytes[29];
    const u8* color_info = tag.bytes + kFramebufferCommonSize;
    const usize color_info_size = tag.size - kFramebufferCommonSize;
    switch (static_cast<FramebufferType>(fb.raw_type)) {
        case FramebufferType::Indexed: {
            if (color_info_size < sizeof(u16)) break;
            const u16 colors = load<u16>(color_info);
            if (colors * kPaletteEntrySize > color_info_size - sizeof(u16))
                return failure(Status::TagOutOfBounds, "framebuffer palette runs past its tag",
                               tag);
            fb.palette_colors = colors;
            fb.palette = color_info + sizeof(u16);
            fb.has_color_info = true;
            break;
        }
        case FramebufferType::DirectRgb:
            if (color_info_size < kRgbColorInfoSize) break;
            fb.red_position = color_info[0];
            fb.red_mask_size = color_info[1];
            fb.green_position = color_info[2];
            fb.green_mask_size = color_info[3];
            fb.blue_position = color_info[4];
            fb.blue_mask_size = color_info[5];
            fb.has_color_info = true;
            break;
        case FramebufferType::EgaText:
            break;
    }
    return success();
}

void copy_rsdp(const Tag& tag, RsdpCopy& out, usize max_length) {
    out.length = min<usize>(tag.size - kTagHeaderSize, max_length);
    str::copy_bytes(out.bytes, tag.bytes + kTagHeaderSize, out.length);
}

// The tag's size is already known to cover minimum_tag_size(tag.type).
ParseResult parse_tag(const Tag& tag, BootInfo& info) {
    switch (tag.type) {
        case TagType::CommandLine: return read_string(tag, kTagHeaderSize, &info.command_line);
        case TagType::BootLoaderName:
            return read_string(tag, kTagHeaderSize, &info.boot_loader_name);
        case TagType::Module: return parse_module(tag, info);
        case TagType::BasicMemoryInfo:
            info.mem_lower_kib = tag.u32_at(8);
            info.mem_upper_kib = tag.u32_at(12);
            return success();
        case TagType::MemoryMap: return parse_memory_map(tag, info);
        case TagType::Framebuffer: return parse_framebuffer(tag, info);
        case TagType::Efi64SystemTable:
            info.efi64_system_table = tag.u64_at(8);
            return success();
        case TagType::AcpiOldRsdp:
            copy_rsdp(tag, info.acpi_old_rsdp, RsdpCopy::kRsdpV1Size);
            return success();
        case TagType::AcpiNewRsdp:
            // GRUB copies RSDP.Length bytes (36 for ACPI 2.0+); the ACPI driver checks that the
            // Length and extended checksum are covered by what is kept.
            copy_rsdp(tag, info.acpi_new_rsdp, RsdpCopy::kRsdpV2Size);
            return success();
        case TagType::EfiMemoryMap: return parse_efi_memory_map(tag, info);
        case TagType::ImageLoadBase:
            info.image_load_base = tag.u32_at(8);
            return success();
        default:
            // Tag 18 carries nothing but its presence; the rest are not needed.
            return success();
    }
}

// Stable insertion sort by base: the map is small (at most kMaxRegions) and usually sorted.
void sort_regions(BootInfo& info) {
    for (usize i = 1; i < info.region_count; ++i) {
        const MemoryRegion region = info.regions[i];
        usize j = i;
        for (; j > 0 && info.regions[j - 1].base > region.base; --j)
            info.regions[j] = info.regions[j - 1];
        info.regions[j] = region;
    }
}

u64 tag_bit(u32 type) { return type < 64 ? u64{1} << type : 0; }

}  // namespace

MemoryType MemoryRegion::type() const {
    switch (static_cast<MemoryType>(raw_type)) {
        case MemoryType::Available:
        case MemoryType::Reserved:
        case MemoryType::AcpiReclaimable:
        case MemoryType::AcpiNvs:
        case MemoryType::BadRam: return static_cast<MemoryType>(raw_type);
    }
    return MemoryType::Reserved;  // spec 3.6.8: any other value means reserved
}

bool EfiMemoryDescriptor::physical_end(u64* out) const {
    u64 bytes;
    return !mul_overflows(number_of_pages, 4 * KiB, &bytes) &&
           !add_overflows(physical_start, bytes, out);
}

EfiMemoryDescriptor EfiMemoryMap::operator[](usize index) const {
    LAMINA_ASSERT(index < count_);
    // UEFI spec 2.10, 7.2: {u32 Type, (pad), u64 PhysicalStart, u64 VirtualStart,
    // u64 NumberOfPages, u64 Attribute}.
    const u8* d = descriptors_ + index * descriptor_size_;
    return {load<u32>(d), load<u64>(d + 8), load<u64>(d + 16), load<u64>(d + 24),
            load<u64>(d + 32)};
}

bool BootInfo::has(TagType type) const {
    return (present_tags & tag_bit(static_cast<u32>(type))) != 0;
}

u64 BootInfo::usable_bytes() const {
    // Regions are sorted by base, so one sweep with a high-water mark counts each byte once.
    u64 total = 0;
    u64 covered_until = 0;
    for (const MemoryRegion& region : memory_regions()) {
        if (!region.available()) continue;
        const u64 start = max(region.base, covered_until);
        if (region.end() > start) {
            total += region.end() - start;
            covered_until = region.end();
        }
    }
    return total;
}

ParseResult parse(const u8* info, usize available_bytes, BootInfo& out) {
    // Every default of BootInfo is zero, so clearing its bytes resets it without building a
    // multi-KiB temporary on the boot stack (which `out = BootInfo{}` does).
    static_assert(__is_trivially_copyable(BootInfo));
    str::fill_bytes(&out, 0, sizeof(out));
    if (info == nullptr) return failure(Status::BadHeader, "no boot information (null pointer)");
    if (!is_aligned(reinterpret_cast<uptr>(info), kTagAlignment))
        return failure(Status::BadHeader, "boot information is not 8-byte aligned");
    if (available_bytes < kFixedPartSize)
        return failure(Status::BadHeader, "fewer bytes readable than the 8-byte fixed part");
    // The reserved field (bytes 4..7) must be ignored (spec 3.6.2).
    const usize total_size = load<u32>(info);
    if (total_size < kFixedPartSize + kTagHeaderSize)
        return failure(Status::BadHeader, "total_size is below 16 (fixed part and end tag)");
    if (total_size > available_bytes)
        return failure(Status::BadHeader, "total_size exceeds the bytes readable");

    usize offset = kFixedPartSize;
    while (true) {
        if (offset > total_size - kTagHeaderSize)
            return failure(Status::MissingEndTag, "tags run out before the end tag", offset);
        const u32 raw_type = load<u32>(info + offset);
        const u32 size = load<u32>(info + offset + 4);
        const Tag tag{info + offset, size, offset, static_cast<TagType>(raw_type)};
        if (size < kTagHeaderSize)
            return failure(Status::TagOutOfBounds, "tag size is below its 8-byte header", tag);
        if (size > total_size - offset)
            return failure(Status::TagOutOfBounds, "tag runs past total_size", tag);
        if (tag.type == TagType::End) {
            if (size != kTagHeaderSize)
                return failure(Status::MissingEndTag, "end tag size is not 8", tag);
            sort_regions(out);
            return success();
        }
        if (size < minimum_tag_size(tag.type))
            return failure(Status::TagTooSmall, "tag is smaller than the fields of its type", tag);
        if (is_singleton(tag.type) && out.has(tag.type)) {
            out.warnings |= kWarnDuplicateTag;
        } else {
            ParseResult result = parse_tag(tag, out);
            if (!result.ok()) return result;
        }
        out.present_tags |= tag_bit(raw_type);
        offset += align_up(size, kTagAlignment);
    }
}

}  // namespace lamina::mb2
