#include <catch2/catch.hpp>

#include <boot/multiboot2/multiboot2.h>

#include <cstring>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::mb2;

namespace {

// Little-endian field bytes for a tag body.
class Bytes {
public:
    Bytes& u8s(std::initializer_list<u8> values) {
        data.insert(data.end(), values);
        return *this;
    }
    Bytes& u16le(u16 v) { return append(&v, sizeof(v)); }
    Bytes& u32le(u32 v) { return append(&v, sizeof(v)); }
    Bytes& u64le(u64 v) { return append(&v, sizeof(v)); }
    // The characters and, unless told otherwise, the terminating NUL.
    Bytes& text(const std::string& s, bool nul = true) {
        append(s.data(), s.size());
        if (nul) data.push_back(0);
        return *this;
    }
    Bytes& zeros(usize n) {
        data.insert(data.end(), n, 0);
        return *this;
    }

    std::vector<u8> data;

private:
    Bytes& append(const void* p, usize n) {
        const u8* b = static_cast<const u8*>(p);
        data.insert(data.end(), b, b + n);
        return *this;
    }
};

struct MemoryMapEntry {
    u64 base;
    u64 length;
    u32 type;
};

// Builds a boot information blob the way a loader lays it out (spec 3.6.2), with knobs to break
// each rule. The blob is exactly total_size bytes, so ASan flags any read past it.
class InfoBuilder {
public:
    InfoBuilder() { bytes_.resize(8); }

    // A tag of `type` whose body follows the 8-byte header; `size` overrides the header's size.
    InfoBuilder& tag(u32 type, const Bytes& body, i64 size = -1, bool pad = true) {
        const u32 header_size = size >= 0 ? static_cast<u32>(size)
                                          : static_cast<u32>(8 + body.data.size());
        Bytes header;
        header.u32le(type).u32le(header_size);
        bytes_.insert(bytes_.end(), header.data.begin(), header.data.end());
        bytes_.insert(bytes_.end(), body.data.begin(), body.data.end());
        if (pad) bytes_.resize(align_up(bytes_.size(), 8));
        return *this;
    }
    InfoBuilder& command_line(const std::string& s) { return tag(1, Bytes().text(s)); }
    InfoBuilder& loader_name(const std::string& s) { return tag(2, Bytes().text(s)); }
    InfoBuilder& module(u32 start, u32 end, const std::string& s) {
        return tag(3, Bytes().u32le(start).u32le(end).text(s));
    }
    InfoBuilder& basic_meminfo(u32 lower, u32 upper) {
        return tag(4, Bytes().u32le(lower).u32le(upper));
    }
    InfoBuilder& memory_map(const std::vector<MemoryMapEntry>& entries, u32 entry_size = 24) {
        Bytes body;
        body.u32le(entry_size).u32le(0);
        for (const MemoryMapEntry& e : entries) {
            body.u64le(e.base).u64le(e.length).u32le(e.type).u32le(0);
            body.zeros(entry_size > 24 ? entry_size - 24 : 0);
        }
        return tag(6, body);
    }
    InfoBuilder& end_tag() { return tag(0, Bytes()); }

    // The blob with total_size filled in (or forced).
    std::vector<u8> build(i64 total_size = -1) const {
        std::vector<u8> blob = bytes_;
        const u32 total = total_size >= 0 ? static_cast<u32>(total_size)
                                          : static_cast<u32>(blob.size());
        std::memcpy(blob.data(), &total, sizeof(total));
        const u32 reserved = 0xdeadbeef;  // must be ignored
        std::memcpy(blob.data() + 4, &reserved, sizeof(reserved));
        return blob;
    }

private:
    std::vector<u8> bytes_;
};

ParseResult parse_blob(const std::vector<u8>& blob, BootInfo& info) {
    return parse(blob.data(), blob.size(), info);
}

// A fresh BootInfo per test would be a few KiB on the stack each time; reuse one.
BootInfo& scratch_info() {
    static BootInfo info;
    return info;
}

constexpr u32 kAvailable = 1;
constexpr u32 kReserved = 2;

Bytes rsdp_v1() {
    return Bytes().text("RSD PTR ", false).u8s({0x42}).text("BOCHS ", false).u8s({0}).u32le(
        0x7fe1234);
}

// What GRUB 2.06 gives the hypervisor under QEMU with SeaBIOS (order as GRUB writes it).
std::vector<u8> qemu_bios_fixture() {
    InfoBuilder b;
    b.tag(21, Bytes().u32le(0x100000))
        .command_line("selftest emu_exit")
        .loader_name("GRUB 2.06")
        .basic_meminfo(639, 129664)
        .tag(5, Bytes().u32le(0xe0).u32le(0xffffffff).u32le(0xffffffff))  // BIOS boot device
        .memory_map({
            {0x0, 0x9fc00, kAvailable},
            {0x9fc00, 0x400, kReserved},
            {0xf0000, 0x10000, kReserved},
            {0x100000, 0x7ee0000, kAvailable},
            {0x7fe0000, 0x20000, kReserved},
            {0xfffc0000, 0x40000, kReserved},
        })
        .tag(8, Bytes().u64le(0xb8000).u32le(160).u32le(80).u32le(25).u8s({16, 2}).u16le(0))
        .tag(14, rsdp_v1())
        .end_tag();
    return b.build();
}

}  // namespace

TEST_CASE("multiboot2: the QEMU/GRUB BIOS fixture parses completely") {
    const std::vector<u8> blob = qemu_bios_fixture();
    BootInfo& info = scratch_info();
    const ParseResult result = parse_blob(blob, info);
    INFO(result.reason);
    REQUIRE(result.ok());
    CHECK(info.warnings == 0);

    CHECK(std::string(info.command_line) == "selftest emu_exit");
    CHECK(std::string(info.boot_loader_name) == "GRUB 2.06");
    CHECK(info.mem_lower_kib == 639);
    CHECK(info.mem_upper_kib == 129664);
    CHECK(info.image_load_base == 0x100000);

    REQUIRE(info.memory_regions().size() == 6);
    const MemoryRegion& low = info.memory_regions()[0];
    CHECK(low.base == 0);
    CHECK(low.length == 0x9fc00);
    CHECK(low.type() == MemoryType::Available);
    const MemoryRegion& high = info.memory_regions()[3];
    CHECK(high.base == 0x100000);
    CHECK(high.end() == 0x7fe0000);
    CHECK(high.available());
    CHECK(info.memory_regions()[5].end() == 0x100000000);
    CHECK(info.memory_regions()[5].type() == MemoryType::Reserved);
    CHECK(info.usable_bytes() == 0x9fc00 + (0x7fe0000 - 0x100000));

    CHECK(info.framebuffer.address == 0xb8000);
    CHECK(info.framebuffer.pitch == 160);
    CHECK(info.framebuffer.width == 80);
    CHECK(info.framebuffer.height == 25);
    CHECK(info.framebuffer.bits_per_pixel == 16);
    CHECK(info.framebuffer.raw_type == static_cast<u8>(FramebufferType::EgaText));
    CHECK_FALSE(info.framebuffer.has_color_info);

    REQUIRE(info.acpi_old_rsdp.length == 20);
    CHECK(std::memcmp(info.acpi_old_rsdp.bytes, "RSD PTR ", 8) == 0);
    CHECK(info.acpi_new_rsdp.length == 0);

    for (TagType t : {TagType::CommandLine, TagType::BootLoaderName, TagType::BasicMemoryInfo,
                      TagType::BiosBootDevice, TagType::MemoryMap, TagType::Framebuffer,
                      TagType::AcpiOldRsdp, TagType::ImageLoadBase})
        CHECK(info.has(t));
    for (TagType t : {TagType::Module, TagType::EfiMemoryMap, TagType::AcpiNewRsdp,
                      TagType::Efi64SystemTable, TagType::EfiBootServicesNotTerminated})
        CHECK_FALSE(info.has(t));
    CHECK(info.modules().empty());
    CHECK(info.efi_memory_map.empty());
    CHECK_FALSE(info.efi_boot_services_active());
}

TEST_CASE("multiboot2: a bare header and end tag is valid and says what is missing") {
    const std::vector<u8> blob = InfoBuilder().end_tag().build();
    REQUIRE(blob.size() == 16);
    BootInfo& info = scratch_info();
    REQUIRE(parse_blob(blob, info).ok());
    CHECK(info.present_tags == 0);
    CHECK_FALSE(info.has(TagType::MemoryMap));
    CHECK(info.command_line == nullptr);
    CHECK(info.memory_regions().empty());
    CHECK(info.usable_bytes() == 0);
}

TEST_CASE("multiboot2: parsing again leaves nothing of the previous parse") {
    BootInfo& info = scratch_info();
    const std::vector<u8> full = qemu_bios_fixture();
    REQUIRE(parse_blob(full, info).ok());
    const std::vector<u8> bare = InfoBuilder().end_tag().build();
    REQUIRE(parse_blob(bare, info).ok());
    CHECK(info.present_tags == 0);
    CHECK(info.region_count == 0);
    CHECK(info.command_line == nullptr);
    CHECK(info.acpi_old_rsdp.length == 0);
    CHECK(info.framebuffer.address == 0);
}

TEST_CASE("multiboot2: the fixed part is checked before anything is read") {
    BootInfo& info = scratch_info();
    const std::vector<u8> blob = InfoBuilder().end_tag().build();

    SECTION("null pointer") {
        CHECK(parse(nullptr, 64, info).status == Status::BadHeader);
    }
    SECTION("fewer than 8 readable bytes") {
        for (usize available = 0; available < 8; ++available)
            CHECK(parse(blob.data(), available, info).status == Status::BadHeader);
    }
    SECTION("misaligned structure") {
        alignas(8) u8 buffer[32] = {};
        std::memcpy(buffer + 4, blob.data(), blob.size());
        const ParseResult r = parse(buffer + 4, blob.size(), info);
        CHECK(r.status == Status::BadHeader);
        CHECK(std::string(r.reason).find("aligned") != std::string::npos);
    }
    SECTION("total_size below 16") {
        for (i64 total : {0, 8, 15}) {
            const std::vector<u8> bad = InfoBuilder().end_tag().build(total);
            CHECK(parse_blob(bad, info).status == Status::BadHeader);
        }
    }
    SECTION("total_size beyond the readable bytes") {
        const std::vector<u8> bad = InfoBuilder().end_tag().build(24);
        const ParseResult r = parse_blob(bad, info);
        CHECK(r.status == Status::BadHeader);
        CHECK(std::string(r.reason).find("exceeds") != std::string::npos);
        CHECK(parse_blob(InfoBuilder().end_tag().build(0xffffffff), info).status ==
              Status::BadHeader);
    }
    SECTION("available_bytes smaller than a valid total_size") {
        const std::vector<u8> full = qemu_bios_fixture();
        CHECK(parse(full.data(), full.size() - 1, info).status == Status::BadHeader);
        CHECK(parse(full.data(), full.size(), info).ok());
    }
    SECTION("total_size may be smaller than what is readable") {
        std::vector<u8> roomy = InfoBuilder().end_tag().build();
        roomy.resize(4096, 0xff);
        CHECK(parse_blob(roomy, info).ok());
    }
}

TEST_CASE("multiboot2: tag headers must fit inside total_size") {
    BootInfo& info = scratch_info();

    SECTION("tag size below its header") {
        for (i64 size : {0, 4, 7}) {
            const std::vector<u8> blob = InfoBuilder().tag(99, Bytes(), size).end_tag().build();
            const ParseResult r = parse_blob(blob, info);
            CHECK(r.status == Status::TagOutOfBounds);
            CHECK(r.offset == 8);
            CHECK(r.tag_type == 99);
        }
    }
    SECTION("tag size past total_size") {
        const std::vector<u8> blob =
            InfoBuilder().tag(1, Bytes().text("abc"), 4096).end_tag().build();
        CHECK(parse_blob(blob, info).status == Status::TagOutOfBounds);
        const std::vector<u8> huge =
            InfoBuilder().tag(99, Bytes(), 0xfffffff8).end_tag().build();
        CHECK(parse_blob(huge, info).status == Status::TagOutOfBounds);
    }
    SECTION("a tag one byte longer than what total_size leaves") {
        const std::vector<u8> blob = InfoBuilder().command_line("abc").end_tag().build(19);
        const ParseResult r = parse_blob(blob, info);
        CHECK(r.status == Status::TagOutOfBounds);
        CHECK(r.tag_type == 1);
    }
    SECTION("a tag cut off by total_size") {
        // The memory map is complete in memory but total_size stops in its middle.
        const std::vector<u8> blob =
            InfoBuilder().memory_map({{0, 0x1000, kAvailable}}).end_tag().build(24);
        CHECK(parse_blob(blob, info).status == Status::TagOutOfBounds);
    }
    SECTION("missing end tag") {
        const std::vector<u8> blob = InfoBuilder().command_line("x").build();
        const ParseResult r = parse_blob(blob, info);
        CHECK(r.status == Status::MissingEndTag);
        CHECK(r.offset == blob.size());
    }
    SECTION("total_size ends inside the end tag's header") {
        // The end tag sits at 24..32 but total_size stops at 28.
        const std::vector<u8> blob = InfoBuilder().command_line("x").end_tag().build(28);
        CHECK(parse_blob(blob, info).status == Status::MissingEndTag);
    }
    SECTION("end tag with the wrong size") {
        const std::vector<u8> blob = InfoBuilder().tag(0, Bytes().zeros(8)).build();
        const ParseResult r = parse_blob(blob, info);
        CHECK(r.status == Status::MissingEndTag);
        CHECK(std::string(r.reason).find("end tag size") != std::string::npos);
    }
    SECTION("a tag not padded to 8 bytes derails the walk") {
        // A loader that forgets the padding puts the next tag at offset 21; the parser looks
        // at 24 (the next aligned address) and must not accept what it finds there.
        const std::vector<u8> blob = InfoBuilder()
                                         .tag(1, Bytes().text("abcd"), -1, /*pad=*/false)
                                         .end_tag()
                                         .build();
        CHECK_FALSE(parse_blob(blob, info).ok());
    }
    SECTION("tags after the end tag are never read") {
        const std::vector<u8> blob = InfoBuilder().end_tag().tag(99, Bytes(), 3).build();
        CHECK(parse_blob(blob, info).ok());
    }
}

TEST_CASE("multiboot2: each parsed tag type has a minimum size") {
    BootInfo& info = scratch_info();
    struct Case {
        u32 type;
        usize minimum;
    };
    const Case c = GENERATE(values<Case>({{1, 9}, {2, 9}, {3, 17}, {4, 16}, {6, 16}, {8, 32},
                                          {12, 16}, {14, 28}, {15, 28}, {17, 16}, {21, 12}}));
    CAPTURE(c.type);
    // One byte short of the minimum: rejected with the tag's position and type.
    const std::vector<u8> short_blob =
        InfoBuilder().tag(c.type, Bytes().zeros(c.minimum - 9)).end_tag().build();
    const ParseResult r = parse_blob(short_blob, info);
    CHECK(r.status == Status::TagTooSmall);
    CHECK(r.tag_type == c.type);
    CHECK(r.offset == 8);
    // At the minimum, with plausible contents (descriptor and entry sizes set, NULs in place):
    // accepted.
    Bytes body = Bytes().zeros(c.minimum - 8);
    if (c.type == 6) std::memcpy(body.data.data(), "\x18\0\0\0", 4);
    if (c.type == 17) std::memcpy(body.data.data(), "\x28\0\0\0", 4);
    const std::vector<u8> exact = InfoBuilder().tag(c.type, body).end_tag().build();
    const ParseResult ok = parse_blob(exact, info);
    INFO(ok.reason);
    CHECK(ok.ok());
    CHECK(info.has(static_cast<TagType>(c.type)));
}

TEST_CASE("multiboot2: strings must be NUL-terminated inside their tag") {
    BootInfo& info = scratch_info();

    SECTION("command line and loader name") {
        for (u32 type : {1u, 2u}) {
            // The padding after the tag holds zeros, but they are outside the tag.
            const std::vector<u8> blob =
                InfoBuilder().tag(type, Bytes().text("abc", false)).end_tag().build();
            const ParseResult r = parse_blob(blob, info);
            CHECK(r.status == Status::UnterminatedString);
            CHECK(r.tag_type == type);
        }
    }
    SECTION("module command line") {
        const std::vector<u8> blob = InfoBuilder()
                                         .tag(3, Bytes().u32le(0x1000).u32le(0x2000).text(
                                                     "dom0", false))
                                         .end_tag()
                                         .build();
        CHECK(parse_blob(blob, info).status == Status::UnterminatedString);
    }
    SECTION("a NUL before the end of the tag ends the string") {
        const std::vector<u8> blob =
            InfoBuilder().tag(1, Bytes().text("abc").text("junk", false)).end_tag().build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(std::string(info.command_line) == "abc");
    }
    SECTION("an empty string is a lone NUL") {
        const std::vector<u8> blob = InfoBuilder().command_line("").end_tag().build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(std::string(info.command_line).empty());
    }
}

TEST_CASE("multiboot2: memory map entries") {
    BootInfo& info = scratch_info();

    SECTION("entry_size below 24 is rejected, including zero") {
        for (u32 entry_size : {0u, 8u, 16u, 23u}) {
            const std::vector<u8> blob =
                InfoBuilder()
                    .tag(6, Bytes().u32le(entry_size).u32le(0).zeros(48))
                    .end_tag()
                    .build();
            CHECK(parse_blob(blob, info).status == Status::BadEntrySize);
        }
    }
    SECTION("entries that do not fill the tag are rejected") {
        const std::vector<u8> blob =
            InfoBuilder().tag(6, Bytes().u32le(24).u32le(0).zeros(24 + 8)).end_tag().build();
        CHECK(parse_blob(blob, info).status == Status::BadEntrySize);
        const std::vector<u8> bigger_than_tag =
            InfoBuilder().tag(6, Bytes().u32le(48).u32le(0).zeros(24)).end_tag().build();
        CHECK(parse_blob(bigger_than_tag, info).status == Status::BadEntrySize);
    }
    SECTION("an empty map is valid") {
        const std::vector<u8> blob = InfoBuilder().memory_map({}).end_tag().build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.has(TagType::MemoryMap));
        CHECK(info.memory_regions().empty());
    }
    SECTION("larger entries from a newer loader are read by stride") {
        const std::vector<u8> blob =
            InfoBuilder()
                .memory_map({{0x1000, 0x2000, kAvailable}, {0x100000, 0x100000, 3}}, 40)
                .end_tag()
                .build();
        REQUIRE(parse_blob(blob, info).ok());
        REQUIRE(info.memory_regions().size() == 2);
        CHECK(info.memory_regions()[1].base == 0x100000);
        CHECK(info.memory_regions()[1].length == 0x100000);
        CHECK(info.memory_regions()[1].type() == MemoryType::AcpiReclaimable);
    }
    SECTION("unknown types read as reserved, the raw value is kept") {
        const std::vector<u8> blob =
            InfoBuilder()
                .memory_map({{0, 0x1000, 4}, {0x1000, 0x1000, 5}, {0x2000, 0x1000, 7},
                             {0x3000, 0x1000, 0}})
                .end_tag()
                .build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.memory_regions()[0].type() == MemoryType::AcpiNvs);
        CHECK(info.memory_regions()[1].type() == MemoryType::BadRam);
        CHECK(info.memory_regions()[2].type() == MemoryType::Reserved);
        CHECK(info.memory_regions()[2].raw_type == 7);
        CHECK(info.memory_regions()[3].type() == MemoryType::Reserved);
        CHECK(info.usable_bytes() == 0);
    }
    SECTION("a region wrapping past 2^64 is dropped with a warning") {
        const std::vector<u8> blob =
            InfoBuilder()
                .memory_map({{0x100000, 0x100000, kAvailable},
                             {0xfffffffffffff000, 0x1000, kAvailable},  // ends at exactly 2^64
                             {0xffffffff00000000, 0xffffffff00000000, kReserved},
                             {0xfffffffffffff000, 0xfff, kReserved}})  // ends at 2^64 - 1: fits
                .end_tag()
                .build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.has_warning(kWarnRegionOverflow));
        REQUIRE(info.memory_regions().size() == 2);
        CHECK(info.memory_regions()[0].base == 0x100000);
        CHECK(info.memory_regions()[1].end() == 0xffffffffffffffff);
        CHECK(info.usable_bytes() == 0x100000);
    }
    SECTION("more entries than fit are truncated with a warning, not an error") {
        std::vector<MemoryMapEntry> entries;
        for (u64 i = 0; i < BootInfo::kMaxRegions + 44; ++i)
            entries.push_back({i * 0x2000, 0x1000, kAvailable});
        const std::vector<u8> blob = InfoBuilder().memory_map(entries).end_tag().build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.has_warning(kWarnRegionsTruncated));
        CHECK(info.memory_regions().size() == BootInfo::kMaxRegions);
        CHECK(info.memory_regions()[BootInfo::kMaxRegions - 1].base ==
              (BootInfo::kMaxRegions - 1) * 0x2000);
        CHECK(info.usable_bytes() == BootInfo::kMaxRegions * 0x1000);
    }
    SECTION("exactly the capacity is no truncation") {
        std::vector<MemoryMapEntry> entries;
        for (u64 i = 0; i < BootInfo::kMaxRegions; ++i)
            entries.push_back({i * 0x1000, 0x1000, kReserved});
        REQUIRE(parse_blob(InfoBuilder().memory_map(entries).end_tag().build(), info).ok());
        CHECK(info.warnings == 0);
        CHECK(info.memory_regions().size() == BootInfo::kMaxRegions);
    }
    SECTION("regions come out sorted by base, equal bases in the loader's order") {
        const std::vector<u8> blob = InfoBuilder()
                                         .memory_map({{0x300000, 0x1000, kAvailable},
                                                      {0x100000, 0x1000, kReserved},
                                                      {0x200000, 0x1000, kAvailable},
                                                      {0x100000, 0x2000, kAvailable},
                                                      {0x0, 0x1000, kAvailable}})
                                         .end_tag()
                                         .build();
        REQUIRE(parse_blob(blob, info).ok());
        std::vector<std::pair<u64, u64>> order;
        for (const MemoryRegion& r : info.memory_regions()) order.emplace_back(r.base, r.length);
        CHECK(order == std::vector<std::pair<u64, u64>>{{0x0, 0x1000},
                                                        {0x100000, 0x1000},
                                                        {0x100000, 0x2000},
                                                        {0x200000, 0x1000},
                                                        {0x300000, 0x1000}});
    }
}

TEST_CASE("multiboot2: usable_bytes counts overlapping available memory once") {
    BootInfo& info = scratch_info();
    const std::vector<u8> blob = InfoBuilder()
                                     .memory_map({
                                         {0x1000, 0x2000, kAvailable},    // 0x1000..0x3000
                                         {0x2000, 0x2000, kAvailable},    // 0x2000..0x4000
                                         {0x1800, 0x100, kAvailable},     // nested
                                         {0x0, 0x10000, kReserved},       // not available
                                         {0x10000, 0x0, kAvailable},      // empty
                                         {0x20000, 0x1000, kAvailable},   // disjoint
                                         {0x20000, 0x1000, kAvailable},   // duplicate
                                         {0x3800, 0x800, kAvailable},     // inside the union
                                         {0x4000, 0x1000, kAvailable},    // touching the end
                                     })
                                     .end_tag()
                                     .build();
    REQUIRE(parse_blob(blob, info).ok());
    CHECK(info.usable_bytes() == (0x5000 - 0x1000) + 0x1000);
}

TEST_CASE("multiboot2: modules") {
    BootInfo& info = scratch_info();

    SECTION("kept in order with their command lines") {
        const std::vector<u8> blob = InfoBuilder()
                                         .module(0x200000, 0x3f0000, "dom0 console=hvc0")
                                         .command_line("loglvl=debug")
                                         .module(0x400000, 0x400000, "")
                                         .end_tag()
                                         .build();
        REQUIRE(parse_blob(blob, info).ok());
        std::vector<std::string> lines;
        for (const Module& m : info.modules()) lines.emplace_back(m.command_line);
        CHECK(lines == std::vector<std::string>{"dom0 console=hvc0", ""});
        CHECK(info.modules()[0].start == 0x200000);
        CHECK(info.modules()[0].size() == 0x1f0000);
        CHECK(info.modules()[1].size() == 0);
        CHECK(info.has(TagType::Module));
    }
    SECTION("a module starting after its end is an error") {
        const std::vector<u8> blob =
            InfoBuilder().module(0x2000, 0x1fff, "bad").end_tag().build();
        const ParseResult r = parse_blob(blob, info);
        CHECK(r.status == Status::BadModuleRange);
        CHECK(r.tag_type == 3);
    }
    SECTION("more modules than fit are truncated with a warning") {
        InfoBuilder b;
        for (u32 i = 0; i < BootInfo::kMaxModules + 8; ++i)
            b.module(i * 0x1000, i * 0x1000 + 0x800, "m" + std::to_string(i));
        const std::vector<u8> blob = b.end_tag().build();  // outlives the views into it
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.has_warning(kWarnModulesTruncated));
        REQUIRE(info.modules().size() == BootInfo::kMaxModules);
        CHECK(std::string(info.modules()[BootInfo::kMaxModules - 1].command_line) == "m31");
    }
}

TEST_CASE("multiboot2: unknown and repeated tags") {
    BootInfo& info = scratch_info();

    SECTION("unknown tags are skipped whatever their contents") {
        const std::vector<u8> blob = InfoBuilder()
                                         .tag(9, Bytes().u32le(0xffffffff).zeros(37))
                                         .tag(63, Bytes())
                                         .tag(1000, Bytes().text("not a string", false))
                                         .tag(0xffffffff, Bytes().zeros(3))
                                         .command_line("after")
                                         .end_tag()
                                         .build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(std::string(info.command_line) == "after");
        CHECK(info.has(TagType::ElfSections));
        CHECK(info.has(static_cast<TagType>(63)));
        CHECK_FALSE(info.has(static_cast<TagType>(1000)));
    }
    SECTION("a repeated singleton tag keeps the first and warns") {
        const std::vector<u8> blob = InfoBuilder()
                                         .command_line("first")
                                         .memory_map({{0, 0x1000, kAvailable}})
                                         .command_line("second")
                                         .memory_map({{0, 0x9000, kAvailable}})
                                         .end_tag()
                                         .build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(std::string(info.command_line) == "first");
        CHECK(info.usable_bytes() == 0x1000);
        CHECK(info.has_warning(kWarnDuplicateTag));
    }
    SECTION("tags that repeat by design raise no warning") {
        const std::vector<u8> blob = InfoBuilder()
                                         .tag(16, Bytes().zeros(12))  // one per network card
                                         .tag(16, Bytes().zeros(12))
                                         .module(0x1000, 0x2000, "a")
                                         .module(0x3000, 0x4000, "b")
                                         .end_tag()
                                         .build();
        REQUIRE(parse_blob(blob, info).ok());
        CHECK(info.warnings == 0);
        CHECK(info.modules().size() == 2);
    }
}

TEST_CASE("multiboot2: EFI tags") {
    BootInfo& info = scratch_info();

    // Three descriptors of 48 bytes, as OVMF reports them (UEFI lets descriptors grow).
    auto descriptor = [](u32 type, u64 start, u64 pages, u64 attribute) {
        return Bytes()
            .u32le(type)
            .u32le(0)
            .u64le(start)
            .u64le(0xdead0000)
            .u64le(pages)
            .u64le(attribute)
            .u64le(0x5555555555555555);  // the extra 8 bytes of a newer descriptor
    };
    Bytes efi_map;
    efi_map.u32le(48).u32le(1);
    for (const Bytes& d : {descriptor(7, 0x100000, 0x7ee0, 0xf), descriptor(3, 0x0, 0xa0, 0xf),
                           descriptor(11, 0xffc00000, 0x400, 0x8000000000000001)})
        efi_map.data.insert(efi_map.data.end(), d.data.begin(), d.data.end());

    SECTION("the memory map is a view with decoded descriptors") {
        const std::vector<u8> blob = InfoBuilder()
                                         .tag(12, Bytes().u64le(0x7fb5e018))
                                         .tag(17, efi_map)
                                         .tag(18, Bytes())
                                         .tag(21, Bytes().u32le(0x200000))
                                         .end_tag()
                                         .build();
        const ParseResult r = parse_blob(blob, info);
        INFO(r.reason);
        REQUIRE(r.ok());
        CHECK(info.efi64_system_table == 0x7fb5e018);
        CHECK(info.efi_boot_services_active());
        CHECK(info.image_load_base == 0x200000);
        const EfiMemoryMap& map = info.efi_memory_map;
        REQUIRE(map.size() == 3);
        CHECK(map.descriptor_size() == 48);
        CHECK(map.descriptor_version() == 1);
        CHECK(map[0].type == 7);
        CHECK(map[0].physical_start == 0x100000);
        CHECK(map[0].virtual_start == 0xdead0000);
        CHECK(map[0].number_of_pages == 0x7ee0);
        CHECK(map[2].attribute == 0x8000000000000001);
        u64 end = 0;
        REQUIRE(map[0].physical_end(&end));
        CHECK(end == 0x7fe0000);
        std::vector<u32> types;
        for (const EfiMemoryDescriptor d : map) types.push_back(d.type);
        CHECK(types == std::vector<u32>{7, 3, 11});
        CHECK_THROWS(map[3]);
    }
    SECTION("descriptor_size below 40 is rejected") {
        Bytes small = Bytes().u32le(32).u32le(1).zeros(64);
        const std::vector<u8> blob = InfoBuilder().tag(17, small).end_tag().build();
        CHECK(parse_blob(blob, info).status == Status::BadEntrySize);
        Bytes zero = Bytes().u32le(0).u32le(1).zeros(64);
        CHECK(parse_blob(InfoBuilder().tag(17, zero).end_tag().build(), info).status ==
              Status::BadEntrySize);
    }
    SECTION("descriptors that do not fill the tag are rejected") {
        Bytes partial = efi_map;
        partial.data.resize(partial.data.size() - 8);
        const std::vector<u8> blob = InfoBuilder().tag(17, partial).end_tag().build();
        CHECK(parse_blob(blob, info).status == Status::BadEntrySize);
    }
    SECTION("a descriptor whose end overflows says so") {
        const EfiMemoryDescriptor huge{7, 0xfffffffffff00000, 0, 0x1000, 0};
        u64 end = 0;
        CHECK_FALSE(huge.physical_end(&end));
        const EfiMemoryDescriptor many{7, 0, 0, 0x10000000000000, 0};  // pages * 4 KiB wraps
        CHECK_FALSE(many.physical_end(&end));
    }
}

TEST_CASE("multiboot2: ACPI RSDP copies") {
    BootInfo& info = scratch_info();
    Bytes v2 = rsdp_v1().u32le(36).u64le(0x7fe14d0).u8s({0x99, 0, 0, 0});
    REQUIRE(v2.data.size() == 36);

    SECTION("a 36-byte RSDPv2 is kept whole") {
        REQUIRE(parse_blob(InfoBuilder().tag(15, v2).end_tag().build(), info).ok());
        REQUIRE(info.acpi_new_rsdp.length == 36);
        CHECK(std::memcmp(info.acpi_new_rsdp.bytes, v2.data.data(), 36) == 0);
    }
    SECTION("a longer copy keeps the defined 36 bytes") {
        Bytes longer = v2;
        longer.zeros(12);
        REQUIRE(parse_blob(InfoBuilder().tag(15, longer).end_tag().build(), info).ok());
        CHECK(info.acpi_new_rsdp.length == 36);
    }
    SECTION("a short copy keeps what is there; the ACPI driver judges it") {
        REQUIRE(parse_blob(InfoBuilder().tag(15, rsdp_v1()).end_tag().build(), info).ok());
        CHECK(info.acpi_new_rsdp.length == 20);
    }
    SECTION("the old RSDP keeps 20 bytes") {
        REQUIRE(parse_blob(InfoBuilder().tag(14, v2).end_tag().build(), info).ok());
        CHECK(info.acpi_old_rsdp.length == 20);
        CHECK(std::memcmp(info.acpi_old_rsdp.bytes, v2.data.data(), 20) == 0);
    }
}

TEST_CASE("multiboot2: framebuffer color information") {
    BootInfo& info = scratch_info();
    auto common = [](u8 type) {
        return Bytes().u64le(0xfd000000).u32le(4096).u32le(1024).u32le(768).u8s({32, type}).u16le(
            0);
    };

    SECTION("direct RGB") {
        Bytes body = common(1).u8s({16, 8, 8, 8, 0, 8});
        REQUIRE(parse_blob(InfoBuilder().tag(8, body).end_tag().build(), info).ok());
        const Framebuffer& fb = info.framebuffer;
        CHECK(fb.address == 0xfd000000);
        CHECK(fb.bits_per_pixel == 32);
        REQUIRE(fb.has_color_info);
        CHECK(fb.red_position == 16);
        CHECK(fb.green_position == 8);
        CHECK(fb.blue_position == 0);
        CHECK(fb.blue_mask_size == 8);
    }
    SECTION("direct RGB without its color fields") {
        REQUIRE(parse_blob(InfoBuilder().tag(8, common(1)).end_tag().build(), info).ok());
        CHECK_FALSE(info.framebuffer.has_color_info);
    }
    SECTION("indexed with a palette") {
        Bytes body = common(0).u16le(2).u8s({1, 2, 3, 4, 5, 6});
        const std::vector<u8> blob = InfoBuilder().tag(8, body).end_tag().build();
        REQUIRE(parse_blob(blob, info).ok());
        REQUIRE(info.framebuffer.has_color_info);
        REQUIRE(info.framebuffer.palette_colors == 2);
        CHECK(info.framebuffer.palette[5] == 6);
    }
    SECTION("a palette running past its tag is an error") {
        Bytes body = common(0).u16le(3).u8s({1, 2, 3, 4, 5, 6});
        CHECK(parse_blob(InfoBuilder().tag(8, body).end_tag().build(), info).status ==
              Status::TagOutOfBounds);
        Bytes one_byte_short = common(0).u16le(2).u8s({1, 2, 3, 4, 5});
        CHECK(parse_blob(InfoBuilder().tag(8, one_byte_short).end_tag().build(), info).status ==
              Status::TagOutOfBounds);
        Bytes huge = common(0).u16le(0xffff);
        CHECK(parse_blob(InfoBuilder().tag(8, huge).end_tag().build(), info).status ==
              Status::TagOutOfBounds);
    }
    SECTION("an unknown framebuffer type carries no color information") {
        Bytes body = common(7).u8s({1, 2, 3, 4, 5, 6});
        REQUIRE(parse_blob(InfoBuilder().tag(8, body).end_tag().build(), info).ok());
        CHECK(info.framebuffer.raw_type == 7);
        CHECK_FALSE(info.framebuffer.has_color_info);
    }
}

TEST_CASE("multiboot2: no corruption of the fixture reads out of bounds") {
    // Every byte replaced by values that stress sizes and types, every truncation of the
    // readable length: the parser may fail, but under ASan it must never read past the blob.
    const std::vector<u8> fixture = qemu_bios_fixture();
    BootInfo& info = scratch_info();
    usize accepted = 0;
    for (usize at = 0; at < fixture.size(); ++at) {
        for (u8 value : {u8{0x00}, u8{0x01}, u8{0x07}, u8{0x17}, u8{0x80}, u8{0xff}}) {
            std::vector<u8> mutated = fixture;
            mutated[at] = value;
            if (parse_blob(mutated, info).ok()) ++accepted;
        }
    }
    CHECK(accepted > 0);  // bytes inside strings and addresses may change freely
    for (usize available = 0; available <= fixture.size(); ++available) {
        std::vector<u8> truncated(fixture.begin(), fixture.begin() + available);
        CHECK(parse_blob(truncated, info).ok() == (available == fixture.size()));
    }
}
