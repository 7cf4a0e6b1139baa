#include <catch2/catch.hpp>

#include <dom0/toolstack/images.h>

#include "boot_modules.h"
#include "elf_builder.h"

#include <cstring>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::toolstack;
using test::Dom0Memory;

TEST_CASE("images: readable memory refuses what is outside, wraps, or is address 0") {
    std::vector<u8> buffer(0x1000);
    const ReadableMemory memory{0x5000, 0x1000, reinterpret_cast<uptr>(buffer.data())};
    CHECK(memory.find(0x5000, 0x1000) == buffer.data());
    CHECK(memory.find(0x5fff, 1) == buffer.data() + 0xfff);
    CHECK(memory.find(0x6000, 0) == buffer.data() + 0x1000);
    CHECK(memory.find(0x5fff, 2) == nullptr);
    CHECK(memory.find(0x4fff, 1) == nullptr);
    CHECK(memory.find(0x5001, ~u64{0}) == nullptr);
    CHECK(memory.find(~u64{0}, 2) == nullptr);
    const ReadableMemory from_zero{0, 0x1000, reinterpret_cast<uptr>(buffer.data())};
    CHECK(from_zero.find(0, 1) == nullptr);
}

TEST_CASE("images: modules by name, in order, with their sizes") {
    Dom0Memory dom0;
    dom0.add("kernel bytes", "ticker");
    dom0.add("name = \"ticker\"\nmemory = 8\nkernel = \"ticker\"\n", "ticker.cfg");
    dom0.add("", "empty");
    ImageDirectory images;
    CHECK(dom0.load(images).empty());
    REQUIRE(images.count() == 3);
    const BootImage* ticker = images.find("ticker");
    REQUIRE(ticker);
    CHECK(std::string(reinterpret_cast<const char*>(ticker->data), ticker->size) == "kernel bytes");
    CHECK(ticker->data == dom0.at(Dom0Memory::kDataAt));
    REQUIRE(images.find("ticker.cfg"));
    CHECK(images.find("ticker.cfg")->size == 45);
    CHECK(images.find("empty")->size == 0);
    CHECK(images.find("tick") == nullptr);
    std::vector<std::string> names;
    for (const BootImage& image : images) names.push_back(image.name);
    CHECK(names == std::vector<std::string>{"ticker", "ticker.cfg", "empty"});
}

TEST_CASE("images: a start info without modules gives none; loading again starts over") {
    Dom0Memory dom0;
    dom0.add("x", "one");
    ImageDirectory images;
    dom0.load(images);
    CHECK(images.count() == 1);
    dom0.start.module_count = 0;
    dom0.start.module_list = 0;
    CHECK(dom0.load(images).empty());
    CHECK(images.count() == 0);
}

TEST_CASE("images: names that are absent, empty, unprintable, unterminated or taken") {
    Dom0Memory dom0;
    dom0.add("a", nullptr);
    dom0.add("b", "");
    dom0.add("c", "tab\there");
    dom0.add("d", "twice");
    dom0.add("e", "twice");
    std::memset(dom0.at(dom0.next_name), 'n', 64);  // no NUL within 64 bytes
    dom0.add_entry({dom0.next_data, 1, dom0.next_name, 0});
    ImageDirectory images;
    CHECK(dom0.load(images) ==
          "images: module 4 is named \"twice\" as an earlier one is; left out\n"
          "images: module 5's name at 0x101100 is not a string of at most 63 bytes; left out\n");
    std::vector<std::string> names;
    for (const BootImage& image : images) names.push_back(image.name);
    CHECK(names == std::vector<std::string>{"module0", "module1", "tab?here", "twice"});
    CHECK(*images.find("twice")->data == 'd');
}

TEST_CASE("images: a hostile start info is refused, never followed") {
    Dom0Memory dom0;
    ImageDirectory images;
    SECTION("an absurd module count") {
        dom0.start.module_count = 0xffffffff;
        CHECK(dom0.load(images) ==
              "images: the start info lists 4294967295 modules, more than the 64 Dom0 takes; none taken\n");
    }
    SECTION("a module list outside the memory, or at 0") {
        dom0.add("x", "x");
        dom0.start.module_list = Dom0Memory::kBase + Dom0Memory::kSize - 16;
        CHECK(dom0.load(images) == "images: the module list at 0x10fff0 is outside Dom0's memory; no module taken\n");
        dom0.start.module_list = 0;
        CHECK(!dom0.load(images).empty());
    }
    SECTION("modules outside the memory, wrapping, or with a name outside") {
        dom0.add("good", "good");
        dom0.add_entry({Dom0Memory::kBase + Dom0Memory::kSize - 4, 8, 0, 0});
        dom0.add_entry({~u64{0} - 4, 0x10, 0, 0});
        dom0.add_entry({Dom0Memory::kDataAt, 4, 0x40, 0});
        dom0.add_entry({Dom0Memory::kDataAt, 4, Dom0Memory::kBase + Dom0Memory::kSize, 0});
        CHECK(dom0.load(images) ==
              "images: module 1 ([0x10fffc, +0x8)) is outside Dom0's memory; left out\n"
              "images: module 2 ([0xfffffffffffffffb, +0x10)) is outside Dom0's memory; left out\n"
              "images: module 3's name at 0x40 is not a string of at most 63 bytes; left out\n"
              "images: module 4's name at 0x110000 is not a string of at most 63 bytes; left out\n");
    }
    SECTION("a name that runs into the end of the memory") {
        const u64 name_at = Dom0Memory::kBase + Dom0Memory::kSize - 3;
        std::memcpy(dom0.at(name_at), "ab", 3);  // the NUL is the last readable byte
        dom0.add_entry({Dom0Memory::kDataAt, 4, name_at, 0});
        CHECK(dom0.load(images).empty());
        CHECK(images.find("ab"));
        dom0.at(name_at)[2] = 'c';  // now no NUL before the end
        CHECK(!dom0.load(images).empty());
        CHECK(images.count() == 0);
    }
    CHECK(images.count() <= 1);
}

TEST_CASE("images: kinds are a PVH kernel, a config, or other") {
    test::ElfBuilder pvh_elf;
    pvh_elf.load(0x100000, 0x100, 0x100);
    pvh_elf.pvh_note(0x100000);
    std::vector<u8> kernel = pvh_elf.build();
    test::ElfBuilder plain_elf;
    plain_elf.load(0x100000, 0x100, 0x100);
    std::vector<u8> no_entry = plain_elf.build();
    const std::string config = "name = \"web\"\nmemory = 8\nkernel = \"ticker\"\n";
    const std::string broken = "name = \"web\nmemory = 8\n";
    auto kind = [](const void* data, usize size) {
        BootImage image{"x", static_cast<const u8*>(data), size};
        return classify(image);
    };
    CHECK(kind(kernel.data(), kernel.size()) == ImageKind::PvhKernel);
    CHECK(kind(no_entry.data(), no_entry.size()) == ImageKind::Other);
    CHECK(kind(config.data(), config.size()) == ImageKind::Config);
    CHECK(kind(broken.data(), broken.size()) == ImageKind::Other);
    CHECK(kind(nullptr, 0) == ImageKind::Other);
    // Named as a config, it is one whatever it says: create then reports what is wrong in it.
    const BootImage named{"web.cfg", reinterpret_cast<const u8*>(broken.data()), broken.size()};
    CHECK(classify(named) == ImageKind::Config);
    const BootImage just_suffix{".cfg", reinterpret_cast<const u8*>(broken.data()), broken.size()};
    CHECK(classify(just_suffix) == ImageKind::Other);
    CHECK(std::string(image_kind_name(ImageKind::PvhKernel)) == "PVH ELF kernel");
    CHECK(std::string(image_kind_name(ImageKind::Config)) == "config");
    CHECK(std::string(image_kind_name(ImageKind::Other)) == "other");
}
