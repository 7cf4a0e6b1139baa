// The boot images Dom0 got from the hypervisor: the modules of its PVH start info (kernels for
// other domains, their configs, ramdisks), each named by its module command line, as GRUB's
// `module2 /boot/guests/ticker.elf ticker` names it. The toolstack finds them by name.
//
// The start info and the module list are read defensively: a list or a module outside the memory
// Dom0 can read, a count no start info has, a name without its NUL are refused with one line each,
// never followed.
#pragma once

#include <lamina/format.h>
#include <lamina/pvh.h>
#include <lamina/pvh_builder.h>
#include <lamina/types.h>

namespace lamina::toolstack {

// A guest-physical range Dom0 can read and where it sits in Dom0's address space: Dom0 maps its
// first 4 GiB 1:1; the tests point it at a host buffer.
struct ReadableMemory {
    u64 gpa;
    u64 size;
    uptr address;  // where gpa is

    // Where [at, at + length) is readable; null when any byte of it is outside, or `at` is 0
    // (which the start info uses for "not present").
    const u8* find(u64 at, u64 length) const;
};

struct BootImage {
    static constexpr usize kNameCapacity = pvh::kMaxModuleName + 1;

    char name[kNameCapacity];  // printable ASCII; "module<N>" for a module without a name
    const u8* data;
    usize size;
};

enum class ImageKind : u8 { PvhKernel, Config, Other };

// What an image looks like: a PVH ELF kernel, text that parses as an xl config, or neither.
ImageKind classify(const BootImage& image);
const char* image_kind_name(ImageKind kind);

class ImageDirectory {
public:
    static constexpr usize kMaxImages = 64;

    // Takes the modules of `start` (whose magic the caller checked). A module that cannot be
    // taken is left out with one line on `log` saying why; the others are kept.
    void load(const pvh::StartInfo& start, const ReadableMemory& memory, Sink& log);

    const BootImage* find(const char* name) const;
    usize count() const { return count_; }
    const BootImage* begin() const { return images_; }
    const BootImage* end() const { return images_ + count_; }

private:
    BootImage images_[kMaxImages] = {};
    usize count_ = 0;
};

}  // namespace lamina::toolstack
