#include <catch2/catch.hpp>

#include <hypervisor/mm/frame_allocator.h>

#include "test_support.h"

#include <algorithm>
#include <random>
#include <set>
#include <thread>
#include <vector>

using lamina::FrameAllocator;
using lamina::GiB;
using lamina::kFrameSize;
using lamina::KiB;
using lamina::MemoryKind;
using lamina::MemoryRegion;
using lamina::MiB;
using lamina::PhysRange;
using lamina::u64;

namespace {

constexpr MemoryKind kUsable = MemoryKind::Usable;
constexpr MemoryKind kReserved = MemoryKind::Reserved;

// An allocator planned and initialized over a host buffer.
struct Frames {
    explicit Frames(std::vector<MemoryRegion> map, std::vector<PhysRange> exclude = {},
                    u64 storage_limit = 4 * GiB)
        : regions(std::move(map)), excluded(std::move(exclude)) {
        status = allocator.plan(regions.data(), regions.size(), excluded.data(), excluded.size(),
                                storage_limit);
        if (status == FrameAllocator::PlanStatus::Ok) {
            storage.resize(allocator.storage_bytes() / sizeof(u64));
            allocator.init(storage.data());
        }
    }

    // Every frame still free, in the order allocate() hands them out.
    std::vector<u64> drain() {
        std::vector<u64> frames;
        for (u64 phys; (phys = allocator.allocate()) != FrameAllocator::kNoFrame;) {
            frames.push_back(phys / kFrameSize);
        }
        return frames;
    }

    std::set<u64> storage_frames() const {
        std::set<u64> frames;
        const u64 first = allocator.storage_phys() / kFrameSize;
        const u64 count = (allocator.storage_bytes() + kFrameSize - 1) / kFrameSize;
        for (u64 frame = first; frame < first + count; ++frame) frames.insert(frame);
        return frames;
    }

    std::vector<MemoryRegion> regions;
    std::vector<PhysRange> excluded;
    FrameAllocator allocator;
    FrameAllocator::PlanStatus status;
    std::vector<u64> storage;
};

using Wide = unsigned __int128;

bool overlaps(u64 base, u64 length, Wide start, Wide end) {
    return length != 0 && Wide{base} < end && start < Wide{base} + length;
}

// The rule, frame by frame, without any of the allocator's cleverness.
std::set<u64> usable_frames_by_rule(const std::vector<MemoryRegion>& regions,
                                    const std::vector<PhysRange>& excluded, u64 frame_limit) {
    std::set<u64> frames;
    for (u64 frame = 1; frame < frame_limit; ++frame) {
        const Wide start = Wide{frame} * kFrameSize;
        const Wide end = start + kFrameSize;
        bool usable = false;
        bool blocked = false;
        for (const MemoryRegion& region : regions) {
            if (region.kind == kUsable) {
                usable |= Wide{region.base} <= start && end <= Wide{region.base} + region.length;
            } else {
                blocked |= overlaps(region.base, region.length, start, end);
            }
        }
        for (const PhysRange& range : excluded) {
            blocked |= overlaps(range.base, range.length, start, end);
        }
        if (usable && !blocked) frames.insert(frame);
    }
    return frames;
}

std::set<u64> as_set(const std::vector<u64>& frames) { return {frames.begin(), frames.end()}; }

}  // namespace

TEST_CASE("frame allocator: usable frames follow the map's rules", "[frame_allocator]") {
    // Unsorted, overlapping, with partial frames at the edges, as firmware reports them.
    std::vector<MemoryRegion> map = {
        {0x100000, 0x7f00000, kUsable},     // 1 MiB .. 128 MiB
        {0x9fc00, 0x60400, kReserved},      // EBDA and ROMs, up to 1 MiB
        {0x4000800, 0x800, kReserved},      // inside usable memory, not frame aligned
        {0x0, 0x9fc00, kUsable},            // low memory, ends inside a frame
        {0x8000123, 0x5000, kUsable},       // starts inside a frame
        {0x7ffe800, 0x1000, kReserved},     // unaligned, near the end of the big region
    };
    std::vector<PhysRange> excluded = {
        {0x200000, 0x200000},  // the image
        {0x500100, 0x100},     // a module, inside one frame
    };
    Frames frames(map, excluded);
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);

    const std::vector<u64> handed_out = frames.drain();
    std::set<u64> expected = usable_frames_by_rule(map, excluded, 0x9000);
    for (u64 frame : frames.storage_frames()) REQUIRE(expected.erase(frame) == 1);
    REQUIRE(as_set(handed_out) == expected);
    REQUIRE(handed_out.size() == expected.size());  // no frame twice

    // Spot checks of each rule.
    CHECK(expected.count(0) == 0);        // frame 0 never
    CHECK(expected.count(0x9e) == 1);     // last whole low frame
    CHECK(expected.count(0x9f) == 0);     // partial frame at the edge of a usable region
    CHECK(expected.count(0x200) == 0);    // the image
    CHECK(expected.count(0x500) == 0);    // a module only touches this frame
    CHECK(expected.count(0x4000) == 0);   // reserved, rounded outward
    CHECK(expected.count(0x4001) == 1);
    CHECK(expected.count(0x7ffd) == 1);
    CHECK(expected.count(0x7ffe) == 0);   // reserved wins over usable, rounded outward
    CHECK(expected.count(0x7fff) == 0);
    CHECK(expected.count(0x8000) == 0);   // partial frame at the start of a usable region
    CHECK(expected.count(0x8001) == 1);
    CHECK(expected.count(0x8004) == 1);
    CHECK(expected.count(0x8005) == 0);   // partial frame at its end
}

TEST_CASE("frame allocator: random maps agree with the rule", "[frame_allocator]") {
    std::mt19937_64 random(20240611);
    auto pick = [&](u64 limit) { return std::uniform_int_distribution<u64>(0, limit)(random); };
    for (int round = 0; round < 300; ++round) {
        std::vector<MemoryRegion> map;
        const u64 region_count = 1 + pick(7);
        for (u64 i = 0; i < region_count; ++i) {
            u64 base = pick(16 * MiB);
            u64 length = pick(6 * MiB);
            if (pick(1)) base &= ~(kFrameSize - 1);
            if (pick(1)) length &= ~(kFrameSize - 1);
            map.push_back({base, length, pick(9) < 7 ? kUsable : kReserved});
        }
        std::vector<PhysRange> excluded;
        for (u64 i = pick(3); i > 0; --i) excluded.push_back({pick(16 * MiB), pick(512 * KiB)});
        const u64 storage_limit = pick(3) == 0 ? pick(16 * MiB) : 4 * GiB;
        INFO("round " << round);

        Frames frames(map, excluded, storage_limit);
        std::set<u64> expected = usable_frames_by_rule(map, excluded, 0x2000);
        std::set<u64> placeable;
        for (u64 frame : expected) {
            if ((frame + 1) * kFrameSize <= storage_limit) placeable.insert(frame);
        }
        if (frames.status == FrameAllocator::PlanStatus::NoUsableMemory) {
            // Possible only when no usable region holds a whole frame.
            REQUIRE(expected.empty());
            continue;
        }
        // Maps this small need a single frame of bookkeeping.
        if (placeable.empty()) {
            REQUIRE(frames.status == FrameAllocator::PlanStatus::NoRoomForBookkeeping);
            continue;
        }
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        REQUIRE(frames.storage_frames().size() == 1);
        const u64 storage = *frames.storage_frames().begin();
        // The lowest frame above low memory, or the lowest frame at all.
        auto above_low_memory = placeable.lower_bound(FrameAllocator::kLowMemoryEnd / kFrameSize);
        REQUIRE(storage == (above_low_memory != placeable.end() ? *above_low_memory
                                                                 : *placeable.begin()));
        expected.erase(storage);

        REQUIRE(frames.allocator.stats().usable_bytes == expected.size() * kFrameSize);
        const std::vector<u64> handed_out = frames.drain();
        REQUIRE(handed_out.size() == expected.size());
        REQUIRE(as_set(handed_out) == expected);
        REQUIRE(frames.allocator.stats().free_bytes == 0);
    }
}

TEST_CASE("frame allocator: reserved wins whatever the order", "[frame_allocator]") {
    std::vector<MemoryRegion> map = {
        {0x100000, 0x400000, kUsable},
        {0x180000, 0x10000, kReserved},
        {0x170000, 0x20000, kUsable},  // usable again over the reserved range
    };
    std::set<u64> first;
    std::set<u64> second;
    {
        Frames frames(map);
        first = as_set(frames.drain());
    }
    std::reverse(map.begin(), map.end());
    {
        Frames frames(map);
        second = as_set(frames.drain());
    }
    REQUIRE(first == second);
    for (u64 frame = 0x180; frame < 0x190; ++frame) REQUIRE(first.count(frame) == 0);
    REQUIRE(first.count(0x17f) == 1);
    REQUIRE(first.count(0x190) == 1);
}

TEST_CASE("frame allocator: bad maps", "[frame_allocator]") {
    SECTION("nothing usable") {
        Frames empty({});
        CHECK(empty.status == FrameAllocator::PlanStatus::NoUsableMemory);
        Frames reserved_only({{0x100000, 0x100000, kReserved}});
        CHECK(reserved_only.status == FrameAllocator::PlanStatus::NoUsableMemory);
        Frames partial_frame({{0x100800, 0x1000, kUsable}});
        CHECK(partial_frame.status == FrameAllocator::PlanStatus::NoUsableMemory);
        Frames above_the_limit({{FrameAllocator::kPhysicalLimit, 0x100000, kUsable}});
        CHECK(above_the_limit.status == FrameAllocator::PlanStatus::NoUsableMemory);
    }
    SECTION("everything usable is excluded") {
        Frames frames({{0x100000, 0x100000, kUsable}}, {{0x100000, 0x100000}});
        CHECK(frames.status == FrameAllocator::PlanStatus::NoRoomForBookkeeping);
    }
    SECTION("lengths that run past 2^64 reach to the end") {
        Frames frames({{0x100000, 0x100000, kUsable}, {0x1f0000, ~u64{0}, kReserved}},
                      {{0x1e0000, ~u64{0} - 0x1000}, {~u64{0} - 0x100, 0x1000}});
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        const std::set<u64> handed_out = as_set(frames.drain());
        CHECK(handed_out.size() == 0xe0 - 1);  // one frame holds the bookkeeping
        CHECK(*handed_out.rbegin() == 0x1df);
    }
    SECTION("memory claimed up to the physical limit needs more bookkeeping than fits") {
        Frames frames({{0x100000, 0x100000, kUsable},
                       {FrameAllocator::kPhysicalLimit - 0x2000, ~u64{0}, kUsable}});
        CHECK(frames.status == FrameAllocator::PlanStatus::NoRoomForBookkeeping);
    }
    SECTION("an unknown kind counts as reserved") {
        Frames frames({{0x100000, 0x100000, kUsable},
                       {0x180000, 0x1000, static_cast<MemoryKind>(7)}});
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        CHECK(as_set(frames.drain()).count(0x180) == 0);
    }
}

TEST_CASE("frame allocator: bookkeeping placement", "[frame_allocator]") {
    // 4 GiB: two bitmaps of 2^20 bits = 256 KiB = 64 frames.
    const std::vector<MemoryRegion> map = {{0x1000, 0x9e000, kUsable},
                                           {0x100000, 4 * GiB - 0x100000, kUsable}};

    SECTION("above low memory, clear of exclusions") {
        Frames frames(map, {{0x100000, 0x300000}, {0x420000, 0x1000}});
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        CHECK(frames.allocator.storage_bytes() == 2 * (1u << 20) / 8);
        // 0x400000 is free, but 64 frames from there would run into the exclusion at 0x420000.
        CHECK(frames.allocator.storage_phys() == 0x421000);
        const auto stats = frames.allocator.stats();
        CHECK(stats.usable_bytes == (0x9e + (4 * GiB - 0x100000) / kFrameSize - 0x300 - 1 - 64) *
                                        kFrameSize);
        CHECK(stats.free_bytes == stats.usable_bytes);
    }
    SECTION("right after an excluded frame") {
        Frames frames(map, {{0x100000, 0x1000}});
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        CHECK(frames.allocator.storage_phys() == 0x101000);
    }
    SECTION("in low memory when nothing else fits below the limit") {
        Frames frames(map, {{0x100000, 0x100000}}, 0x200000);
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        CHECK(frames.allocator.storage_phys() == 0x1000);
    }
    SECTION("a limit that leaves no room") {
        Frames frames(map, {{0x1000, 0x90000}, {0x100000, 0x100000}}, 0x200000);
        CHECK(frames.status == FrameAllocator::PlanStatus::NoRoomForBookkeeping);
    }
    SECTION("the bookkeeping is never handed out") {
        Frames frames({{0x100000, 0x1000000, kUsable}});
        REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
        const std::set<u64> handed_out = as_set(frames.drain());
        for (u64 frame : frames.storage_frames()) CHECK(handed_out.count(frame) == 0);
        REQUIRE_THROWS_AS(frames.allocator.free(frames.allocator.storage_phys()),
                          lamina::AssertionFailure);
    }
}

TEST_CASE("frame allocator: exhaustion, free and reuse", "[frame_allocator]") {
    Frames frames({{0x100000, 0x100000, kUsable}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    const u64 usable = frames.allocator.stats().usable_bytes / kFrameSize;
    REQUIRE(usable == 0xff);  // 256 frames, one holds the bookkeeping

    const std::vector<u64> all = frames.drain();
    REQUIRE(all.size() == usable);
    CHECK(frames.allocator.allocate() == FrameAllocator::kNoFrame);
    CHECK(frames.allocator.stats().free_bytes == 0);

    // A freed frame is found again, even behind the next-fit position.
    frames.allocator.free(all[10] * kFrameSize);
    CHECK(frames.allocator.allocate() == all[10] * kFrameSize);
    CHECK(frames.allocator.allocate() == FrameAllocator::kNoFrame);

    for (u64 frame : all) frames.allocator.free(frame * kFrameSize);
    const auto stats = frames.allocator.stats();
    CHECK(stats.free_bytes == stats.usable_bytes);
    CHECK(stats.frames_allocated == usable + 1);
    CHECK(stats.frames_freed == usable + 1);
    CHECK(frames.drain().size() == usable);
}

TEST_CASE("frame allocator: runs, alignment and limits", "[frame_allocator]") {
    Frames frames({{0x1000, 0x9e000, kUsable}, {0x100000, 64 * MiB - 0x100000, kUsable}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    FrameAllocator& allocator = frames.allocator;

    SECTION("bad requests") {
        CHECK(allocator.allocate(0) == FrameAllocator::kNoFrame);
        CHECK(allocator.allocate(1, 3) == FrameAllocator::kNoFrame);
        CHECK(allocator.allocate(1, 0) == FrameAllocator::kNoFrame);
        CHECK(allocator.allocate(1u << 20) == FrameAllocator::kNoFrame);  // more than exists
        CHECK(allocator.allocate(1, 1, 0xfff) == FrameAllocator::kNoFrame);  // below one frame
        CHECK(allocator.stats().frames_allocated == 0);
    }
    SECTION("aligned runs") {
        allocator.allocate();  // make the next-fit position odd
        const u64 huge = allocator.allocate(512, 512);
        REQUIRE(huge != FrameAllocator::kNoFrame);
        CHECK(huge % (2 * MiB) == 0);
        const u64 sixteen = allocator.allocate(3, 16);
        REQUIRE(sixteen != FrameAllocator::kNoFrame);
        CHECK(sixteen % (64 * KiB) == 0);
        CHECK((sixteen + 3 * kFrameSize <= huge || sixteen >= huge + 2 * MiB));
        CHECK(allocator.stats().frames_allocated == 1 + 512 + 3);
        allocator.free(huge, 512);
        allocator.free(sixteen, 3);
    }
    SECTION("ordinary allocations leave low memory for last") {
        const u64 low_frames = 0x9e;
        const u64 high_frames = allocator.stats().usable_bytes / kFrameSize - low_frames;
        std::vector<u64> high;
        for (u64 i = 0; i < high_frames; ++i) {
            high.push_back(allocator.allocate());
            REQUIRE(high.back() >= FrameAllocator::kLowMemoryEnd);
        }
        // Past the end of memory, the search wraps around to high memory first.
        allocator.free(high[500]);
        CHECK(allocator.allocate() == high[500]);
        const u64 trampoline = allocator.allocate(1, 1, FrameAllocator::kLowMemoryEnd);
        REQUIRE(trampoline != FrameAllocator::kNoFrame);
        CHECK(trampoline < FrameAllocator::kLowMemoryEnd);
        // Only low memory is left now, and ordinary requests get it too.
        const u64 last_resort = allocator.allocate();
        CHECK(last_resort != FrameAllocator::kNoFrame);
        CHECK(last_resort < FrameAllocator::kLowMemoryEnd);
    }
    SECTION("max_phys bounds the whole run") {
        const u64 below = allocator.allocate(4, 1, 0x5000);
        CHECK(below == 0x1000);  // frames 1..4 end exactly at the limit
        CHECK(allocator.allocate(1, 1, 0x5000) == FrameAllocator::kNoFrame);
        // Low memory runs out, the rest stays available.
        const u64 low = FrameAllocator::kLowMemoryEnd;
        while (allocator.allocate(1, 1, low) != FrameAllocator::kNoFrame) {
        }
        CHECK(allocator.allocate(1, 1, low) == FrameAllocator::kNoFrame);
        CHECK(allocator.allocate() >= low);
        CHECK(allocator.stats().frames_allocated == 4 + 0x9e - 4 + 1);
    }
}

TEST_CASE("frame allocator: frames at a given address", "[frame_allocator]") {
    Frames frames({{0x1000, 0x9e000, kUsable}, {0x100000, 64 * MiB - 0x100000, kUsable}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    FrameAllocator& allocator = frames.allocator;
    const u64 free_before = allocator.stats().free_bytes;
    CHECK(allocator.allocate_at(16 * MiB, 4096) == 16 * MiB);
    CHECK(allocator.stats().free_bytes == free_before - 16 * MiB);
    CHECK(allocator.allocate_at(16 * MiB + 8 * MiB, 1) == FrameAllocator::kNoFrame);  // taken
    CHECK(allocator.allocate_at(0x9f000, 1) == FrameAllocator::kNoFrame);             // not usable
    CHECK(allocator.allocate_at(0x80000, 0x40) == FrameAllocator::kNoFrame);          // runs past usable
    CHECK(allocator.allocate_at(16 * MiB + 1, 1) == FrameAllocator::kNoFrame);        // unaligned
    CHECK(allocator.allocate_at(64 * MiB, 1) == FrameAllocator::kNoFrame);            // past the end
    CHECK(allocator.allocate_at(32 * MiB, 0) == FrameAllocator::kNoFrame);
    // Nothing handed out elsewhere overlaps it, and it frees like any other run.
    for (u64 phys; (phys = allocator.allocate()) != FrameAllocator::kNoFrame;)
        CHECK((phys < 16 * MiB || phys >= 32 * MiB));
    allocator.free(16 * MiB, 4096);
    CHECK(allocator.allocate_at(20 * MiB, 2) == 20 * MiB);
}

TEST_CASE("frame allocator: frees that are bugs", "[frame_allocator]") {
    Frames frames({{0x0, 0x9f000, kUsable}, {0x100000, 0x100000, kUsable}},
                  {{0x180000, 0x1000}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    FrameAllocator& allocator = frames.allocator;
    const u64 pair = allocator.allocate(2);
    REQUIRE(pair != FrameAllocator::kNoFrame);
    const auto before = allocator.stats();

    using lamina::AssertionFailure;
    REQUIRE_THROWS_AS(allocator.free(pair + 2 * kFrameSize), AssertionFailure);   // never allocated
    REQUIRE_THROWS_AS(allocator.free(pair, 3), AssertionFailure);   // runs past the allocation
    REQUIRE_THROWS_AS(allocator.free(pair + 1), AssertionFailure);  // unaligned
    REQUIRE_THROWS_AS(allocator.free(pair, 0), AssertionFailure);
    REQUIRE_THROWS_AS(allocator.free(0), AssertionFailure);              // frame 0
    REQUIRE_THROWS_AS(allocator.free(0xa0000), AssertionFailure);        // a hole in the map
    REQUIRE_THROWS_AS(allocator.free(0x180000), AssertionFailure);       // excluded
    REQUIRE_THROWS_AS(allocator.free(0x200000), AssertionFailure);       // beyond all memory
    REQUIRE_THROWS_AS(allocator.free(~u64{0} & ~(kFrameSize - 1), 2), AssertionFailure);
    // The refused frees changed nothing.
    CHECK(allocator.stats().free_bytes == before.free_bytes);

    allocator.free(pair, 2);
    REQUIRE_THROWS_AS(allocator.free(pair), AssertionFailure);  // double free
    REQUIRE_THROWS_AS(allocator.free(pair + kFrameSize), AssertionFailure);
    CHECK(allocator.stats().free_bytes == before.free_bytes + 2 * kFrameSize);
    CHECK(allocator.stats().frames_freed == 2);
}

TEST_CASE("frame allocator: late reservations", "[frame_allocator]") {
    Frames frames({{0x100000, 0x100000, kUsable}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    FrameAllocator& allocator = frames.allocator;
    const u64 usable = allocator.stats().usable_bytes;

    // An unaligned range withdraws every frame it touches.
    REQUIRE(allocator.reserve(0x140800, 0x1000));
    CHECK(allocator.stats().usable_bytes == usable - 2 * kFrameSize);
    CHECK(allocator.stats().free_bytes == usable - 2 * kFrameSize);
    // Again, or outside managed memory: nothing more to withdraw.
    REQUIRE(allocator.reserve(0x140000, 0x2000));
    REQUIRE(allocator.reserve(0x10000000, 0x1000));
    REQUIRE(allocator.reserve(~u64{0} - 0x10, 0x100));
    REQUIRE(allocator.reserve(0x150000, 0));
    CHECK(allocator.stats().usable_bytes == usable - 2 * kFrameSize);

    // An allocated frame cannot be reserved, and a refused reservation withdraws nothing.
    const u64 first = allocator.allocate();
    const u64 second = allocator.allocate();
    REQUIRE(second == first + kFrameSize);
    allocator.free(first);
    REQUIRE_FALSE(allocator.reserve(first, 3 * kFrameSize));
    CHECK(allocator.stats().usable_bytes == usable - 2 * kFrameSize);

    const std::set<u64> handed_out = as_set(frames.drain());
    CHECK(handed_out.count(0x140) == 0);
    CHECK(handed_out.count(0x141) == 0);
    CHECK(handed_out.count(first / kFrameSize) == 1);
    CHECK(handed_out.count(second / kFrameSize + 1) == 1);
    REQUIRE_THROWS_AS(allocator.free(0x140000), lamina::AssertionFailure);
}

TEST_CASE("frame allocator: concurrent use keeps the books", "[frame_allocator]") {
    Frames frames({{0x100000, 16 * MiB, kUsable}});
    REQUIRE(frames.status == FrameAllocator::PlanStatus::Ok);
    FrameAllocator& allocator = frames.allocator;
    const u64 usable = allocator.stats().usable_bytes;
    std::vector<std::thread> threads;
    std::vector<std::vector<u64>> taken(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 200; ++round) {
                for (int i = 0; i < 4; ++i) taken[t].push_back(allocator.allocate());
                for (int i = 0; i < 3; ++i) {
                    allocator.free(taken[t].back());
                    taken[t].pop_back();
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    std::set<u64> all;
    for (const auto& list : taken) {
        for (u64 phys : list) {
            REQUIRE(phys != FrameAllocator::kNoFrame);
            REQUIRE(all.insert(phys).second);  // no frame went to two owners
        }
    }
    CHECK(allocator.stats().free_bytes == usable - all.size() * kFrameSize);
}
