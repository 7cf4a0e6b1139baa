// Builds ELF64 executables field by field for the ELF parser and PVH builder tests, so each test
// can break exactly one thing.
#pragma once

#include <lamina/types.h>

#include <cstring>
#include <vector>

namespace lamina::test {

struct ElfBuilder {
    static constexpr u32 kLoad = 1, kNote = 4;
    static constexpr u64 kProgramHeadersAt = 64, kProgramHeaderSize = 56;

    struct Segment {
        u32 type;
        u32 flags;
        u64 paddr;
        std::vector<u8> bytes;
        u64 memsz;
    };
    std::vector<Segment> segments;
    u64 entry = 0x100000;

    // A PT_LOAD segment; its file bytes are a pattern that differs from segment to segment.
    void load(u64 paddr, size_t file_bytes, u64 memsz, u32 flags = 5) {
        std::vector<u8> bytes(file_bytes);
        for (size_t i = 0; i < file_bytes; ++i) bytes[i] = static_cast<u8>(0xc0 + segments.size() + i * 7);
        segments.push_back({kLoad, flags, paddr, bytes, memsz});
    }
    void note(const char* name, u32 type, std::vector<u8> desc) {
        std::vector<u8> n;
        auto put32 = [&](u32 v) { for (int i = 0; i < 4; ++i) n.push_back(static_cast<u8>(v >> (8 * i))); };
        u32 name_size = static_cast<u32>(std::strlen(name) + 1);
        put32(name_size);
        put32(static_cast<u32>(desc.size()));
        put32(type);
        for (u32 i = 0; i < name_size; ++i) n.push_back(static_cast<u8>(name[i]));
        while (n.size() % 4) n.push_back(0);
        n.insert(n.end(), desc.begin(), desc.end());
        while (n.size() % 4) n.push_back(0);
        segments.push_back({kNote, 4, 0, n, 0});
    }
    // XEN_ELFNOTE_PHYS32_ENTRY (xen/include/public/elfnote.h).
    void pvh_note(u32 entry32) {
        std::vector<u8> d(4);
        std::memcpy(d.data(), &entry32, 4);
        note("Xen", 18, d);
    }

    // Where segment i's file bytes land in build()'s output.
    u64 file_offset(size_t index) const {
        u64 offset = kProgramHeadersAt + kProgramHeaderSize * segments.size();
        for (size_t i = 0; i < index; ++i) offset += segments[i].bytes.size();
        return offset;
    }

    std::vector<u8> build() const {
        std::vector<u8> out(file_offset(0), 0);
        const u8 ident[16] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
        std::memcpy(out.data(), ident, 16);
        auto put = [&](size_t at, auto v) { std::memcpy(out.data() + at, &v, sizeof(v)); };
        put(16, u16{2});
        put(18, u16{62});
        put(20, u32{1});
        put(24, entry);
        put(32, kProgramHeadersAt);
        put(52, u16{64});
        put(54, static_cast<u16>(kProgramHeaderSize));
        put(56, static_cast<u16>(segments.size()));
        for (size_t i = 0; i < segments.size(); ++i) {
            const Segment& s = segments[i];
            size_t ph = kProgramHeadersAt + kProgramHeaderSize * i;
            u64 offset = out.size();
            out.insert(out.end(), s.bytes.begin(), s.bytes.end());
            put(ph + 0, s.type);
            put(ph + 4, s.flags);
            put(ph + 8, offset);
            put(ph + 16, s.paddr);
            put(ph + 24, s.paddr);
            put(ph + 32, static_cast<u64>(s.bytes.size()));
            put(ph + 40, s.memsz);
        }
        return out;
    }
};

template <typename T>
void poke(std::vector<u8>& bytes, size_t at, T value) {
    std::memcpy(bytes.data() + at, &value, sizeof(value));
}

}  // namespace lamina::test
