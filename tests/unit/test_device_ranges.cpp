#include <catch2/catch.hpp>

#include <hypervisor/mm/device_ranges.h>

#include <utility>
#include <vector>

using namespace lamina;
using mm::DeviceRanges;

namespace {

std::vector<std::pair<u64, u64>> all(const DeviceRanges& ranges) {
    std::vector<std::pair<u64, u64>> out;
    for (usize i = 0; i < ranges.count(); ++i) out.emplace_back(ranges[i].base, ranges[i].end);
    return out;
}

}  // namespace

TEST_CASE("device ranges: what is not RAM nor the hypervisor's, in whole pages", "[device_ranges]") {
    DeviceRanges ranges(4 * GiB);
    // A PC's map: RAM below 640 KiB and from 1 MiB to 512 MiB, the rest holes and reserved.
    REQUIRE(ranges.remove(0, 0x9fc00));
    REQUIRE(ranges.remove(0x100000, 512 * MiB));
    REQUIRE(ranges.remove(0xfee00000, 0xfee01000));  // local APIC
    REQUIRE(ranges.remove(0xfec00000, 0xfec00100));  // an I/O APIC: its whole page
    CHECK(all(ranges) == std::vector<std::pair<u64, u64>>{
        {0xa0000, 0x100000},  // 0x9fc00 is partly RAM: that page stays out
        {512 * MiB, 0xfec00000},
        {0xfec01000, 0xfee00000},
        {0xfee01000, 4 * GiB}});
    // Removing what is gone already, or nothing, changes nothing.
    REQUIRE(ranges.remove(0x200000, 0x300000));
    REQUIRE(ranges.remove(5 * GiB, 6 * GiB));
    REQUIRE(ranges.remove(0x1000, 0x1000));
    CHECK(ranges.count() == 4);
    // A cut across several ranges.
    REQUIRE(ranges.remove(0xfe000000, 0xffffffff));
    CHECK(all(ranges).back() == std::pair<u64, u64>{512 * MiB, 0xfe000000});
}

TEST_CASE("device ranges: holes until the table is full, then a refusal", "[device_ranges]") {
    DeviceRanges ranges(1 * GiB);
    usize holes = 0;
    for (u64 at = 0x10000; ranges.remove(at, at + 0x1000); at += 0x10000) ++holes;
    CHECK(holes == DeviceRanges::kCapacity - 1);
    CHECK(ranges.count() == DeviceRanges::kCapacity);
    CHECK(DeviceRanges(0).count() == 0);
    DeviceRanges top(~u64{0});
    REQUIRE(top.remove(~u64{0} - 10, ~u64{0}));
    CHECK(top[0].end == (~u64{0} & ~u64{0xfff}));
}
