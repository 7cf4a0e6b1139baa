#include <catch2/catch.hpp>

#include <arch/x86_64/paging/ept_format.h>
#include <arch/x86_64/paging/npt_format.h>
#include <hypervisor/stage2/stage2_space.h>

#include "fake_table_memory.h"

using lamina::GiB;
using lamina::KiB;
using lamina::MiB;
using lamina::u64;
using lamina::testing::FakeTableMemory;
using namespace lamina::stage2;

namespace {

constexpr u64 k4K = 4 * KiB;
constexpr u64 k2M = 2 * MiB;
constexpr u64 k1G = 1 * GiB;
constexpr u64 kGuestSpaceEnd = u64{1} << 48;

constexpr Stage2Access kReadWriteExecute{.read = true, .write = true, .execute = true};
constexpr Stage2Access kReadWrite{.read = true, .write = true};
constexpr Stage2Access kReadOnly{.read = true};
constexpr Stage2Access kReadExecute{.read = true, .execute = true};

const char* name_of(Stage2Format format) { return format == Stage2Format::Ept ? "EPT" : "NPT"; }

struct Space {
    explicit Space(Stage2Format format, Stage2Limits limits = {}) : space(format, memory, limits) {
        REQUIRE(space.init() == Status::Ok);
    }

    Stage2Mapping translated(u64 gpa) const {
        Stage2Mapping mapping{};
        REQUIRE(space.translate(gpa, &mapping));
        return mapping;
    }
    bool mapped(u64 gpa) const {
        Stage2Mapping mapping;
        return space.translate(gpa, &mapping);
    }

    FakeTableMemory memory;
    Stage2Space<FakeTableMemory> space;
};

}  // namespace

TEST_CASE("stage2: map and translate 4 KiB and 2 MiB pages", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    Space s(format);
    CHECK(s.space.format() == format);
    CHECK(s.space.root() != 0);

    REQUIRE(s.space.map(0x1000, 0x7654'3000, k4K, kReadWriteExecute).ok());
    REQUIRE(s.space.map(0x4000'0000, 0x8000'0000, k2M, kReadOnly, CacheType::Uncacheable).ok());

    const Stage2Mapping small = s.translated(0x1234);
    CHECK(small.hpa == 0x7654'3234);
    CHECK(small.page_size == PageSize::Size4K);
    CHECK(small.access == kReadWriteExecute);
    CHECK(small.cache == CacheType::WriteBack);

    const Stage2Mapping large = s.translated(0x4000'0000 + k2M - 8);
    CHECK(large.hpa == 0x8000'0000 + k2M - 8);
    CHECK(large.page_size == PageSize::Size2M);
    CHECK(large.access == kReadOnly);
    CHECK(large.cache == CacheType::Uncacheable);

    CHECK_FALSE(s.mapped(0));
    CHECK_FALSE(s.mapped(0x2000));
    CHECK_FALSE(s.mapped(0x4000'0000 + k2M));
}

TEST_CASE("stage2: 1 GiB pages only where the CPU has them", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    Space without(format);
    REQUIRE(without.space.map(k1G, 4 * k1G, k1G, kReadWrite).ok());
    CHECK(without.translated(k1G + 5 * k4K).page_size == PageSize::Size2M);

    Space with(format, {.pages_1g = true});
    REQUIRE(with.space.map(k1G, 4 * k1G, k1G, kReadWrite).ok());
    const Stage2Mapping mapping = with.translated(k1G + 5 * k4K);
    CHECK(mapping.page_size == PageSize::Size1G);
    CHECK(mapping.hpa == 4 * k1G + 5 * k4K);
}

TEST_CASE("stage2: guest-physical addresses are not sign-extended", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    Space s(format);
    const u64 above_2_47 = (u64{1} << 47) + 0x1000;
    const u64 last_page = kGuestSpaceEnd - k4K;

    REQUIRE(s.space.map(above_2_47, 0x5000, k4K, kReadWrite).ok());
    REQUIRE(s.space.map(last_page, 0x6000, k4K, kReadWrite).ok());
    CHECK(s.translated(above_2_47 + 8).hpa == 0x5008);
    CHECK(s.translated(last_page).hpa == 0x6000);
    // The sign-extended alias of a 2^47+ address is not a guest-physical address.
    CHECK_FALSE(s.mapped(above_2_47 | 0xffff'0000'0000'0000));

    CHECK(s.space.map(kGuestSpaceEnd, 0x7000, k4K, kReadWrite).status ==
          Status::OutsideAddressSpace);
    CHECK(s.space.map(last_page, 0x7000, 2 * k4K, kReadWrite).status ==
          Status::OutsideAddressSpace);
    CHECK(s.space.unmap(kGuestSpaceEnd, k4K).status == Status::OutsideAddressSpace);
}

TEST_CASE("stage2: every NPT entry allows user access", "[stage2]") {
    Space s(Stage2Format::Npt, {.pages_1g = true});
    REQUIRE(s.space.map(0, 0x20'0000'0000, k4K, kReadOnly).ok());
    REQUIRE(s.space.map(k2M, 0x30'0000'0000, k2M, kReadWrite).ok());
    REQUIRE(s.space.map(k1G, 0x40'0000'0000, k1G, kReadExecute).ok());
    REQUIRE(s.space.map((u64{1} << 47) + k2M, 0x1000, k4K, kReadWriteExecute).ok());
    REQUIRE(s.space.protect(0, k4K, kReadWrite).ok());

    int present = 0;
    s.memory.for_each_entry([&](u64 entry) {
        if (!(entry & lamina::paging::X86Format::kPresent)) return;
        ++present;
        INFO("entry " << std::hex << entry);
        CHECK((entry & lamina::paging::X86Format::kUser) != 0);
        CHECK((entry & lamina::paging::X86Format::kGlobal) == 0);
    });
    // Six links (root 2, first PDPT and PD 1 each, the upper PDPT and PD 1 each), four leaves.
    CHECK(present == 10);

    // Writable only where asked, executable only where asked (NX is the leaf's).
    CHECK(s.translated(k1G).access == kReadExecute);
    CHECK(s.translated(k2M).access == kReadWrite);
}

TEST_CASE("stage2: EPT entries carry the access and memory type", "[stage2]") {
    Space s(Stage2Format::Ept);
    REQUIRE(s.space.map(0, 0x9000, k4K, kReadOnly, CacheType::WriteCombining).ok());
    u64 leaf = 0;
    s.memory.for_each_entry([&](u64 entry) {
        if ((entry & lamina::paging::EptFormat::kAddressMask) == 0x9000) leaf = entry;
    });
    using lamina::paging::EptFormat;
    CHECK((leaf & (EptFormat::kRead | EptFormat::kWrite | EptFormat::kExecute)) ==
          EptFormat::kRead);
    CHECK((leaf & EptFormat::kMemoryTypeMask) >> EptFormat::kMemoryTypeShift == 1);  // WC
}

TEST_CASE("stage2: protect keeps frames and memory types", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    Space s(format);
    REQUIRE(s.space.map(0, 0x10'0000, 4 * k4K, kReadWriteExecute).ok());
    REQUIRE(s.space.map(4 * k4K, 0xfee0'0000, k4K, kReadWrite, CacheType::Uncacheable).ok());
    REQUIRE(s.space.map(5 * k4K, 0x20'0000, k4K, kReadWrite, CacheType::WriteThrough).ok());

    SECTION("write-protect, then translate") {
        const u64 before = s.space.generation();
        const Result result = s.space.protect(k4K, k4K, kReadExecute);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        CHECK(s.space.generation() == before + 1);
        const Stage2Mapping mapping = s.translated(k4K + 0x10);
        CHECK(mapping.access == kReadExecute);
        CHECK(mapping.hpa == 0x10'1010);
        CHECK(s.translated(0).access == kReadWriteExecute);
        CHECK(s.translated(2 * k4K).access == kReadWriteExecute);
    }
    SECTION("a range of three memory types") {
        REQUIRE(s.space.protect(3 * k4K, 3 * k4K, kReadOnly).ok());
        const Stage2Mapping wb = s.translated(3 * k4K);
        const Stage2Mapping uc = s.translated(4 * k4K);
        const Stage2Mapping wt = s.translated(5 * k4K);
        CHECK(wb.access == kReadOnly);
        CHECK(uc.access == kReadOnly);
        CHECK(wt.access == kReadOnly);
        CHECK(wb.cache == CacheType::WriteBack);
        CHECK(uc.cache == CacheType::Uncacheable);
        CHECK(wt.cache == CacheType::WriteThrough);
        CHECK(uc.hpa == 0xfee0'0000);
        CHECK(s.translated(2 * k4K).access == kReadWriteExecute);
    }
    SECTION("a hole fails and changes nothing") {
        const u64 before = s.space.generation();
        const Result result = s.space.protect(0, 7 * k4K, kReadOnly);
        CHECK(result.status == Status::NotMapped);
        CHECK_FALSE(result.needs_flush);
        CHECK(s.space.generation() == before);
        for (u64 page = 0; page < 6; ++page) CHECK(s.translated(page * k4K).access.write);
    }
    SECTION("part of a 2 MiB page") {
        REQUIRE(s.space.map(k1G, 0x4000'0000, k2M, kReadWrite).ok());
        REQUIRE(s.space.protect(k1G + k4K, k4K, kReadOnly).ok());
        CHECK(s.translated(k1G + k4K).access == kReadOnly);
        CHECK(s.translated(k1G + k4K).page_size == PageSize::Size4K);
        CHECK(s.translated(k1G).access == kReadWrite);
        CHECK(s.translated(k1G + k2M - k4K).hpa == 0x4000'0000 + k2M - k4K);
    }
    SECTION("out of memory while splitting changes nothing") {
        REQUIRE(s.space.map(k1G, 0x4000'0000, k2M, kReadWrite).ok());
        s.memory.set_budget(s.memory.live());
        CHECK(s.space.protect(k1G + k4K, k4K, kReadOnly).status == Status::OutOfMemory);
        CHECK(s.translated(k1G + k4K).access == kReadWrite);
        CHECK(s.translated(k1G + k4K).page_size == PageSize::Size2M);
    }
}

TEST_CASE("stage2: unmapped tables are retired until reclaimed", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    FakeTableMemory memory;
    {
        Stage2Space<FakeTableMemory> space(format, memory);
        CHECK(space.root() == 0);
        REQUIRE(space.init() == Status::Ok);
        CHECK(memory.live() == 1);

        REQUIRE(space.map(0x80'0000'0000, 0x1000, 3 * k4K, kReadWrite).ok());
        REQUIRE(space.map(0x1000, 0x1000, k4K, kReadWrite).ok());
        CHECK(memory.live() == 7);  // root, 2 x (PDPT, PD, PT)

        const Result result = space.unmap(0x80'0000'0000, 3 * k4K);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        Stage2Mapping mapping;
        CHECK_FALSE(space.translate(0x80'0000'0000, &mapping));
        CHECK(space.translate(0x1000, &mapping));

        // A vCPU may still walk the old tables until it has flushed at the new generation.
        CHECK(memory.live() == 7);
        space.reclaim(space.generation() - 1);
        CHECK(memory.live() == 7);
        space.reclaim(space.generation());
        CHECK(memory.live() == 4);

        REQUIRE(space.unmap(0, 4 * GiB).ok());
        space.reclaim(space.generation());
        CHECK(memory.live() == 1);

        REQUIRE(space.map(0x1000, 0x1000, k4K, kReadWrite).ok());
        REQUIRE(space.unmap(0x1000, k4K).ok());
        CHECK(memory.live() == 4);
        space.destroy();
        CHECK(memory.live() == 0);
        CHECK(space.root() == 0);
        CHECK(space.map(0, 0, k4K, kReadWrite).status == Status::NotInitialized);

        const u64 before = space.generation();
        REQUIRE(space.init() == Status::Ok);
        CHECK(before > 1);  // destroy moved it: the new root is flushed before use
        REQUIRE(space.map(0, 0, k4K, kReadWrite).ok());
        CHECK(memory.live() == 4);
    }
    CHECK(memory.live() == 0);  // the destructor frees what is left
}

TEST_CASE("stage2: the generation moves only for changes that need a flush", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));
    Space s(format);
    const u64 start = s.space.generation();
    CHECK(start == 1);

    // Mapping into holes: the hardware caches no not-present entries.
    REQUIRE(s.space.map(0, 0x10'0000, k4K, kReadWrite).ok());
    REQUIRE(s.space.map(k4K, 0x20'0000, k4K, kReadWrite).ok());
    REQUIRE(s.space.map(k1G, 0x4000'0000, k2M, kReadWrite).ok());
    CHECK(s.space.generation() == start);

    // Refusals and no-ops change nothing.
    CHECK(s.space.map(0, 0x30'0000, k4K, kReadWrite).status == Status::AlreadyMapped);
    CHECK_FALSE(s.space.protect(0, k4K, kReadWrite).needs_flush);
    CHECK_FALSE(s.space.unmap(8 * k4K, k4K).needs_flush);
    CHECK(s.space.protect(0, k4K, Stage2Access{}).status == Status::UnsupportedAttributes);
    CHECK(s.space.generation() == start);

    REQUIRE(s.space.protect(0, k4K, kReadOnly).ok());
    CHECK(s.space.generation() == start + 1);
    REQUIRE(s.space.unmap(k4K, k4K).ok());
    CHECK(s.space.generation() == start + 2);
    // Splitting a large page replaces an entry the hardware may cache.
    REQUIRE(s.space.unmap(k1G, k4K).ok());
    CHECK(s.space.generation() == start + 3);

    SECTION("a map that runs out of memory undoes linked tables, which needs a flush") {
        s.memory.set_budget(s.memory.live() + 2);  // a PDPT and a PD, no PT
        const Result result = s.space.map(0x80'0000'0000, 0x1000, k4K, kReadWrite);
        CHECK(result.status == Status::OutOfMemory);
        CHECK(s.space.generation() == start + 4);
        s.memory.set_budget(~lamina::usize{0});
        s.space.reclaim(s.space.generation());
        s.space.unmap(0, kGuestSpaceEnd);
        s.space.reclaim(s.space.generation());
        CHECK(s.memory.live() == 1);
    }
}

TEST_CASE("stage2: access rights each format can express", "[stage2]") {
    constexpr Stage2Access kWriteOnly{.write = true};
    constexpr Stage2Access kWriteExecute{.write = true, .execute = true};
    constexpr Stage2Access kExecuteOnly{.execute = true};

    SECTION("EPT") {
        Space s(Stage2Format::Ept);
        // Write without read is an EPT misconfiguration (SDM Vol. 3C 29.3.3.1).
        CHECK(s.space.map(0, 0, k4K, kWriteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, kWriteExecute).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, Stage2Access{}).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, kExecuteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, kReadWrite, CacheType::UncacheableMinus).status ==
              Status::UnsupportedAttributes);
        CHECK(s.memory.live() == 1);
        REQUIRE(s.space.map(0, 0, k4K, kReadWrite).ok());
        CHECK(s.space.protect(0, k4K, kWriteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.space.protect(0, k4K, kExecuteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.translated(0).access == kReadWrite);

        Space execute_only(Stage2Format::Ept, {.execute_only = true});
        REQUIRE(execute_only.space.map(0, 0, k4K, kExecuteOnly).ok());
        CHECK(execute_only.translated(0).access == kExecuteOnly);
    }
    SECTION("NPT") {
        // Present means readable; execute-only does not exist even where EPT has it.
        Space s(Stage2Format::Npt, {.execute_only = true});
        CHECK(s.space.map(0, 0, k4K, kWriteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, kExecuteOnly).status == Status::UnsupportedAttributes);
        CHECK(s.space.map(0, 0, k4K, Stage2Access{}).status == Status::UnsupportedAttributes);
        REQUIRE(s.space.map(0, 0, k4K, kReadWrite, CacheType::UncacheableMinus).ok());
        CHECK(s.translated(0).cache == CacheType::UncacheableMinus);
    }
}

TEST_CASE("stage2: bad arguments are refused with a status", "[stage2]") {
    const Stage2Format format = GENERATE(Stage2Format::Ept, Stage2Format::Npt);
    INFO(name_of(format));

    SECTION("before init") {
        FakeTableMemory memory;
        Stage2Space<FakeTableMemory> space(format, memory);
        CHECK(space.map(0, 0, k4K, kReadWrite).status == Status::NotInitialized);
        CHECK(space.unmap(0, k4K).status == Status::NotInitialized);
        CHECK(space.protect(0, k4K, kReadWrite).status == Status::NotInitialized);
        Stage2Mapping mapping;
        CHECK_FALSE(space.translate(0, &mapping));
        memory.set_budget(0);
        CHECK(space.init() == Status::OutOfMemory);
        CHECK(space.root() == 0);
    }
    SECTION("after init") {
        Space s(format, {.physical_address_bits = 40});
        auto& space = s.space;
        CHECK(space.map(0x800, 0, k4K, kReadWrite).status == Status::Misaligned);
        CHECK(space.map(0, 0x800, k4K, kReadWrite).status == Status::Misaligned);
        CHECK(space.map(0, 0, 0x800, kReadWrite).status == Status::Misaligned);
        CHECK(space.map(0, 0, 0, kReadWrite).status == Status::BadSize);
        CHECK(space.map(~u64{0} - k4K + 1, 0, 2 * k4K, kReadWrite).status ==
              Status::OutsideAddressSpace);
        // Host addresses stop at MAXPHYADDR.
        const u64 host_end = u64{1} << 40;
        CHECK(space.map(0, host_end, k4K, kReadWrite).status == Status::PhysicalOutOfRange);
        CHECK(space.map(0, host_end - k4K, 2 * k4K, kReadWrite).status ==
              Status::PhysicalOutOfRange);
        CHECK(space.map(0, ~u64{0} - k4K + 1, k4K, kReadWrite).status ==
              Status::PhysicalOutOfRange);
        CHECK(space.map(0, host_end - k4K, k4K, kReadWrite).ok());

        CHECK(space.unmap(0x800, k4K).status == Status::Misaligned);
        CHECK(space.unmap(0, 0).status == Status::BadSize);
        CHECK(space.protect(0x800, k4K, kReadOnly).status == Status::Misaligned);
        CHECK(space.protect(0, 0, kReadOnly).status == Status::BadSize);
        CHECK(space.protect(0, 0x1800, kReadOnly).status == Status::Misaligned);
        CHECK(space.protect(kGuestSpaceEnd, k4K, kReadOnly).status ==
              Status::OutsideAddressSpace);
        CHECK(space.protect(~u64{0} - k4K + 1, 2 * k4K, kReadOnly).status ==
              Status::OutsideAddressSpace);
        CHECK(space.generation() == 1);
        CHECK(s.memory.live() == 4);
        CHECK(s.translated(0).access == kReadWrite);
    }
}
