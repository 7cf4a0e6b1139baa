#include <catch2/catch.hpp>

#include <arch/x86_64/paging/ept_format.h>
#include <arch/x86_64/paging/page_table.h>
#include <arch/x86_64/paging/x86_format.h>

#include "fake_table_memory.h"
#include "test_support.h"

#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <type_traits>
#include <vector>

using lamina::GiB;
using lamina::KiB;
using lamina::MiB;
using lamina::u64;
using lamina::usize;
using namespace lamina::paging;

namespace {

constexpr u64 k4K = 4 * KiB;
constexpr u64 k2M = 2 * MiB;
constexpr u64 k1G = 1 * GiB;

using FakeMemory = lamina::testing::FakeTableMemory;

template <typename Format>
struct Fixture {
    Fixture() { REQUIRE(table.init() == Status::Ok); }
    ~Fixture() { table.destroy(); }

    std::vector<Leaf> leaves() const {
        std::vector<Leaf> all;
        table.for_each_leaf([&](const Leaf& leaf) {
            all.push_back(leaf);
            return true;
        });
        return all;
    }
    Translation translated(u64 virt) const {
        Translation translation{};
        REQUIRE(table.translate(virt, &translation));
        return translation;
    }
    bool mapped(u64 virt) const {
        Translation translation;
        return table.translate(virt, &translation);
    }

    FakeMemory memory;
    PageTable<Format, FakeMemory> table{memory};
};

Attributes read_write() {
    Attributes attributes;
    attributes.write = true;
    return attributes;
}

Attributes read_execute() {
    Attributes attributes;
    attributes.execute = true;
    return attributes;
}

std::vector<CacheType> cache_types_of(bool ept) {
    std::vector<CacheType> types = {CacheType::WriteBack, CacheType::WriteThrough,
                                    CacheType::Uncacheable, CacheType::WriteCombining};
    if (!ept) types.push_back(CacheType::UncacheableMinus);
    return types;
}

constexpr MapOptions kWith1G{true, false};
constexpr MapOptions kReplace{false, true};

}  // namespace

TEMPLATE_TEST_CASE("page table: map and translate each page size", "[page_table]", X86Format,
                   EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_write();

    Result result = f.table.map(0x1000, 0x5000, k4K, attributes);
    REQUIRE(result.ok());
    CHECK_FALSE(result.needs_flush);  // nothing was mapped before
    Translation page = f.translated(0x1234);
    CHECK(page.phys == 0x5234);
    CHECK(page.page_size == PageSize::Size4K);
    CHECK(page.attributes == attributes);
    CHECK_FALSE(f.mapped(0x0));
    CHECK_FALSE(f.mapped(0x2000));

    REQUIRE(f.table.map(0x4000'0000, 0x8020'0000, k2M, attributes).ok());
    page = f.translated(0x4000'0000 + 0x1f'fff8);
    CHECK(page.phys == 0x8020'0000 + 0x1f'fff8);
    CHECK(page.page_size == PageSize::Size2M);

    REQUIRE(f.table.map(512 * k1G, 5 * k1G, k1G, attributes, kWith1G).ok());
    page = f.translated(512 * k1G + 0x1234'5678);
    CHECK(page.phys == 5 * k1G + 0x1234'5678);
    CHECK(page.page_size == PageSize::Size1G);

    // Without permission for 1 GiB pages, the same request takes 512 pages of 2 MiB.
    REQUIRE(f.table.map(1024 * k1G, 5 * k1G, k1G, attributes).ok());
    CHECK(f.translated(1024 * k1G + k1G - 1).page_size == PageSize::Size2M);
    CHECK(f.leaves().size() == 1 + 1 + 1 + 512);
    // root; PDPT+PD+PT for the 4 KiB page; PD for 2 MiB (same PDPT); PDPT for the 1 GiB page;
    // PDPT+PD for the 2 MiB pages.
    CHECK(f.memory.live() == 1 + 3 + 1 + 1 + 2);
}

TEST_CASE("page table: the largest page that alignment and size allow", "[page_table]") {
    Fixture<X86Format> f;
    const Attributes attributes = read_write();

    SECTION("mixed sizes in one range") {
        const u64 virt = k2M - 2 * k4K;
        const u64 size = 2 * k4K + k2M + 3 * k4K;
        REQUIRE(f.table.map(virt, virt + k1G, size, attributes).ok());
        const std::vector<Leaf> leaves = f.leaves();
        REQUIRE(leaves.size() == 6);
        const PageSize expected[] = {PageSize::Size4K, PageSize::Size4K, PageSize::Size2M,
                                     PageSize::Size4K, PageSize::Size4K, PageSize::Size4K};
        u64 next = virt;
        for (usize i = 0; i < leaves.size(); ++i) {
            CHECK(leaves[i].page_size == expected[i]);
            CHECK(leaves[i].virt == next);
            CHECK(leaves[i].phys == next + k1G);
            next += page_bytes(leaves[i].page_size);
        }
    }
    SECTION("physical alignment matters too") {
        REQUIRE(f.table.map(k2M, k2M + k4K, 2 * k2M, attributes).ok());
        CHECK(f.leaves().size() == 2 * 512);
    }
    SECTION("1 GiB and 2 MiB together") {
        REQUIRE(f.table.map(k1G, 3 * k1G, k1G + k2M, attributes, kWith1G).ok());
        const std::vector<Leaf> leaves = f.leaves();
        REQUIRE(leaves.size() == 2);
        CHECK(leaves[0].page_size == PageSize::Size1G);
        CHECK(leaves[1].page_size == PageSize::Size2M);
        CHECK(leaves[1].phys == 4 * k1G);
    }
}

TEMPLATE_TEST_CASE("page table: partial unmap splits large pages", "[page_table]", X86Format,
                   EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_execute();

    SECTION("2 MiB") {
        REQUIRE(f.table.map(k2M, 0x4000'0000, k2M, attributes).ok());
        const Result result = f.table.unmap(k2M + 5 * k4K, k4K);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        CHECK_FALSE(f.mapped(k2M + 5 * k4K));
        const Translation before = f.translated(k2M + 4 * k4K + 8);
        CHECK(before.phys == 0x4000'0000 + 4 * k4K + 8);
        CHECK(before.page_size == PageSize::Size4K);
        CHECK(before.attributes == attributes);
        CHECK(f.translated(k2M + 6 * k4K).phys == 0x4000'0000 + 6 * k4K);
        CHECK(f.leaves().size() == 511);
    }
    SECTION("1 GiB, down to 4 KiB") {
        REQUIRE(f.table.map(k1G, 7 * k1G, k1G, attributes, kWith1G).ok());
        REQUIRE(f.table.unmap(k1G + 300 * k4K, 2 * k4K).ok());
        CHECK_FALSE(f.mapped(k1G + 301 * k4K));
        CHECK(f.translated(k1G + 299 * k4K).page_size == PageSize::Size4K);
        const Translation far = f.translated(k1G + 900 * MiB);
        CHECK(far.page_size == PageSize::Size2M);
        CHECK(far.phys == 7 * k1G + 900 * MiB);
        CHECK(f.leaves().size() == 511 + 510);
    }
    SECTION("a range that cuts two large pages") {
        REQUIRE(f.table.map(0, 0, 2 * k2M, attributes).ok());
        REQUIRE(f.table.unmap(k2M - k4K, 2 * k4K).ok());
        CHECK(f.leaves().size() == 2 * 511);
        CHECK(f.translated(k2M - 2 * k4K).phys == k2M - 2 * k4K);
        CHECK(f.translated(k2M + k4K).phys == k2M + k4K);
    }
}

TEMPLATE_TEST_CASE("page table: protect", "[page_table]", X86Format, EptFormat) {
    Fixture<TestType> f;
    const Attributes writable = read_write();
    Attributes read_only;
    REQUIRE(f.table.map(4 * k2M, 0x1'0000'0000, k2M, writable).ok());

    SECTION("part of a large page") {
        const Result result = f.table.protect(4 * k2M + 10 * k4K, 3 * k4K, read_only);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        CHECK(f.translated(4 * k2M + 9 * k4K).attributes == writable);
        CHECK(f.translated(4 * k2M + 10 * k4K).attributes == read_only);
        CHECK(f.translated(4 * k2M + 12 * k4K).attributes == read_only);
        CHECK(f.translated(4 * k2M + 12 * k4K).phys == 0x1'0000'0000 + 12 * k4K);
        CHECK(f.translated(4 * k2M + 13 * k4K).attributes == writable);
        // Asking again changes nothing, so nothing needs flushing.
        const Result again = f.table.protect(4 * k2M + 10 * k4K, 3 * k4K, read_only);
        REQUIRE(again.ok());
        CHECK_FALSE(again.needs_flush);
    }
    SECTION("a whole large page stays one page") {
        REQUIRE(f.table.protect(4 * k2M, k2M, read_only).ok());
        CHECK(f.translated(4 * k2M).page_size == PageSize::Size2M);
        CHECK(f.translated(4 * k2M).attributes == read_only);
    }
    SECTION("a hole fails and changes nothing") {
        const usize tables = f.memory.live();
        const Result result = f.table.protect(4 * k2M + k2M - k4K, 2 * k4K, read_only);
        CHECK(result.status == Status::NotMapped);
        CHECK_FALSE(result.needs_flush);
        CHECK(f.translated(4 * k2M + k2M - k4K).attributes == writable);
        CHECK(f.translated(4 * k2M).page_size == PageSize::Size2M);
        CHECK(f.memory.live() == tables);
        CHECK(f.table.protect(0, k4K, read_only).status == Status::NotMapped);
    }
}

TEMPLATE_TEST_CASE("page table: tables are freed", "[page_table]", X86Format, EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_write();
    const u64 regions[] = {0x1000, 0x7f'ffe0'0000, 0x40'0000'0000, 3 * k1G + 5 * k4K};
    for (u64 virt : regions) REQUIRE(f.table.map(virt, 0x20'0000, 3 * k4K, attributes).ok());
    CHECK(f.memory.live() > 4);

    // Holes unmap to nothing.
    const Result hole = f.table.unmap(0x100'0000'0000, k2M);
    REQUIRE(hole.ok());
    CHECK_FALSE(hole.needs_flush);

    // Partial unmaps keep the tables still in use.
    for (u64 virt : regions) REQUIRE(f.table.unmap(virt, k4K).ok());
    for (u64 virt : regions) CHECK(f.mapped(virt + k4K));
    for (u64 virt : regions) REQUIRE(f.table.unmap(virt + k4K, 2 * k4K).ok());
    CHECK(f.leaves().empty());
    CHECK(f.memory.live() == 1);  // the root alone

    // Unmapping a range that covers whole tables frees them without visiting each page.
    REQUIRE(f.table.map(0, 0, 8 * MiB, attributes).ok());
    REQUIRE(f.table.map(k1G, k4K, 8 * MiB, attributes).ok());
    REQUIRE(f.table.unmap(0, 2 * k1G).ok());
    CHECK(f.memory.live() == 1);

    // destroy() frees everything, mappings or not.
    REQUIRE(f.table.map(0x1000, 0x1000, 64 * MiB, attributes).ok());
    f.table.destroy();
    CHECK(f.memory.live() == 0);
    CHECK(f.table.root() == 0);
    CHECK(f.table.map(0x1000, 0x1000, k4K, attributes).status == Status::NotInitialized);
}

TEST_CASE("page table: bad arguments are refused", "[page_table]") {
    const Attributes attributes = read_write();

    SECTION("x86") {
        Fixture<X86Format> f;
        auto map = [&](u64 virt, u64 phys, u64 size) {
            return f.table.map(virt, phys, size, attributes).status;
        };
        CHECK(map(0x1000, 0x1000, 0) == Status::BadSize);
        CHECK(map(0x1001, 0x1000, k4K) == Status::Misaligned);
        CHECK(map(0x1000, 0x1010, k4K) == Status::Misaligned);
        CHECK(map(0x1000, 0x1000, 0x1800) == Status::Misaligned);
        CHECK(map(0x0000'8000'0000'0000, 0x1000, k4K) == Status::OutsideAddressSpace);
        CHECK(map(0xffff'7fff'ffff'f000, 0x1000, k4K) == Status::OutsideAddressSpace);
        CHECK(map(0x0000'7fff'ffff'f000, 0x1000, 2 * k4K) == Status::OutsideAddressSpace);
        // Both ends canonical, but the range spans the hole.
        CHECK(map(0x0000'7fff'ffff'f000, 0x1000, 0xffff'0000'0000'2000) ==
              Status::OutsideAddressSpace);
        CHECK(map(0xffff'ffff'ffff'f000, 0x1000, 2 * k4K) == Status::OutsideAddressSpace);
        const u64 top_phys = u64{1} << 52;
        CHECK(map(0x1000, top_phys, k4K) == Status::PhysicalOutOfRange);
        CHECK(map(0x1000, top_phys - k4K, 2 * k4K) == Status::PhysicalOutOfRange);
        CHECK(map(0x1000, ~u64{0} & ~(k4K - 1), k4K) == Status::PhysicalOutOfRange);
        Attributes unreadable = attributes;
        unreadable.read = false;
        CHECK(f.table.map(0x1000, 0x1000, k4K, unreadable).status ==
              Status::UnsupportedAttributes);
        CHECK(f.table.unmap(0x1000, 0).status == Status::BadSize);
        CHECK(f.table.unmap(0x0000'8000'0000'0000, k4K).status == Status::OutsideAddressSpace);
        CHECK(f.table.protect(0x1000, 0x1800, attributes).status == Status::Misaligned);
        CHECK(f.table.protect(0x1000, k4K, unreadable).status == Status::UnsupportedAttributes);
        CHECK(f.memory.live() == 1);
        CHECK(f.leaves().empty());

        // The very edges are fine: the top page of both halves, the last physical page.
        REQUIRE(map(0xffff'ffff'ffff'f000, top_phys - k4K, k4K) == Status::Ok);
        REQUIRE(map(0x0000'7fff'ffff'f000, 0x2000, k4K) == Status::Ok);
        REQUIRE(map(0xffff'8000'0000'0000, 0x3000, k4K) == Status::Ok);
        CHECK(f.translated(0xffff'ffff'ffff'ffff).phys == top_phys - 1);
        const std::vector<Leaf> leaves = f.leaves();
        REQUIRE(leaves.size() == 3);
        CHECK(leaves[0].virt == 0x0000'7fff'ffff'f000);
        CHECK(leaves[1].virt == 0xffff'8000'0000'0000);  // canonical, not a walk address
        CHECK(leaves[2].virt == 0xffff'ffff'ffff'f000);
        // Non-canonical twins of mapped pages translate to nothing.
        Translation translation;
        CHECK_FALSE(f.table.translate(0x0000'8000'0000'0000, &translation));
        CHECK_FALSE(f.table.translate(0x1234'ffff'ffff'f000, &translation));
    }
    SECTION("EPT") {
        Fixture<EptFormat> f;
        auto map_with = [&](u64 virt, const Attributes& with) {
            return f.table.map(virt, 0x1000, k4K, with).status;
        };
        CHECK(map_with(u64{1} << 48, attributes) == Status::OutsideAddressSpace);
        CHECK(map_with(0xffff'8000'0000'0000, attributes) == Status::OutsideAddressSpace);
        CHECK(f.table.map((u64{1} << 48) - k4K, 0, 2 * k4K, attributes).status ==
              Status::OutsideAddressSpace);
        Attributes write_only;
        write_only.read = false;
        write_only.write = true;
        Attributes write_execute = write_only;
        write_execute.execute = true;
        Attributes nothing;
        nothing.read = false;
        Attributes user = attributes;
        user.user = true;
        Attributes global = attributes;
        global.global = true;
        Attributes uc_minus = attributes;
        uc_minus.cache = CacheType::UncacheableMinus;
        for (const Attributes& bad : {write_only, write_execute, nothing, user, global, uc_minus}) {
            CHECK(map_with(0x1000, bad) == Status::UnsupportedAttributes);
        }
        CHECK(f.memory.live() == 1);

        Attributes execute_only;
        execute_only.read = false;
        execute_only.execute = true;
        REQUIRE(map_with(0x1000, execute_only) == Status::Ok);
        CHECK(f.translated(0x1000).attributes == execute_only);
        REQUIRE(map_with((u64{1} << 48) - k4K, attributes) == Status::Ok);
        Translation translation;
        CHECK_FALSE(f.table.translate((u64{1} << 48) + 0x1000, &translation));
    }
    SECTION("before init") {
        FakeMemory memory;
        PageTable<X86Format, FakeMemory> table(memory);
        CHECK(table.map(0x1000, 0x1000, k4K, attributes).status == Status::NotInitialized);
        CHECK(table.unmap(0x1000, k4K).status == Status::NotInitialized);
        CHECK(table.protect(0x1000, k4K, attributes).status == Status::NotInitialized);
        Translation translation;
        CHECK_FALSE(table.translate(0x1000, &translation));
        CHECK_FALSE(table.find_writable_executable());
        memory.set_budget(0);
        CHECK(table.init() == Status::OutOfMemory);
    }
}

TEMPLATE_TEST_CASE("page table: mapping over mappings", "[page_table]", X86Format, EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_write();
    REQUIRE(f.table.map(0x10'0000, 0xa000, k4K, attributes).ok());
    REQUIRE(f.table.map(0x40'0000, 0x80'0000, k2M, attributes).ok());
    const usize tables = f.memory.live();

    SECTION("refused without replace, nothing changes") {
        CHECK(f.table.map(0x10'0000 - k4K, 0, 2 * k4K, attributes).status ==
              Status::AlreadyMapped);
        CHECK_FALSE(f.mapped(0x10'0000 - k4K));
        CHECK(f.table.map(0x40'0000 + 7 * k4K, 0, k4K, attributes).status ==
              Status::AlreadyMapped);
        CHECK(f.table.map(0, 0, k1G, attributes).status == Status::AlreadyMapped);
        CHECK(f.memory.live() == tables);
        CHECK(f.leaves().size() == 2);
    }
    SECTION("replace inside a large page keeps the rest") {
        const Result result = f.table.map(0x40'0000 + k4K, 0xb000, k4K, attributes, kReplace);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        CHECK(f.translated(0x40'0000).phys == 0x80'0000);
        CHECK(f.translated(0x40'0000 + k4K).phys == 0xb000);
        CHECK(f.translated(0x40'0000 + 2 * k4K).phys == 0x80'0000 + 2 * k4K);
        CHECK(f.leaves().size() == 1 + 512);
    }
    SECTION("replace small pages by a large one frees their table") {
        const Result result = f.table.map(0, 0x40'0000, k2M, attributes, kReplace);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);
        CHECK(f.translated(0x10'0000).page_size == PageSize::Size2M);
        CHECK(f.translated(0x10'0000).phys == 0x50'0000);
        CHECK(f.memory.live() == tables - 1);
    }
    SECTION("replace over a hole and a mapping at once") {
        const Result result = f.table.map(0x10'0000 - k4K, 0x5000, 2 * k4K, attributes, kReplace);
        REQUIRE(result.ok());
        CHECK(result.needs_flush);  // the page that was mapped before
        CHECK(f.translated(0x10'0000 - k4K).phys == 0x5000);
        CHECK(f.translated(0x10'0000).phys == 0x6000);
        // Replacing only what was never mapped needs no flush.
        const Result fresh = f.table.map(0x20'0000, 0x5000, k4K, attributes, kReplace);
        REQUIRE(fresh.ok());
        CHECK_FALSE(fresh.needs_flush);
    }
}

TEST_CASE("page table: x86 attributes round-trip", "[page_table]") {
    Fixture<X86Format> f;
    for (int level = 0; level <= kLargestLeafLevel; ++level) {
        const u64 size = level_span(level);
        for (CacheType cache : cache_types_of(false)) {
            for (int flags = 0; flags < 16; ++flags) {
                Attributes attributes;
                attributes.write = flags & 1;
                attributes.execute = flags & 2;
                attributes.user = flags & 4;
                attributes.global = flags & 8;
                attributes.cache = cache;
                INFO("level " << level << " cache " << int(cache) << " flags " << flags);
                REQUIRE(f.table.map(size, 2 * size, size, attributes, kWith1G).ok());
                const Translation translation = f.translated(size);
                CHECK(translation.attributes == attributes);
                CHECK(translation.page_size == page_size_at(level));
                REQUIRE(f.table.unmap(size, size).ok());

                // The PAT entry the bits select holds the asked-for memory type.
                const u64 entry = X86Format::leaf_entry(2 * size, level, attributes);
                const u64 pat_bit = level == 0 ? X86Format::kPat4K : X86Format::kPatLarge;
                const u64 index = ((entry & X86Format::kWriteThrough) ? 1 : 0) |
                                  ((entry & X86Format::kCacheDisable) ? 2 : 0) |
                                  ((entry & pat_bit) ? 4 : 0);
                CHECK(((kPatMsrValue >> (8 * index)) & 0xff) == memory_type_encoding(cache));
                CHECK(bool(entry & X86Format::kNoExecute) == !attributes.execute);
                // Bit 7 is PS in large leaves (and PAT in a PTE, checked above).
                if (level > 0) CHECK((entry & X86Format::kLargePage) != 0);
                CHECK(X86Format::leaf_address(entry, level) == 2 * size);
            }
        }
    }
    // Entries 0-3 must be the power-on layout (SDM: PAT reset value 0x0007040600070406).
    CHECK((kPatMsrValue & 0xffff'ffff) == (0x0007'0406'0007'0406 & 0xffff'ffff));
    CHECK(X86Format::table_entry(0x5000) == (0x5000 | X86Format::kPresent |
                                            X86Format::kWritable | X86Format::kUser));
}

TEST_CASE("page table: EPT attributes round-trip", "[page_table]") {
    Fixture<EptFormat> f;
    for (int level = 0; level <= kLargestLeafLevel; ++level) {
        const u64 size = level_span(level);
        for (CacheType cache : cache_types_of(true)) {
            for (int access = 1; access < 8; ++access) {
                Attributes attributes;
                attributes.read = access & 1;
                attributes.write = access & 2;
                attributes.execute = access & 4;
                attributes.cache = cache;
                if (attributes.write && !attributes.read) continue;  // misconfiguration
                INFO("level " << level << " cache " << int(cache) << " access " << access);
                REQUIRE(f.table.map(size, 2 * size, size, attributes, kWith1G).ok());
                CHECK(f.translated(size).attributes == attributes);
                REQUIRE(f.table.unmap(size, size).ok());

                const u64 entry = EptFormat::leaf_entry(2 * size, level, attributes);
                CHECK((entry & 7) == u64(access));
                CHECK(((entry >> 3) & 7) == memory_type_encoding(cache));
                CHECK(bool(entry & EptFormat::kLargePage) == (level > 0));
                CHECK((entry & (u64{1} << 6)) == 0);  // ignore-PAT stays clear
            }
        }
    }
    CHECK(EptFormat::table_entry(0x5000) == 0x5007);
    CHECK_FALSE(EptFormat::present(0x5000 | EptFormat::kLargePage));
}

TEMPLATE_TEST_CASE("page table: accessed and dirty are reported", "[page_table]", X86Format,
                   EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_write();
    REQUIRE(f.table.map(0x7000, 0x9000, k4K, attributes).ok());
    CHECK_FALSE(f.translated(0x7000).accessed);
    CHECK_FALSE(f.translated(0x7000).dirty);
    u64* entry = f.memory.find_entry(TestType::leaf_entry(0x9000, 0, attributes));
    REQUIRE(entry != nullptr);
    *entry |= TestType::kAccessed | TestType::kDirty;  // as the CPU would
    CHECK(f.translated(0x7000).accessed);
    CHECK(f.translated(0x7000).dirty);
    CHECK(f.translated(0x7000).attributes == attributes);
}

TEMPLATE_TEST_CASE("page table: W^X check", "[page_table]", X86Format, EptFormat) {
    Fixture<TestType> f;
    REQUIRE(f.table.map(0x20'0000, 0x20'0000, k2M, read_execute()).ok());
    REQUIRE(f.table.map(0x40'0000, 0x40'0000, 4 * k4K, read_write()).ok());
    CHECK_FALSE(f.table.find_writable_executable());

    Attributes both = read_write();
    both.execute = true;
    REQUIRE(f.table.map(0x40'0000 + 5 * k4K, 0x7000, k4K, both).ok());
    Leaf found{};
    REQUIRE(f.table.find_writable_executable(&found));
    CHECK(found.virt == 0x40'0000 + 5 * k4K);
    CHECK(found.phys == 0x7000);

    REQUIRE(f.table.protect(0x40'0000 + 5 * k4K, k4K, read_execute()).ok());
    CHECK_FALSE(f.table.find_writable_executable());
}

TEMPLATE_TEST_CASE("page table: out of memory", "[page_table]", X86Format, EptFormat) {
    Fixture<TestType> f;
    const Attributes attributes = read_write();

    SECTION("a failed map is undone") {
        REQUIRE(f.table.map(0x1000, 0x1000, k4K, attributes).ok());
        const usize tables = f.memory.live();
        // A new 1 GiB region needs a PD and a PT: allow only one.
        f.memory.set_budget(tables + 1);
        const Result result = f.table.map(k1G - k4K, 0x5000, 2 * k4K, attributes);
        CHECK(result.status == Status::OutOfMemory);
        CHECK(f.memory.live() == tables);
        CHECK_FALSE(f.mapped(k1G - k4K));
        CHECK_FALSE(f.mapped(k1G));
        CHECK(f.leaves().size() == 1);
    }
    SECTION("unmap and protect that need a split change nothing") {
        REQUIRE(f.table.map(k2M, k2M, k2M, attributes).ok());
        f.memory.set_budget(f.memory.live());
        CHECK(f.table.unmap(k2M + k4K, k4K).status == Status::OutOfMemory);
        CHECK(f.table.protect(k2M + k4K, k4K, Attributes{}).status == Status::OutOfMemory);
        const Translation translation = f.translated(k2M + k4K);
        CHECK(translation.page_size == PageSize::Size2M);
        CHECK(translation.attributes == attributes);
        // Whole pages need no table.
        CHECK(f.table.unmap(k2M, k2M).ok());
    }
    SECTION("a failed replace leaves each page old or new") {
        REQUIRE(f.table.map(0, 0, 4 * k2M, attributes).ok());
        f.memory.set_budget(f.memory.live() + 1);
        // Replacing by 4 KiB pages needs a table per 2 MiB page: only the first gets one.
        const Result result = f.table.map(0, 0x1000'0000 + k4K, 4 * k2M, attributes, kReplace);
        CHECK(result.status == Status::OutOfMemory);
        for (u64 virt = 0; virt < 4 * k2M; virt += k4K) {
            const u64 phys = f.translated(virt).phys;
            REQUIRE((phys == virt || phys == 0x1000'0000 + k4K + virt));
        }
        CHECK(f.translated(0).phys == 0x1000'0000 + k4K);
        CHECK(f.translated(3 * k2M).phys == 3 * k2M);
    }
}

TEMPLATE_TEST_CASE("page table: random operations agree with a simple model", "[page_table]",
                   X86Format, EptFormat) {
    constexpr bool kEpt = std::is_same_v<TestType, EptFormat>;
    constexpr u64 kBase = 0x7f'8000'0000;  // 16 MiB window, 2 MiB aligned
    constexpr u64 kPages = 16 * MiB / k4K;
    struct Page {
        u64 phys;
        Attributes attributes;
    };
    std::map<u64, Page> model;  // page index -> mapping
    Fixture<TestType> f;
    std::mt19937_64 random(99);
    auto pick = [&](u64 limit) { return std::uniform_int_distribution<u64>(0, limit)(random); };
    auto random_attributes = [&] {
        Attributes attributes;
        attributes.write = pick(1);
        attributes.execute = pick(1);
        if (!kEpt) {
            attributes.user = pick(1);
            attributes.global = pick(1);
        }
        const std::vector<CacheType> types = cache_types_of(kEpt);
        attributes.cache = types[pick(types.size() - 1)];
        return attributes;
    };

    bool saw_large_page = false;
    for (int step = 0; step < 2000; ++step) {
        // Ranges of up to 3 MiB, often 2 MiB aligned so that large pages appear.
        u64 first = pick(kPages - 1);
        if (pick(1)) first &= ~u64{511};
        const u64 count = 1 + pick(std::min<u64>(767, kPages - 1 - first));
        const u64 virt = kBase + first * k4K;
        const u64 size = count * k4K;
        bool any_mapped = false;
        bool all_mapped = true;
        for (u64 page = first; page < first + count; ++page) {
            any_mapped |= model.count(page) != 0;
            all_mapped &= model.count(page) != 0;
        }
        INFO("step " << step << " first " << first << " count " << count);
        switch (pick(2)) {
            case 0: {
                const u64 phys = (pick(1) ? pick(1u << 20) * k2M : pick(1u << 28) * k4K) +
                                 (first % 512) * k4K;
                const Attributes attributes = random_attributes();
                const bool replace = pick(1);
                const Result result =
                    f.table.map(virt, phys, size, attributes, MapOptions{false, replace});
                if (any_mapped && !replace) {
                    REQUIRE(result.status == Status::AlreadyMapped);
                    break;
                }
                REQUIRE(result.ok());
                for (u64 page = 0; page < count; ++page) {
                    model[first + page] = {phys + page * k4K, attributes};
                }
                break;
            }
            case 1: {
                REQUIRE(f.table.unmap(virt, size).ok());
                for (u64 page = first; page < first + count; ++page) model.erase(page);
                break;
            }
            default: {
                const Attributes attributes = random_attributes();
                const Result result = f.table.protect(virt, size, attributes);
                if (!all_mapped) {
                    REQUIRE(result.status == Status::NotMapped);
                    break;
                }
                REQUIRE(result.ok());
                for (u64 page = first; page < first + count; ++page) {
                    model[page].attributes = attributes;
                }
                break;
            }
        }
        if (step % 20 != 19) continue;
        for (u64 page = 0; page < kPages; ++page) {
            Translation translation;
            const bool mapped = f.table.translate(kBase + page * k4K + 8, &translation);
            const auto expected = model.find(page);
            REQUIRE(mapped == (expected != model.end()));
            if (!mapped) continue;
            REQUIRE(translation.phys == expected->second.phys + 8);
            REQUIRE(translation.attributes == expected->second.attributes);
            saw_large_page |= translation.page_size == PageSize::Size2M;
        }
    }
    CHECK(saw_large_page);
    REQUIRE(f.table.unmap(kBase, kPages * k4K).ok());
    CHECK(f.leaves().empty());
    CHECK(f.memory.live() == 1);  // no empty table left behind
}
