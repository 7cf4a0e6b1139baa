#include <lamina/pvh_builder.h>

#include <lamina/assert.h>
#include <lamina/elf.h>
#include <lamina/string.h>

namespace lamina::pvh {
namespace {

// The kernel starts with paging off and 32-bit registers: everything it must find is below 4 GiB.
constexpr u64 kPlacementLimit = 4 * GiB;
// Page 0 stays empty: a 0 address in the start info means "not present".
constexpr u64 kLowestPlacement = kPageSize;

Result success() { return {Status::Ok, "ok", {}, nullptr}; }

Result fail(Status status, const char* message, u64 a = 0, u64 b = 0, u64 c = 0, u64 d = 0) {
    return {status, message, {a, b, c, d}, nullptr};
}

struct Range {
    u64 start;
    u64 end;  // exclusive
};

bool overlaps(Range a, Range b) { return a.start < b.end && b.start < a.end; }

bool page_align_up(u64 value, u64* out) {
    u64 sum;
    if (add_overflows(value, kPageSize - 1, &sum)) return false;
    *out = align_down(sum, kPageSize);
    return true;
}

Range segment_range(const elf::LoadSegment& s) { return {s.physical_address, s.physical_address + s.memory_size}; }
Range region_range(const Region& r) { return {r.address, r.address + r.size}; }

// What the placement of the boot info and the modules must stay clear of.
struct Occupancy {
    const elf::Image& image;
    const BuildRequest& request;
    Range placed[1 + kMaxModules];
    usize placed_count = 0;

    // The end of something in the way of `want`, if anything is.
    bool blocked(Range want, u64* blocker_end) const {
        auto check = [&](Range busy) {
            if (!overlaps(want, busy)) return false;
            *blocker_end = busy.end;
            return true;
        };
        for (usize i = 0; i < image.segment_count; ++i)
            if (check(segment_range(image.segments[i]))) return true;
        for (usize i = 0; i < request.region_count; ++i)
            if (check(region_range(request.regions[i]))) return true;
        for (usize i = 0; i < placed_count; ++i)
            if (check(placed[i])) return true;
        return false;
    }

    // First fit: the lowest page-aligned address at or above `from` where `size` bytes are free
    // below `limit`. Each step moves past an obstacle, so the search ends.
    bool place(u64 size, u64 from, u64 limit, u64* at) {
        u64 candidate;
        if (!page_align_up(from, &candidate)) return false;
        for (;;) {
            u64 end, blocker_end;
            if (add_overflows(candidate, size, &end) || end > limit) return false;
            if (!blocked({candidate, end}, &blocker_end)) break;
            if (!page_align_up(blocker_end, &candidate)) return false;
        }
        *at = candidate;
        placed[placed_count++] = {candidate, candidate + size};
        return true;
    }
};

Result check_regions(const BuildRequest& request) {
    if (request.region_count > kMaxRegions)
        return fail(Status::TooManyRegions, "{} reserved regions, more than the {} the builder takes",
                    request.region_count, kMaxRegions);
    for (usize i = 0; i < request.region_count; ++i) {
        const Region& r = request.regions[i];
        u64 end;
        if (r.size == 0 || add_overflows(r.address, r.size, &end) || r.type == MemoryType::Ram)
            return fail(Status::BadRegion,
                        "reserved region {} (at {:#x}, {:#x} bytes) is empty, wraps, or has the RAM type", i, r.address,
                        r.size);
        if (i > 0 && r.address < region_range(request.regions[i - 1]).end)
            return fail(Status::RegionsOutOfOrder, "reserved region {} at {:#x} overlaps or precedes region {}", i,
                        r.address, i - 1);
    }
    return success();
}

Result check_segments(const BuildRequest& request, const elf::Image& image) {
    for (usize i = 0; i < image.segment_count; ++i) {
        Range s = segment_range(image.segments[i]);
        if (s.end > request.ram_bytes)
            return fail(Status::SegmentOutsideRam, "segment {} [{:#x}, {:#x}) is outside the RAM [0, {:#x})", i,
                        s.start, s.end, request.ram_bytes);
        for (usize j = 0; j < i; ++j) {
            Range other = segment_range(image.segments[j]);
            if (overlaps(s, other))
                return fail(Status::SegmentsOverlap, "segments {} and {} overlap at [{:#x}, {:#x})", j, i,
                            max(s.start, other.start), min(s.end, other.end));
        }
        for (usize r = 0; r < request.region_count; ++r)
            if (overlaps(s, region_range(request.regions[r])))
                return fail(Status::SegmentInRegion, "segment {} [{:#x}, {:#x}) overlaps reserved region {}", i,
                            s.start, s.end, r);
    }
    // The entry must be code the image brings, not zero fill.
    for (usize i = 0; i < image.segment_count; ++i) {
        const elf::LoadSegment& s = image.segments[i];
        if (image.pvh_entry >= s.physical_address && image.pvh_entry - s.physical_address < s.file_size)
            return success();
    }
    return fail(Status::EntryOutsideSegments, "the PVH entry {:#x} is not inside a segment's bytes from the image",
                image.pvh_entry);
}

Result check_modules(const BuildRequest& request) {
    if (request.module_count > kMaxModules)
        return fail(Status::TooManyModules, "{} modules, more than the {} the builder takes", request.module_count,
                    kMaxModules);
    for (usize i = 0; i < request.module_count; ++i) {
        const Module& m = request.modules[i];
        LAMINA_ASSERT(m.data || m.size == 0);
        if (m.name && str::length_bounded(m.name, kMaxModuleName + 1) > kMaxModuleName)
            return fail(Status::ModuleNameTooLong, "the name of module {} is longer than {} bytes", i, kMaxModuleName);
    }
    return success();
}

bool has_name(const Module& module) { return module.name && module.name[0]; }

// Calls emit(entry) for the memory map, in address order: RAM with the regions cut out, and the
// regions (sorted and disjoint, as check_regions made sure).
template <typename Emit>
void for_each_memory_map_entry(const BuildRequest& request, Emit emit) {
    u64 cursor = 0;
    for (usize i = 0; i < request.region_count; ++i) {
        const Region& r = request.regions[i];
        u64 ram_end = min(r.address, request.ram_bytes);
        if (cursor < ram_end) emit(MemoryMapEntry{cursor, ram_end - cursor, MemoryType::Ram, 0});
        emit(MemoryMapEntry{r.address, r.size, r.type, 0});
        cursor = r.address + r.size;
    }
    if (cursor < request.ram_bytes) emit(MemoryMapEntry{cursor, request.ram_bytes - cursor, MemoryType::Ram, 0});
}

// Writes through the caller's accessor and remembers the first refusal.
class Writer {
public:
    explicit Writer(GuestMemoryWriter& memory) : memory_(memory) {}

    void write(u64 gpa, const void* data, u64 size) {
        if (size && result_.ok() && !memory_.write(gpa, data, size)) refused(gpa, size);
    }
    void zero(u64 gpa, u64 size) {
        if (size && result_.ok() && !memory_.zero(gpa, size)) refused(gpa, size);
    }
    const Result& result() const { return result_; }

private:
    void refused(u64 gpa, u64 size) {
        result_ = fail(Status::WriteFailed, "writing guest memory [{:#x}, {:#x}) failed", gpa, gpa + size);
    }

    GuestMemoryWriter& memory_;
    Result result_ = success();
};

}  // namespace

Result build(const BuildRequest& request, GuestMemoryWriter& memory, Layout& layout) {
    LAMINA_ASSERT(request.modules || request.module_count == 0);
    layout = {};
    elf::Image image;
    elf::Result parsed = elf::parse(request.kernel, request.kernel_size, image);
    if (!parsed.ok()) return {Status::BadImage, "the kernel is not a loadable ELF image: {}", {}, parsed.reason};
    if (!image.pvh_entry)
        return fail(Status::NoPvhEntry, "the kernel has no PVH entry point (no XEN_ELFNOTE_PHYS32_ENTRY note)");
    if (request.ram_bytes == 0 || !is_aligned(request.ram_bytes, kPageSize))
        return fail(Status::BadRamSize, "the RAM size {:#x} is zero or not a multiple of 4 KiB", request.ram_bytes);
    if (Result r = check_regions(request); !r.ok()) return r;
    if (Result r = check_segments(request, image); !r.ok()) return r;
    const char* command_line = request.command_line ? request.command_line : "";
    usize command_line_length = str::length_bounded(command_line, kMaxCommandLine + 1);
    if (command_line_length > kMaxCommandLine)
        return fail(Status::CommandLineTooLong, "the command line is longer than {} bytes", kMaxCommandLine);
    if (Result r = check_modules(request); !r.ok()) return r;

    Occupancy occupancy{image, request, {}};
    u64 limit = min(request.ram_bytes, kPlacementLimit);
    u64 boot_info = 0;
    u64 module_addresses[kMaxModules] = {};
    if (!occupancy.place(kBootInfoSize, kLowestPlacement, limit, &boot_info))
        return fail(Status::NoRoomForBootInfo, "no free {:#x} bytes in RAM below {:#x} for the boot information",
                    kBootInfoSize, limit);
    // Each module above the one before, so that they lie in request order (an empty one too).
    u64 from = image.highest_end;
    for (usize i = 0; i < request.module_count; ++i) {
        const u64 size = request.modules[i].size;
        if (!occupancy.place(size, from, limit, &module_addresses[i]))
            return fail(Status::ModuleTooBig, "module {} ({:#x} bytes) does not fit in free RAM between {:#x} and {:#x}",
                        i, size, from, limit);
        from = module_addresses[i] + size;
    }

    StartInfo start{};
    start.magic = kStartInfoMagic;
    start.version = kStartInfoVersion;
    start.flags = request.flags;
    start.rsdp = request.rsdp;
    start.memory_map = boot_info + kBootInfoMemoryMapOffset;
    for_each_memory_map_entry(request, [&](const MemoryMapEntry&) { ++start.memory_map_entries; });
    if (request.module_count) {
        start.module_count = static_cast<u32>(request.module_count);
        start.module_list = boot_info + kBootInfoModuleOffset;
    }
    if (command_line_length) start.command_line = boot_info + kBootInfoCommandLineOffset;

    Writer out(memory);
    for (usize i = 0; i < image.segment_count; ++i) {
        const elf::LoadSegment& s = image.segments[i];
        out.write(s.physical_address, request.kernel + s.file_offset, s.file_size);
        out.zero(s.physical_address + s.file_size, s.memory_size - s.file_size);
    }
    for (usize i = 0; i < request.module_count; ++i)
        out.write(module_addresses[i], request.modules[i].data, request.modules[i].size);
    out.zero(boot_info, kBootInfoSize);
    out.write(boot_info, &start, sizeof(start));
    for (usize i = 0; i < request.module_count; ++i) {
        const Module& m = request.modules[i];
        const u64 name = boot_info + kBootInfoModuleNameOffset + i * kBootInfoModuleNameSize;
        const ModuleEntry entry{module_addresses[i], m.size, has_name(m) ? name : 0, 0};
        out.write(start.module_list + i * sizeof(ModuleEntry), &entry, sizeof(entry));
        if (has_name(m)) out.write(name, m.name, str::length(m.name) + 1);
    }
    u64 next_entry = start.memory_map;
    for_each_memory_map_entry(request, [&](const MemoryMapEntry& entry) {
        out.write(next_entry, &entry, sizeof(entry));
        next_entry += sizeof(entry);
    });
    if (command_line_length) out.write(start.command_line, command_line, command_line_length + 1);
    if (!out.result().ok()) return out.result();

    layout.entry = {EntryMode::Protected32, image.pvh_entry, boot_info, 0};
    layout.kernel_start = image.lowest_address;
    layout.kernel_end = image.highest_end;
    layout.start_info = boot_info;
    layout.module_list = start.module_list;
    layout.module_count = start.module_count;
    layout.memory_map = start.memory_map;
    layout.memory_map_entries = start.memory_map_entries;
    layout.command_line = start.command_line;
    layout.highest_used = max(image.highest_end, boot_info + kBootInfoSize);
    for (usize i = 0; i < request.module_count; ++i) {
        layout.modules[i] = module_addresses[i];
        layout.highest_used = max(layout.highest_used, module_addresses[i] + request.modules[i].size);
    }
    return success();
}

void describe(Sink& sink, const Result& result) {
    if (result.status == Status::BadImage) format(sink, result.message, result.image_reason);
    else format(sink, result.message, result.values[0], result.values[1], result.values[2], result.values[3]);
}

}  // namespace lamina::pvh
