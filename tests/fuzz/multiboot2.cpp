// Feeds a Multiboot2 boot information blob to its parser, then its command line to the option
// parser, as boot_main does; checks that what a parse keeps (strings, modules, palette, EFI map)
// lies inside total_size, regions are sorted and never wrap, and each option problem is one line.
#include "fuzz_support.h"

#include <boot/multiboot2/multiboot2.h>
#include <hypervisor/boot/cmdline.h>

#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::mb2;

namespace {

void check_boot_info(const BootInfo& info, const u8* blob, usize total_size) {
    const u8* end = blob + total_size;
    if (info.command_line) FUZZ_CHECK(fuzz::string_inside(info.command_line, blob, end));
    if (info.boot_loader_name) FUZZ_CHECK(fuzz::string_inside(info.boot_loader_name, blob, end));

    FUZZ_CHECK(info.module_count <= BootInfo::kMaxModules);
    for (const Module& module : info.modules()) {
        FUZZ_CHECK(module.start <= module.end);
        FUZZ_CHECK(fuzz::string_inside(module.command_line, blob, end));
    }

    FUZZ_CHECK(info.region_count <= BootInfo::kMaxRegions);
    u64 previous_base = 0;
    u64 highest_available_end = 0;
    for (const MemoryRegion& region : info.memory_regions()) {
        u64 region_end;
        FUZZ_CHECK(!add_overflows(region.base, region.length, &region_end));
        FUZZ_CHECK(region.base >= previous_base);
        previous_base = region.base;
        if (region.available()) highest_available_end = max(highest_available_end, region_end);
    }
    // Each byte counted once: never more than the span of the available regions.
    FUZZ_CHECK(info.usable_bytes() <= highest_available_end);

    const Framebuffer& fb = info.framebuffer;
    if (fb.has_color_info && fb.raw_type == static_cast<u8>(FramebufferType::Indexed))
        FUZZ_CHECK(fuzz::range_inside(fb.palette, u64{fb.palette_colors} * 3, blob, end));

    FUZZ_CHECK(info.acpi_old_rsdp.length <= RsdpCopy::kRsdpV1Size);
    FUZZ_CHECK(info.acpi_new_rsdp.length <= RsdpCopy::kRsdpV2Size);

    const EfiMemoryMap& efi = info.efi_memory_map;
    if (!efi.empty()) {
        FUZZ_CHECK(efi.descriptor_size() >= EfiMemoryMap::kMinimumDescriptorSize);
        // Decoding every descriptor lets ASan see a map that runs past the blob.
        for (usize i = 0; i < efi.size(); ++i) (void)efi[i];
    }
}

class LineCounter final : public Sink {
public:
    void write(const char* text, usize length) override { text_.append(text, length); }

    // Whole lines, each "cmdline: ...".
    usize lines() const {
        usize count = 0;
        for (usize start = 0; start < text_.size(); ++count) {
            const usize newline = text_.find('\n', start);
            FUZZ_CHECK(newline != std::string::npos && text_.compare(start, 9, "cmdline: ") == 0);
            start = newline + 1;
        }
        return count;
    }

private:
    std::string text_;
};

void check_command_line(const char* command_line) {
    HypervisorOptions options;
    LineCounter diagnostics;
    const usize problems = parse_hypervisor_command_line(command_line, options, diagnostics);
    FUZZ_CHECK(problems == diagnostics.lines());
    FUZZ_CHECK(options.baud >= 50 && options.baud <= 115200);
    FUZZ_CHECK(options.max_cpus >= 1 && options.max_cpus <= 256);
    FUZZ_CHECK(static_cast<u8>(options.console) <= 2 && static_cast<u8>(options.apic) <= 2);
    FUZZ_CHECK(static_cast<u8>(options.crash) <= 3 && static_cast<u8>(options.log_level) <= 3);
    FUZZ_CHECK(options.dom0_mem <= u64{1} << 52);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exact-size heap copy (8-byte aligned, as the parser requires): ASan flags any read past it.
    std::vector<u8> blob(data, data + size);
    static BootInfo info;  // a few KiB, as in the hypervisor
    const ParseResult result = parse(blob.data(), blob.size(), info);
    FUZZ_CHECK(result.reason != nullptr);
    // A tag's offset, or where the one after the last would start when the end tag is missing.
    FUZZ_CHECK(result.offset <= align_up(size, 8));
    if (!result.ok()) return 0;

    u32 total_size;
    std::memcpy(&total_size, blob.data(), sizeof(total_size));
    FUZZ_CHECK(total_size <= size);
    check_boot_info(info, blob.data(), total_size);
    if (info.command_line) check_command_line(info.command_line);
    return 0;
}
