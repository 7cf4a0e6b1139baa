#include <lamina/elf.h>

#include <lamina/string.h>

namespace lamina::elf {
namespace {

// ELF-64 Object File Format, version 1.5, and the System V x86-64 psABI.
struct FileHeader {
    u8 ident[16];
    u16 type, machine;
    u32 version;
    u64 entry, phoff, shoff;
    u32 flags;
    u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
static_assert(sizeof(FileHeader) == 64);

struct ProgramHeader {
    u32 type, flags;
    u64 offset, vaddr, paddr, filesz, memsz, align;
};
static_assert(sizeof(ProgramHeader) == 56);

constexpr u8 kClass64 = 2, kLittleEndian = 1, kCurrentVersion = 1;
constexpr u16 kTypeExecutable = 2, kMachineX86_64 = 62;
constexpr u32 kLoad = 1, kNote = 4;
constexpr u32 kFlagExecute = 1, kFlagWrite = 2;
// Xen's public ELF notes (xen/include/public/elfnote.h): name "Xen", type 18 = PHYS32_ENTRY.
constexpr u32 kXenNotePhys32Entry = 18;

template <typename T>
T read_at(const u8* data, u64 offset) {
    T value;
    str::copy_bytes(&value, data + offset, sizeof(T));
    return value;
}

bool range_inside(u64 offset, u64 length, usize size) {
    u64 end;
    return !add_overflows(offset, length, &end) && end <= size;
}

Result fail(Status status, const char* reason) { return {status, reason}; }

// Walks the notes of one PT_NOTE segment (already checked to lie inside the file).
Result read_notes(const u8* data, u64 offset, u64 length, Image& out) {
    u64 position = 0;
    while (length - position >= 12) {
        u32 name_size = read_at<u32>(data, offset + position);
        u32 desc_size = read_at<u32>(data, offset + position + 4);
        u32 type = read_at<u32>(data, offset + position + 8);
        u64 name_at = position + 12;
        u64 desc_at = name_at + align_up(name_size, 4);
        u64 next = desc_at + align_up(desc_size, 4);
        if (next > length) return fail(Status::BadNote, "a note runs past the end of its segment");
        if (name_size == 4 && str::compare_bytes(data + offset + name_at, "Xen", 4) == 0 &&
            type == kXenNotePhys32Entry) {
            // The entry is a 32-bit address; some linkers emit it as a 64-bit value.
            if (desc_size == 4) out.pvh_entry = read_at<u32>(data, offset + desc_at);
            else if (desc_size == 8) out.pvh_entry = read_at<u64>(data, offset + desc_at);
            else return fail(Status::BadNote, "the PVH entry note is neither 4 nor 8 bytes");
            if (out.pvh_entry == 0 || out.pvh_entry > 0xffffffff)
                return fail(Status::BadNote, "the PVH entry is not a 32-bit address");
        }
        position = next;
    }
    return {Status::Ok, "ok"};
}

}  // namespace

Result parse(const u8* data, usize size, Image& out) {
    out = Image{};
    if (size < sizeof(FileHeader)) return fail(Status::TooSmall, "shorter than an ELF header");
    FileHeader header = read_at<FileHeader>(data, 0);
    if (str::compare_bytes(header.ident, "\x7f" "ELF", 4) != 0) return fail(Status::NotElf, "no ELF magic");
    if (header.ident[4] != kClass64 || header.ident[5] != kLittleEndian || header.ident[6] != kCurrentVersion ||
        header.version != kCurrentVersion)
        return fail(Status::Unsupported, "not a little-endian ELF64 file of version 1");
    if (header.machine != kMachineX86_64) return fail(Status::Unsupported, "not an x86-64 image");
    if (header.type != kTypeExecutable) return fail(Status::Unsupported, "not an executable (ET_EXEC)");
    if (header.phentsize != sizeof(ProgramHeader))
        return fail(Status::BadProgramHeaders, "program header entries of an unexpected size");
    if (!range_inside(header.phoff, u64{header.phnum} * sizeof(ProgramHeader), size))
        return fail(Status::BadProgramHeaders, "the program header table lies outside the file");

    out.entry = header.entry;
    out.lowest_address = ~u64{0};
    for (u16 i = 0; i < header.phnum; ++i) {
        ProgramHeader ph = read_at<ProgramHeader>(data, header.phoff + u64{i} * sizeof(ProgramHeader));
        if (ph.type != kLoad && ph.type != kNote) continue;
        if (!range_inside(ph.offset, ph.filesz, size))
            return fail(Status::BadSegment, "a segment's bytes lie outside the file");
        if (ph.type == kNote) {
            Result notes = read_notes(data, ph.offset, ph.filesz, out);
            if (!notes.ok()) return notes;
            continue;
        }
        u64 end;
        if (ph.filesz > ph.memsz) return fail(Status::BadSegment, "a segment's file size exceeds its memory size");
        if (add_overflows(ph.paddr, ph.memsz, &end)) return fail(Status::BadSegment, "a segment wraps the address space");
        if (ph.memsz == 0) continue;
        if (out.segment_count == Image::kMaxSegments) return fail(Status::TooManySegments, "more than 16 load segments");
        out.segments[out.segment_count++] = {ph.paddr, ph.offset, ph.filesz, ph.memsz,
                                             (ph.flags & kFlagExecute) != 0, (ph.flags & kFlagWrite) != 0};
        out.lowest_address = min(out.lowest_address, ph.paddr);
        out.highest_end = max(out.highest_end, end);
    }
    if (out.segment_count == 0) {
        out.lowest_address = 0;
        return fail(Status::NoLoadableSegment, "no loadable segment");
    }
    return {Status::Ok, "ok"};
}

}  // namespace lamina::elf
