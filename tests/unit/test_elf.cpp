#include <catch2/catch.hpp>

#include <lamina/elf.h>

#include "elf_builder.h"

#include <cstring>
#include <vector>

using namespace lamina;

namespace {

using test::ElfBuilder;
using test::poke;

elf::Result parse(const std::vector<u8>& bytes, elf::Image& image) {
    return elf::parse(bytes.data(), bytes.size(), image);
}

}  // namespace

TEST_CASE("elf: a PVH kernel's segments and entry") {
    ElfBuilder b;
    b.load(0x100000, 0x2000, 0x3000, 5);
    b.load(0x200000, 0x100, 0x100, 6);
    b.pvh_note(0x100040);
    elf::Image image;
    REQUIRE(parse(b.build(), image).ok());
    CHECK(image.entry == 0x100000);
    CHECK(image.pvh_entry == 0x100040);
    REQUIRE(image.segment_count == 2);
    CHECK(image.segments[0].physical_address == 0x100000);
    CHECK(image.segments[0].file_size == 0x2000);
    CHECK(image.segments[0].memory_size == 0x3000);
    CHECK(image.segments[0].executable);
    CHECK_FALSE(image.segments[0].writable);
    CHECK(image.segments[1].writable);
    CHECK(image.lowest_address == 0x100000);
    CHECK(image.highest_end == 0x200100);
}

TEST_CASE("elf: other notes are skipped and an image without PVH note has pvh_entry 0") {
    ElfBuilder b;
    b.load(0x100000, 16, 16);
    b.note("GNU", 3, {1, 2, 3, 4, 5, 6, 7, 8});
    b.note("Xen", 6, {1, 2, 3, 4});  // another Xen note type
    elf::Image image;
    REQUIRE(parse(b.build(), image).ok());
    CHECK(image.pvh_entry == 0);
}

TEST_CASE("elf: malformed images are refused with a reason") {
    ElfBuilder b;
    b.load(0x100000, 64, 64);
    b.pvh_note(0x100000);
    std::vector<u8> good = b.build();
    elf::Image image;

    SECTION("truncated header") {
        for (size_t n : {0, 1, 16, 63}) {
            std::vector<u8> cut(good.begin(), good.begin() + static_cast<long>(n));
            CHECK(elf::parse(cut.data(), cut.size(), image).status == elf::Status::TooSmall);
        }
    }
    SECTION("bad magic") {
        good[1] = 'X';
        CHECK(parse(good, image).status == elf::Status::NotElf);
    }
    SECTION("32-bit, big-endian, other machine, relocatable") {
        auto check = [&](size_t at, u8 value) {
            std::vector<u8> bad = good;
            bad[at] = value;
            CHECK(parse(bad, image).status == elf::Status::Unsupported);
        };
        check(4, 1);    // ELFCLASS32
        check(5, 2);    // big-endian
        check(18, 3);   // EM_386
        check(16, 1);   // ET_REL
    }
    SECTION("program header table outside the file") {
        poke<u64>(good, 32, good.size());
        CHECK(parse(good, image).status == elf::Status::BadProgramHeaders);
        poke<u64>(good, 32, ~u64{0} - 8);  // wraps
        CHECK(parse(good, image).status == elf::Status::BadProgramHeaders);
    }
    SECTION("wrong program header entry size") {
        poke<u16>(good, 54, 32);
        CHECK(parse(good, image).status == elf::Status::BadProgramHeaders);
    }
    SECTION("segment bytes outside the file") {
        poke<u64>(good, 64 + 32, u64{1} << 40);  // p_filesz of the first segment
        CHECK(parse(good, image).status == elf::Status::BadSegment);
    }
    SECTION("file size above memory size") {
        poke<u64>(good, 64 + 40, 8);  // p_memsz
        CHECK(parse(good, image).status == elf::Status::BadSegment);
    }
    SECTION("segment wrapping the address space") {
        poke<u64>(good, 64 + 24, ~u64{0} - 8);  // p_paddr
        CHECK(parse(good, image).status == elf::Status::BadSegment);
    }
    SECTION("a note running past its segment") {
        size_t note_offset;
        std::memcpy(&note_offset, good.data() + 64 + 56 + 8, 8);
        poke<u32>(good, note_offset + 4, 4096);  // descsz
        CHECK(parse(good, image).status == elf::Status::BadNote);
    }
    SECTION("a PVH note of the wrong size or a zero entry") {
        ElfBuilder odd;
        odd.load(0x100000, 16, 16);
        odd.note("Xen", 18, {1, 2});
        CHECK(parse(odd.build(), image).status == elf::Status::BadNote);
        ElfBuilder zero;
        zero.load(0x100000, 16, 16);
        zero.pvh_note(0);
        CHECK(parse(zero.build(), image).status == elf::Status::BadNote);
    }
}

TEST_CASE("elf: segment limits") {
    elf::Image image;
    ElfBuilder none;
    none.note("GNU", 1, {});
    CHECK(parse(none.build(), image).status == elf::Status::NoLoadableSegment);

    ElfBuilder many;
    for (u64 i = 0; i < elf::Image::kMaxSegments; ++i) many.load(0x100000 + i * 0x1000, 8, 8);
    CHECK(parse(many.build(), image).ok());
    many.load(0x900000, 8, 8);
    CHECK(parse(many.build(), image).status == elf::Status::TooManySegments);
}

TEST_CASE("elf: no truncation of a valid image reads out of bounds") {
    ElfBuilder b;
    b.load(0x100000, 40, 64);
    b.pvh_note(0x100000);
    std::vector<u8> good = b.build();
    elf::Image image;
    for (size_t n = 0; n < good.size(); ++n) {
        std::vector<u8> cut(good.begin(), good.begin() + static_cast<long>(n));  // ASan guards the end
        CHECK_FALSE(elf::parse(cut.data(), cut.size(), image).ok());
    }
}
