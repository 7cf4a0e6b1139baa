// ELF64 executables as guest kernels: the loadable segments and the PVH entry point. Shared by
// the hypervisor (Dom0, test guests) and Dom0's domain builder. Everything read from the image is
// bounds- and overflow-checked: a malformed image is an error, never an out-of-bounds read.
#pragma once

#include <lamina/types.h>

namespace lamina::elf {

struct LoadSegment {
    u64 physical_address;  // where the segment goes in guest-physical memory (p_paddr)
    u64 file_offset;
    u64 file_size;
    u64 memory_size;       // >= file_size; the rest is zero-filled
    bool executable;
    bool writable;
};

struct Image {
    static constexpr usize kMaxSegments = 16;
    u64 entry = 0;            // e_entry
    u64 pvh_entry = 0;        // XEN_ELFNOTE_PHYS32_ENTRY (32-bit, paging off), 0 if none
    LoadSegment segments[kMaxSegments] = {};
    usize segment_count = 0;
    u64 lowest_address = 0;   // over all load segments
    u64 highest_end = 0;      // exclusive
};

enum class Status : u8 {
    Ok,
    TooSmall,            // shorter than an ELF header
    NotElf,              // bad magic
    Unsupported,         // not ELF64, little-endian, x86-64, executable, version 1
    BadProgramHeaders,   // program header table outside the file or of the wrong entry size
    BadSegment,          // a segment outside the file, file size > memory size, or wrapping
    TooManySegments,
    NoLoadableSegment,
    BadNote,             // a note running past its segment, or a malformed PVH entry note
};

struct Result {
    Status status;
    const char* reason;  // one sentence, static storage
    bool ok() const { return status == Status::Ok; }
};

Result parse(const u8* data, usize size, Image& out);

}  // namespace lamina::elf
