// Feeds a guest kernel to the ELF parser, Dom0's image classifier and the PVH domain builder; checks
// that segments lie inside the file, and that the builder writes only inside RAM and outside the
// reserved page, lays kernel, boot information and ramdisk out apart, and puts the start info at EBX.
#include "fuzz_support.h"

#include <dom0/toolstack/images.h>
#include <lamina/elf.h>
#include <lamina/pvh_builder.h>

#include <vector>

using namespace lamina;

namespace {

// What the toolstack gives a domain of the default size: 32 MiB, the last page its console's.
constexpr u64 kRamBytes = 32 * MiB;
constexpr u64 kConsolePage = kRamBytes - pvh::kPageSize;

struct Range {
    u64 start;
    u64 end;
};

bool overlaps(Range a, Range b) { return a.start < b.end && b.start < a.end; }

// The domain's RAM as a record of what was written where; nothing is stored but the start info.
class RecordingMemory final : public pvh::GuestMemoryWriter {
public:
    bool write(u64 gpa, const void* data, usize size) override {
        if (!accept(gpa, size)) return false;
        if (size == sizeof(pvh::StartInfo)) {
            pvh::StartInfo info;
            std::memcpy(&info, data, sizeof(info));
            if (info.magic == pvh::kStartInfoMagic) start_infos.push_back({gpa, info});
        }
        return true;
    }
    bool zero(u64 gpa, u64 size) override { return accept(gpa, size); }

    struct WrittenStartInfo {
        u64 gpa;
        pvh::StartInfo info;
    };
    std::vector<WrittenStartInfo> start_infos;

private:
    // The builder must keep inside RAM and out of the reserved console page.
    static bool accept(u64 gpa, u64 size) {
        u64 end;
        FUZZ_CHECK(size != 0 && !add_overflows(gpa, size, &end) && end <= kRamBytes);
        FUZZ_CHECK(!overlaps({gpa, end}, {kConsolePage, kRamBytes}));
        return true;
    }
};

void check_image(const elf::Image& image, usize file_size) {
    FUZZ_CHECK(image.segment_count >= 1 && image.segment_count <= elf::Image::kMaxSegments);
    u64 lowest = ~u64{0}, highest_end = 0;
    for (usize i = 0; i < image.segment_count; ++i) {
        const elf::LoadSegment& s = image.segments[i];
        u64 file_end, memory_end;
        FUZZ_CHECK(!add_overflows(s.file_offset, s.file_size, &file_end) && file_end <= file_size);
        FUZZ_CHECK(s.memory_size != 0 && s.file_size <= s.memory_size);
        FUZZ_CHECK(!add_overflows(s.physical_address, s.memory_size, &memory_end));
        lowest = min(lowest, s.physical_address);
        highest_end = max(highest_end, memory_end);
    }
    FUZZ_CHECK(image.lowest_address == lowest && image.highest_end == highest_end);
    FUZZ_CHECK(image.pvh_entry <= 0xffffffff);
}

void check_layout(const pvh::Layout& layout, const elf::Image& image, usize ramdisk_size,
                  const RecordingMemory& memory) {
    FUZZ_CHECK(layout.entry.mode == pvh::EntryMode::Protected32);
    FUZZ_CHECK(layout.entry.rip == image.pvh_entry && layout.entry.rbx == layout.start_info);

    const Range boot_info{layout.start_info, layout.start_info + pvh::kBootInfoSize};
    const Range ramdisk{layout.modules[0], layout.modules[0] + ramdisk_size};
    FUZZ_CHECK(boot_info.start >= pvh::kPageSize && is_aligned(boot_info.start, pvh::kPageSize));
    FUZZ_CHECK(boot_info.end <= kConsolePage);
    FUZZ_CHECK(is_aligned(ramdisk.start, pvh::kPageSize) && ramdisk.start >= image.highest_end);
    FUZZ_CHECK(ramdisk.end <= kConsolePage);
    if (ramdisk_size) FUZZ_CHECK(!overlaps(boot_info, ramdisk));
    for (usize i = 0; i < image.segment_count; ++i) {
        const elf::LoadSegment& s = image.segments[i];
        const Range segment{s.physical_address, s.physical_address + s.memory_size};
        FUZZ_CHECK(!overlaps(segment, boot_info) && !overlaps(segment, ramdisk));
    }

    // The start info the kernel finds at EBX.
    const RecordingMemory::WrittenStartInfo* found = nullptr;
    for (const auto& written : memory.start_infos)
        if (written.gpa == layout.start_info) found = &written;
    FUZZ_CHECK(found != nullptr);
    FUZZ_CHECK(found->info.module_count == 1 && found->info.module_list == layout.module_list);
    FUZZ_CHECK(found->info.memory_map_entries == layout.memory_map_entries);
    FUZZ_CHECK(layout.memory_map_entries >= 1 && layout.memory_map_entries <= pvh::kMaxMemoryMapEntries);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<u8> file(data, data + size);  // exact size: ASan flags any read past it

    elf::Image image;
    const elf::Result parsed = elf::parse(file.data(), file.size(), image);
    FUZZ_CHECK(parsed.reason != nullptr);
    if (parsed.ok()) check_image(image, size);

    const toolstack::BootImage boot_image{"kernel", file.data(), file.size()};
    const bool is_kernel = toolstack::classify(boot_image) == toolstack::ImageKind::PvhKernel;
    FUZZ_CHECK(is_kernel == (parsed.ok() && image.pvh_entry != 0));

    // The file is its own ramdisk: some bytes to place after the kernel.
    const pvh::Module ramdisk{file.data(), file.size(), "ramdisk"};
    const pvh::Region console_page{kConsolePage, pvh::kPageSize, pvh::MemoryType::Reserved};
    pvh::BuildRequest request;
    request.kernel = file.data();
    request.kernel_size = file.size();
    request.ram_bytes = kRamBytes;
    request.modules = &ramdisk;
    request.module_count = 1;
    request.command_line = "console=hvc0";
    request.regions = &console_page;
    request.region_count = 1;
    RecordingMemory memory;
    pvh::Layout layout;
    const pvh::Result built = pvh::build(request, memory, layout);
    char message[200];
    BufferSink sink(message, sizeof(message));
    pvh::describe(sink, built);
    if (!built.ok()) return 0;
    FUZZ_CHECK(is_kernel);
    check_layout(layout, image, file.size(), memory);
    return 0;
}
