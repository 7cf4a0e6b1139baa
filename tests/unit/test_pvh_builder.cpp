#include <catch2/catch.hpp>

#include <hypervisor/vcpu.h>
#include <lamina/format.h>
#include <lamina/pvh_builder.h>

#include "elf_builder.h"

#include <array>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace lamina;
using test::ElfBuilder;

namespace {

// The builder's result mirrors the vCPU interface's entry state.
static_assert(static_cast<u8>(pvh::EntryMode::Protected32) == static_cast<u8>(EntryMode::Protected32));
static_assert(static_cast<u8>(pvh::EntryMode::Real) == static_cast<u8>(EntryMode::Real));

constexpr u8 kUntouched = 0xaa;

// A domain's RAM as sparse pages: what was never written reads as kUntouched, so a test can tell
// "zeroed by the builder" from "left alone". Every write is recorded.
class FakeMemory final : public pvh::GuestMemoryWriter {
public:
    struct Access {
        u64 gpa, size;
        bool zero;
    };

    explicit FakeMemory(u64 ram_bytes) : ram_bytes_(ram_bytes) {}

    bool write(u64 gpa, const void* data, usize size) override {
        if (!accept(gpa, size, false)) return false;
        auto* bytes = static_cast<const u8*>(data);
        for (usize i = 0; i < size; ++i) byte(gpa + i) = bytes[i];
        return true;
    }
    bool zero(u64 gpa, u64 size) override {
        if (!accept(gpa, size, true)) return false;
        for (u64 i = 0; i < size; ++i) byte(gpa + i) = 0;
        return true;
    }

    std::vector<u8> read(u64 gpa, u64 size) const {
        std::vector<u8> out(size, kUntouched);
        for (u64 i = 0; i < size; ++i) {
            auto page = pages_.find((gpa + i) / 4096);
            if (page != pages_.end()) out[i] = page->second[(gpa + i) % 4096];
        }
        return out;
    }
    template <typename T>
    T read_as(u64 gpa) const {
        std::vector<u8> bytes = read(gpa, sizeof(T));
        T value;
        std::memcpy(&value, bytes.data(), sizeof(T));
        return value;
    }
    std::string read_string(u64 gpa) const {
        std::string s;
        for (u8 c; (c = read(gpa + s.size(), 1)[0]) != 0;) s.push_back(static_cast<char>(c));
        return s;
    }
    bool all(u64 gpa, u64 size, u8 value) const {
        std::vector<u8> bytes = read(gpa, size);
        for (u8 b : bytes)
            if (b != value) return false;
        return true;
    }

    const std::vector<Access>& accesses() const { return accesses_; }
    // Refuses any access that touches `gpa`, as a writer does outside the domain's memory.
    void refuse_at(u64 gpa) { refuse_at_ = gpa; }

private:
    bool accept(u64 gpa, u64 size, bool zero) {
        u64 end;
        if (add_overflows(gpa, size, &end) || end > ram_bytes_) return false;
        if (gpa <= refuse_at_ && refuse_at_ < end) return false;
        accesses_.push_back({gpa, size, zero});
        return true;
    }
    u8& byte(u64 gpa) {
        auto [page, fresh] = pages_.try_emplace(gpa / 4096);
        if (fresh) page->second.fill(kUntouched);
        return page->second[gpa % 4096];
    }

    u64 ram_bytes_;
    u64 refuse_at_ = ~u64{0};
    std::map<u64, std::array<u8, 4096>> pages_;
    std::vector<Access> accesses_;
};

struct Build {
    std::vector<u8> image;
    pvh::BuildRequest request;
    pvh::Layout layout{};

    Build(const ElfBuilder& elf, u64 ram_bytes) : image(elf.build()) {
        request.kernel = image.data();
        request.kernel_size = image.size();
        request.ram_bytes = ram_bytes;
    }
    pvh::Result run(FakeMemory& memory) { return pvh::build(request, memory, layout); }
};

std::string describe(const pvh::Result& result) {
    char text[200];
    BufferSink sink(text, sizeof(text));
    pvh::describe(sink, result);
    return text;
}

// A kernel as a linker lays one out at 1 MiB: text, then data with BSS behind it.
ElfBuilder typical_kernel() {
    ElfBuilder elf;
    elf.load(0x100000, 0x2000, 0x2000, 5);
    elf.load(0x102000, 0x180, 0x3000, 6);  // BSS: [0x102180, 0x105000)
    elf.pvh_note(0x100010);
    return elf;
}

constexpr u64 kRam = 16 * MiB;

bool same_entry(const pvh::MemoryMapEntry& e, u64 address, u64 size, pvh::MemoryType type) {
    return e.address == address && e.size == size && e.type == type && e.reserved == 0;
}

}  // namespace

TEST_CASE("pvh builder: kernel, BSS, a module, command line and start info") {
    ElfBuilder elf = typical_kernel();
    Build b(elf, kRam);
    std::vector<u8> ramdisk(5000);
    for (size_t i = 0; i < ramdisk.size(); ++i) ramdisk[i] = static_cast<u8>(i * 13 + 1);
    const pvh::Module module{ramdisk.data(), ramdisk.size(), "initrd"};
    b.request.modules = &module;
    b.request.module_count = 1;
    b.request.command_line = "console=hvc0 root=/dev/ram0";
    b.request.flags = pvh::kFlagPrivileged | pvh::kFlagInitialDomain;
    b.request.rsdp = 0xe0000;
    FakeMemory memory(kRam);
    pvh::Result result = b.run(memory);
    REQUIRE(result.ok());
    const pvh::Layout& l = b.layout;

    // The entry: 32-bit protected mode at the PVH entry, EBX = start info, no stack.
    CHECK(l.entry.mode == pvh::EntryMode::Protected32);
    CHECK(l.entry.rip == 0x100010);
    CHECK(l.entry.rbx == 0x1000);
    CHECK(l.entry.rsp == 0);

    // The segments, byte for byte, and the BSS zeroed.
    std::vector<u8> text = memory.read(0x100000, 0x2000);
    CHECK(std::equal(text.begin(), text.end(), b.image.begin() + static_cast<long>(elf.file_offset(0))));
    std::vector<u8> data = memory.read(0x102000, 0x180);
    CHECK(std::equal(data.begin(), data.end(), b.image.begin() + static_cast<long>(elf.file_offset(1))));
    CHECK(memory.all(0x102180, 0x105000 - 0x102180, 0));
    CHECK(l.kernel_start == 0x100000);
    CHECK(l.kernel_end == 0x105000);

    // The module: page-aligned, right above the kernel.
    CHECK(l.module_count == 1);
    CHECK(l.modules[0] == 0x105000);
    CHECK(memory.read(0x105000, 5000) == ramdisk);
    CHECK(l.highest_used == 0x105000 + 5000);

    // The start info.
    auto start = memory.read_as<pvh::StartInfo>(0x1000);
    CHECK(start.magic == 0x336ec578);
    CHECK(start.version == 1);
    CHECK(start.flags == 3);
    CHECK(start.rsdp == 0xe0000);
    CHECK(start.reserved == 0);
    REQUIRE(start.module_count == 1);
    CHECK(start.module_list == 0x1040);
    CHECK(l.module_list == 0x1040);
    auto entry = memory.read_as<pvh::ModuleEntry>(0x1040);
    CHECK(entry.address == 0x105000);
    CHECK(entry.size == 5000);
    CHECK(entry.command_line == 0x1c00);
    CHECK(entry.reserved == 0);
    CHECK(memory.read_string(0x1c00) == "initrd");
    CHECK(start.command_line == 0x2000);
    CHECK(l.command_line == 0x2000);
    CHECK(memory.read_string(0x2000) == "console=hvc0 root=/dev/ram0");
    REQUIRE(start.memory_map_entries == 1);
    CHECK(start.memory_map == 0x1240);
    CHECK(l.memory_map_entries == 1);
    CHECK(same_entry(memory.read_as<pvh::MemoryMapEntry>(0x1240), 0, kRam, pvh::MemoryType::Ram));

    // The rest of the boot info is zero; page 0 and the gaps are left alone.
    CHECK(memory.all(0x1000 + sizeof(pvh::StartInfo), 0x40 - sizeof(pvh::StartInfo), 0));
    CHECK(memory.all(0x1040 + 32, 0x1240 - 0x1040 - 32, 0));
    CHECK(memory.all(0x1240 + 24, 0x1c00 - 0x1240 - 24, 0));
    CHECK(memory.all(0x1c00 + 7, 0x2000 - 0x1c00 - 7, 0));
    CHECK(memory.all(0x2000 + 28, 0x3000 - 0x2000 - 28, 0));
    CHECK(memory.all(0, 0x1000, kUntouched));
    CHECK(memory.all(0x3000, 0x100000 - 0x3000, kUntouched));
    CHECK(memory.all(0x105000 + 5000, 0x1000, kUntouched));
}

TEST_CASE("pvh builder: without modules or command line those fields are 0") {
    Build b(typical_kernel(), kRam);
    FakeMemory memory(kRam);
    SECTION("no command line") { b.request.command_line = nullptr; }
    SECTION("an empty command line") { b.request.command_line = ""; }
    REQUIRE(b.run(memory).ok());
    auto start = memory.read_as<pvh::StartInfo>(0x1000);
    CHECK(start.module_count == 0);
    CHECK(start.module_list == 0);
    CHECK(start.command_line == 0);
    CHECK(start.flags == 0);
    CHECK(start.rsdp == 0);
    CHECK(b.layout.module_count == 0);
    CHECK(b.layout.module_list == 0);
    CHECK(b.layout.command_line == 0);
    CHECK(b.layout.highest_used == 0x105000);
    CHECK(memory.all(0x1040, 0x200, 0));
    CHECK(memory.all(0x1c00, 0x1400, 0));
}

TEST_CASE("pvh builder: the memory map cuts the reserved regions out of RAM") {
    Build b(typical_kernel(), kRam);
    const pvh::Region regions[] = {
        {0x1000, 0x1000, pvh::MemoryType::Reserved},          // where the boot page would go
        {0xe0000, 0x20000, pvh::MemoryType::AcpiReclaimable},
        {0xff0000, 0x20000, pvh::MemoryType::AcpiNvs},        // straddles the end of RAM
        {0xfee00000, 0x1000, pvh::MemoryType::Reserved},      // above RAM: only in the map
    };
    b.request.regions = regions;
    b.request.region_count = 4;
    FakeMemory memory(kRam);
    REQUIRE(b.run(memory).ok());

    CHECK(b.layout.start_info == 0x2000);
    auto start = memory.read_as<pvh::StartInfo>(0x2000);
    REQUIRE(start.memory_map_entries == 7);
    CHECK(start.memory_map == 0x2240);
    std::vector<pvh::MemoryMapEntry> map;
    for (u32 i = 0; i < 7; ++i) map.push_back(memory.read_as<pvh::MemoryMapEntry>(0x2240 + 24 * i));
    CHECK(same_entry(map[0], 0, 0x1000, pvh::MemoryType::Ram));
    CHECK(same_entry(map[1], 0x1000, 0x1000, pvh::MemoryType::Reserved));
    CHECK(same_entry(map[2], 0x2000, 0xde000, pvh::MemoryType::Ram));
    CHECK(same_entry(map[3], 0xe0000, 0x20000, pvh::MemoryType::AcpiReclaimable));
    CHECK(same_entry(map[4], 0x100000, 0xef0000, pvh::MemoryType::Ram));
    CHECK(same_entry(map[5], 0xff0000, 0x20000, pvh::MemoryType::AcpiNvs));
    CHECK(same_entry(map[6], 0xfee00000, 0x1000, pvh::MemoryType::Reserved));
    // The builder wrote nothing inside a region.
    for (const FakeMemory::Access& a : memory.accesses())
        for (const pvh::Region& r : regions) CHECK((a.gpa + a.size <= r.address || a.gpa >= r.address + r.size));
}

TEST_CASE("pvh builder: placement steps around the kernel, the regions and itself") {
    // A kernel linked low takes the page the boot information would use.
    ElfBuilder elf;
    elf.load(0x1000, 0x800, 0x1800, 7);  // [0x1000, 0x2800)
    elf.pvh_note(0x1000);
    Build b(elf, kRam);
    const pvh::Region regions[] = {{0x5000, 0x2000, pvh::MemoryType::Reserved}};
    b.request.regions = regions;
    b.request.region_count = 1;
    std::vector<u8> ramdisk(0x1800, 0x5a);
    const pvh::Module module{ramdisk.data(), ramdisk.size(), "initrd"};
    b.request.modules = &module;
    b.request.module_count = 1;
    FakeMemory memory(kRam);
    REQUIRE(b.run(memory).ok());
    // Boot info: 0x1000 is the kernel's, 0x3000 is free (the kernel ends mid-page at 0x2800).
    CHECK(b.layout.start_info == 0x3000);
    // The module: above the kernel, past the boot info and the region ([0x5000, 0x7000)).
    CHECK(b.layout.modules[0] == 0x7000);
    CHECK(memory.all(0x7000, 0x1800, 0x5a));
    CHECK(b.layout.highest_used == 0x8800);
    CHECK(memory.read_as<pvh::ModuleEntry>(0x3040).address == 0x7000);
}

TEST_CASE("pvh builder: RAM above 4 GiB is mapped, but everything placed stays below") {
    constexpr u64 kBigRam = 8 * GiB;
    Build b(typical_kernel(), kBigRam);
    u8 small = 0;
    FakeMemory memory(kBigRam);
    SECTION("the map covers all of RAM") {
        REQUIRE(b.run(memory).ok());
        CHECK(same_entry(memory.read_as<pvh::MemoryMapEntry>(0x1240), 0, kBigRam, pvh::MemoryType::Ram));
    }
    SECTION("a module that would cross 4 GiB does not fit") {
        // Never read: the build fails before it writes.
        const pvh::Module module{&small, 4 * GiB - 0x105000 + 1, "big"};
        b.request.modules = &module;
        b.request.module_count = 1;
        pvh::Result r = b.run(memory);
        CHECK(r.status == pvh::Status::ModuleTooBig);
        CHECK(describe(r) ==
              "module 0 (0xffefb001 bytes) does not fit in free RAM between 0x105000 and 0x100000000");
        CHECK(memory.accesses().empty());
    }
}

TEST_CASE("pvh builder: segments may touch each other and the end of RAM") {
    ElfBuilder elf;
    elf.load(0x100000, 0x1000, 0x1000);
    elf.load(0x101000, 0x10, kRam - 0x101000, 6);
    elf.pvh_note(0x100000);
    Build b(elf, kRam);
    FakeMemory memory(kRam);
    REQUIRE(b.run(memory).ok());
    CHECK(b.layout.kernel_end == kRam);
    CHECK(memory.all(0x101010, 0x100, 0));
    CHECK(memory.all(kRam - 0x100, 0x100, 0));
}

TEST_CASE("pvh builder: malformed kernels are refused before anything is written") {
    FakeMemory memory(kRam);
    auto refused = [&](Build& b, pvh::Status status) {
        pvh::Result r = b.run(memory);
        CHECK(r.status == status);
        CHECK(memory.accesses().empty());
        return describe(r);
    };

    SECTION("every truncation of a good image") {
        std::vector<u8> good = typical_kernel().build();
        for (size_t n = 0; n < good.size(); ++n) {
            std::vector<u8> cut(good.begin(), good.begin() + static_cast<long>(n));  // ASan guards the end
            pvh::BuildRequest request;
            request.kernel = cut.data();
            request.kernel_size = cut.size();
            request.ram_bytes = kRam;
            pvh::Layout layout;
            CHECK_FALSE(pvh::build(request, memory, layout).ok());
        }
        CHECK(memory.accesses().empty());
    }
    SECTION("a truncated header") {
        Build b(typical_kernel(), kRam);
        b.request.kernel_size = 63;
        CHECK(refused(b, pvh::Status::BadImage) ==
              "the kernel is not a loadable ELF image: shorter than an ELF header");
    }
    SECTION("no image at all") {
        Build b(typical_kernel(), kRam);
        b.request.kernel = nullptr;
        b.request.kernel_size = 0;
        refused(b, pvh::Status::BadImage);
    }
    SECTION("no PVH note") {
        ElfBuilder elf;
        elf.load(0x100000, 0x100, 0x100);
        Build b(elf, kRam);
        CHECK(refused(b, pvh::Status::NoPvhEntry) ==
              "the kernel has no PVH entry point (no XEN_ELFNOTE_PHYS32_ENTRY note)");
    }
    SECTION("a segment past the end of RAM") {
        ElfBuilder elf = typical_kernel();
        elf.load(0xf00000, 0x10, 0x200000);
        Build b(elf, kRam);
        pvh::Result r = b.run(memory);
        CHECK(r.status == pvh::Status::SegmentOutsideRam);
        CHECK(r.values[0] == 2);
        CHECK(describe(r) == "segment 2 [0xf00000, 0x1100000) is outside the RAM [0, 0x1000000)");
    }
    SECTION("a huge segment that does not wrap") {
        ElfBuilder elf = typical_kernel();
        elf.load(0x200000, 0x10, u64{1} << 63);
        Build b(elf, kRam);
        refused(b, pvh::Status::SegmentOutsideRam);
    }
    SECTION("a segment that wraps the address space") {
        ElfBuilder elf = typical_kernel();
        elf.load(0x200000, 0x10, ~u64{0} - 0x1000);
        Build b(elf, kRam);
        CHECK(refused(b, pvh::Status::BadImage) ==
              "the kernel is not a loadable ELF image: a segment wraps the address space");
    }
    SECTION("overlapping segments") {
        ElfBuilder elf = typical_kernel();
        elf.load(0x104000, 0x10, 0x2000);  // into the BSS of segment 1
        Build b(elf, kRam);
        CHECK(refused(b, pvh::Status::SegmentsOverlap) == "segments 1 and 2 overlap at [0x104000, 0x105000)");
    }
    SECTION("a segment in a reserved region") {
        Build b(typical_kernel(), kRam);
        const pvh::Region region{0x104000, 0x1000, pvh::MemoryType::Reserved};
        b.request.regions = &region;
        b.request.region_count = 1;
        CHECK(refused(b, pvh::Status::SegmentInRegion) ==
              "segment 1 [0x102000, 0x105000) overlaps reserved region 0");
    }
    SECTION("an entry in the BSS, or outside every segment") {
        for (u32 entry : {0x102180u, 0x104fffu, 0x200000u, 0xfffu}) {
            ElfBuilder elf = typical_kernel();
            elf.segments.pop_back();
            elf.pvh_note(entry);
            Build b(elf, kRam);
            pvh::Result r = b.run(memory);
            CHECK(r.status == pvh::Status::EntryOutsideSegments);
            CHECK(r.values[0] == entry);
        }
        CHECK(memory.accesses().empty());
    }
}

TEST_CASE("pvh builder: bad requests are refused before anything is written") {
    FakeMemory memory(kRam);
    Build b(typical_kernel(), kRam);
    auto refused = [&](pvh::Status status) {
        pvh::Result r = b.run(memory);
        CHECK(r.status == status);
        CHECK(memory.accesses().empty());
        return describe(r);
    };
    std::vector<u8> ramdisk(0x1000, 1);
    pvh::Module module{ramdisk.data(), 0, "initrd"};
    b.request.modules = &module;
    b.request.module_count = 1;

    SECTION("RAM of no size or not in pages") {
        b.request.ram_bytes = 0;
        refused(pvh::Status::BadRamSize);
        b.request.ram_bytes = kRam + 1;
        CHECK(refused(pvh::Status::BadRamSize) == "the RAM size 0x1000001 is zero or not a multiple of 4 KiB");
    }
    SECTION("a module larger than the RAM left") {
        module.size = kRam - 0x105000 + 1;
        refused(pvh::Status::ModuleTooBig);
    }
    SECTION("a module size that overflows") {
        for (u64 size : {~u64{0}, ~u64{0} - 0xfff, u64{1} << 63}) {
            module.size = size;
            refused(pvh::Status::ModuleTooBig);
        }
    }
    SECTION("a command line longer than the boot page holds") {
        std::string line(pvh::kMaxCommandLine + 1, 'x');
        b.request.command_line = line.c_str();
        CHECK(refused(pvh::Status::CommandLineTooLong) == "the command line is longer than 2047 bytes");
    }
    SECTION("no free page for the boot information") {
        ElfBuilder elf;
        elf.load(0x1000, 0x10, 0xff000);  // [0x1000, 1 MiB): all of RAM but page 0
        elf.pvh_note(0x1000);
        Build small(elf, MiB);
        pvh::Result r = small.run(memory);
        CHECK(r.status == pvh::Status::NoRoomForBootInfo);
        CHECK(describe(r) == "no free 0x2000 bytes in RAM below 0x100000 for the boot information");
    }
    SECTION("one free page is not enough for the boot information") {
        ElfBuilder elf;
        elf.load(0x2000, 0x10, 0xfe000);  // [0x2000, 1 MiB): only page 0x1000 is free
        elf.pvh_note(0x2000);
        Build small(elf, MiB);
        CHECK(small.run(memory).status == pvh::Status::NoRoomForBootInfo);
    }
    SECTION("too many regions") {
        std::vector<pvh::Region> regions;
        for (u64 i = 0; i <= pvh::kMaxRegions; ++i)
            regions.push_back({0x2000000 + i * 0x1000, 0x1000, pvh::MemoryType::Reserved});
        b.request.regions = regions.data();
        b.request.region_count = regions.size();
        CHECK(refused(pvh::Status::TooManyRegions) == "33 reserved regions, more than the 32 the builder takes");
    }
    SECTION("an empty, wrapping or RAM-typed region") {
        for (pvh::Region region : {pvh::Region{0x2000000, 0, pvh::MemoryType::Reserved},
                                   pvh::Region{~u64{0} - 0xfff, 0x2000, pvh::MemoryType::Reserved},
                                   pvh::Region{0x2000000, 0x1000, pvh::MemoryType::Ram}}) {
            b.request.regions = &region;
            b.request.region_count = 1;
            refused(pvh::Status::BadRegion);
        }
    }
    SECTION("regions out of order or overlapping") {
        const pvh::Region unsorted[] = {{0x3000000, 0x1000, pvh::MemoryType::Reserved},
                                        {0x2000000, 0x1000, pvh::MemoryType::Reserved}};
        b.request.regions = unsorted;
        b.request.region_count = 2;
        CHECK(refused(pvh::Status::RegionsOutOfOrder) ==
              "reserved region 1 at 0x2000000 overlaps or precedes region 0");
        const pvh::Region overlapping[] = {{0x2000000, 0x2000, pvh::MemoryType::Reserved},
                                           {0x2001000, 0x1000, pvh::MemoryType::Reserved}};
        b.request.regions = overlapping;
        refused(pvh::Status::RegionsOutOfOrder);
    }
}

TEST_CASE("pvh builder: the longest command line fits the boot information") {
    Build b(typical_kernel(), kRam);
    std::string line(pvh::kMaxCommandLine, 'y');
    b.request.command_line = line.c_str();
    FakeMemory memory(kRam);
    REQUIRE(b.run(memory).ok());
    CHECK(memory.read_string(0x2000) == line);
    CHECK(memory.all(0x2000 + pvh::kMaxCommandLine, 0x3000 - 0x2000 - pvh::kMaxCommandLine, 0));
    CHECK(memory.all(0x3000, 0x1000, kUntouched));
}

TEST_CASE("pvh builder: several named modules, in order, each page-aligned") {
    Build b(typical_kernel(), kRam);
    std::vector<std::vector<u8>> files = {std::vector<u8>(0x1001, 0x11), std::vector<u8>(10, 0x22),
                                          std::vector<u8>(0x3000, 0x33), std::vector<u8>(1, 0x44)};
    const std::string longest(pvh::kMaxModuleName, 'n');
    std::vector<pvh::Module> modules = {{files[0].data(), files[0].size(), "initrd"},
                                        {files[1].data(), files[1].size(), "ticker.cfg"},
                                        {files[2].data(), files[2].size(), nullptr},
                                        {files[3].data(), files[3].size(), longest.c_str()},
                                        {nullptr, 0, ""}};
    b.request.modules = modules.data();
    b.request.module_count = modules.size();
    FakeMemory memory(kRam);
    REQUIRE(b.run(memory).ok());
    const pvh::Layout& l = b.layout;
    const u64 expected_at[] = {0x105000, 0x107000, 0x108000, 0x10b000, 0x10c000};
    auto start = memory.read_as<pvh::StartInfo>(0x1000);
    REQUIRE(start.module_count == 5);
    CHECK(l.module_count == 5);
    CHECK(start.module_list == 0x1040);
    for (u32 i = 0; i < 5; ++i) {
        CAPTURE(i);
        auto entry = memory.read_as<pvh::ModuleEntry>(0x1040 + 32 * i);
        CHECK(l.modules[i] == expected_at[i]);
        CHECK(entry.address == expected_at[i]);
        CHECK(entry.size == modules[i].size);
        if (i < files.size()) CHECK(memory.read(entry.address, entry.size) == files[i]);
    }
    // Names: each in its 64-byte slot; a module without one has command_line 0.
    CHECK(memory.read_as<pvh::ModuleEntry>(0x1040).command_line == 0x1c00);
    CHECK(memory.read_string(0x1c00) == "initrd");
    CHECK(memory.read_as<pvh::ModuleEntry>(0x1060).command_line == 0x1c40);
    CHECK(memory.read_string(0x1c40) == "ticker.cfg");
    CHECK(memory.read_as<pvh::ModuleEntry>(0x1080).command_line == 0);
    CHECK(memory.read_as<pvh::ModuleEntry>(0x10a0).command_line == 0x1cc0);
    CHECK(memory.read_string(0x1cc0) == longest);
    CHECK(memory.read_as<pvh::ModuleEntry>(0x10c0).command_line == 0);
    CHECK(memory.all(0x1c80, 0x40, 0));
    CHECK(memory.all(0x1d00, 0x300, 0));
    CHECK(l.highest_used == 0x10c000);  // the empty module is placed too
}

TEST_CASE("pvh builder: the most modules fit; one more, or a name too long, is refused") {
    Build b(typical_kernel(), kRam);
    FakeMemory memory(kRam);
    std::vector<u8> byte(1, 0x5a);
    std::vector<std::string> names;
    for (usize i = 0; i <= pvh::kMaxModules; ++i) names.push_back("module" + std::to_string(i));
    std::vector<pvh::Module> modules;
    for (const std::string& name : names) modules.push_back({byte.data(), byte.size(), name.c_str()});
    b.request.modules = modules.data();

    SECTION("kMaxModules, each with a name") {
        b.request.module_count = pvh::kMaxModules;
        REQUIRE(b.run(memory).ok());
        CHECK(b.layout.modules[pvh::kMaxModules - 1] == 0x105000 + 0x1000 * (pvh::kMaxModules - 1));
        CHECK(memory.read_string(0x1c00 + 64 * (pvh::kMaxModules - 1)) == "module15");
    }
    SECTION("one more") {
        b.request.module_count = pvh::kMaxModules + 1;
        pvh::Result r = b.run(memory);
        CHECK(r.status == pvh::Status::TooManyModules);
        CHECK(describe(r) == "17 modules, more than the 16 the builder takes");
        CHECK(memory.accesses().empty());
    }
    SECTION("a name of 64 bytes") {
        const std::string too_long(pvh::kMaxModuleName + 1, 'x');
        modules[3].name = too_long.c_str();
        b.request.module_count = 4;
        pvh::Result r = b.run(memory);
        CHECK(r.status == pvh::Status::ModuleNameTooLong);
        CHECK(describe(r) == "the name of module 3 is longer than 63 bytes");
        CHECK(memory.accesses().empty());
    }
}

TEST_CASE("pvh builder: modules that fit one by one but not together are refused") {
    constexpr u64 kSmallRam = 2 * MiB;
    Build b(typical_kernel(), kSmallRam);
    FakeMemory memory(kSmallRam);
    // Free above the kernel: [0x105000, 0x200000), 0xfb000 bytes.
    std::vector<u8> half(0x80000, 0x77);
    const pvh::Module modules[] = {{half.data(), half.size(), "a"}, {half.data(), half.size(), "b"}};
    b.request.modules = modules;
    b.request.module_count = 1;
    REQUIRE(b.run(memory).ok());
    b.request.module_count = 2;
    FakeMemory fresh(kSmallRam);
    pvh::Result r = b.run(fresh);
    CHECK(r.status == pvh::Status::ModuleTooBig);
    CHECK(describe(r) == "module 1 (0x80000 bytes) does not fit in free RAM between 0x185000 and 0x200000");
    CHECK(fresh.accesses().empty());
    CHECK(b.layout.module_count == 0);
}

TEST_CASE("pvh builder: a refused write is reported") {
    Build b(typical_kernel(), kRam);
    FakeMemory memory(kRam);
    memory.refuse_at(0x102200);  // in the BSS
    pvh::Result r = b.run(memory);
    CHECK(r.status == pvh::Status::WriteFailed);
    CHECK(describe(r) == "writing guest memory [0x102180, 0x105000) failed");
    // Nothing more was attempted after the refusal.
    CHECK(memory.accesses().size() == 2);
}
