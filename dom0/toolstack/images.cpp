#include <dom0/toolstack/images.h>

#include <dom0/toolstack/xl_config.h>
#include <lamina/abi/vcpu.h>
#include <lamina/elf.h>
#include <lamina/string.h>

namespace lamina::toolstack {

const u8* ReadableMemory::find(u64 at, u64 length) const {
    if (at == 0 || at < gpa) return nullptr;
    const u64 offset = at - gpa;
    if (offset > size || length > size - offset) return nullptr;
    return reinterpret_cast<const u8*>(address + offset);
}

ImageKind classify(const BootImage& image) {
    elf::Image elf;
    if (elf::parse(image.data, image.size, elf).ok() && elf.pvh_entry) return ImageKind::PvhKernel;
    // Named as one (xl's configs are files named *.cfg): create then reports what is wrong in it.
    const usize length = str::length(image.name);
    if (length > 4 && str::equal(image.name + length - 4, ".cfg")) return ImageKind::Config;
    // Whatever a config may say, so that only its syntax decides.
    const Limits anything{~u64{0}, LAMINA_MAX_VCPUS, CpuSet::kMaxCpus};
    DomainConfig config;
    Diagnostics diagnostics;
    const char* text = reinterpret_cast<const char*>(image.data);
    if (image.size && parse_config(text, image.size, anything, config, diagnostics)) return ImageKind::Config;
    return ImageKind::Other;
}

const char* image_kind_name(ImageKind kind) {
    switch (kind) {
        case ImageKind::PvhKernel: return "PVH ELF kernel";
        case ImageKind::Config: return "config";
        case ImageKind::Other: break;
    }
    return "other";
}

void ImageDirectory::load(const pvh::StartInfo& start, const ReadableMemory& memory, Sink& log) {
    count_ = 0;
    const u32 module_count = start.module_count;
    if (module_count == 0) return;
    if (module_count > kMaxImages) {
        format(log, "images: the start info lists {} modules, more than the {} Dom0 takes; none taken\n",
               module_count, kMaxImages);
        return;
    }
    const u8* list = memory.find(start.module_list, u64{module_count} * sizeof(pvh::ModuleEntry));
    if (!list) {
        format(log, "images: the module list at {:#x} is outside Dom0's memory; no module taken\n",
               start.module_list);
        return;
    }
    for (u32 i = 0; i < module_count; ++i) {
        pvh::ModuleEntry entry;
        str::copy_bytes(&entry, list + i * sizeof(entry), sizeof(entry));
        BootImage& image = images_[count_];
        image.data = entry.size ? memory.find(entry.address, entry.size) : nullptr;
        image.size = static_cast<usize>(entry.size);
        if (entry.size && !image.data) {
            format(log, "images: module {} ([{:#x}, +{:#x})) is outside Dom0's memory; left out\n", i, entry.address,
                   entry.size);
            continue;
        }
        if (!entry.command_line) {
            format_to(image.name, sizeof(image.name), "module{}", i);
        } else {
            // The name may end anywhere readable: take what is there, up to the capacity.
            const u8* name = nullptr;
            usize room = BootImage::kNameCapacity;
            while (room && !(name = memory.find(entry.command_line, room))) --room;
            const usize length = name ? str::length_bounded(reinterpret_cast<const char*>(name), room) : room;
            if (!name || length == room) {
                format(log, "images: module {}'s name at {:#x} is not a string of at most {} bytes; left out\n", i,
                       entry.command_line, pvh::kMaxModuleName);
                continue;
            }
            for (usize c = 0; c < length; ++c)
                image.name[c] = name[c] >= 0x20 && name[c] < 0x7f ? static_cast<char>(name[c]) : '?';
            image.name[length] = '\0';
            if (length == 0) format_to(image.name, sizeof(image.name), "module{}", i);
        }
        if (find(image.name)) {
            format(log, "images: module {} is named \"{}\" as an earlier one is; left out\n", i, image.name);
            continue;
        }
        ++count_;
    }
}

const BootImage* ImageDirectory::find(const char* name) const {
    for (const BootImage& image : *this)
        if (str::equal(image.name, name)) return &image;
    return nullptr;
}

}  // namespace lamina::toolstack
