#include <catch2/catch.hpp>

#include <hypervisor/mm/object_allocator.h>

#include "test_support.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

using lamina::ObjectAllocator;
using lamina::u64;
using lamina::u8;
using lamina::usize;

namespace {

// Pages from the host heap, each allocation exactly as large as asked, so that ASan catches
// any access past it. A budget simulates running out; recycling hands a freed page out again,
// as the frame allocator would.
class FakePageSource final : public lamina::PageSource {
public:
    void* allocate_pages(usize count) override {
        if (count > budget_ - outstanding_) return nullptr;
        void* pages = nullptr;
        if (count == 1 && !recycled_.empty()) {
            pages = recycled_.back();
            recycled_.pop_back();
        } else {
            const usize page = ObjectAllocator::kPageSize;
            pages = std::aligned_alloc(page, count * page);
        }
        REQUIRE(pages != nullptr);
        live_[pages] = count;
        outstanding_ += count;
        return pages;
    }
    void free_pages(void* pages, usize count) override {
        auto found = live_.find(pages);
        REQUIRE(found != live_.end());  // only pages this source handed out, once
        REQUIRE(found->second == count);
        live_.erase(found);
        outstanding_ -= count;
        if (recycle_ && count == 1) {
            recycled_.push_back(pages);
        } else {
            std::free(pages);
        }
    }

    usize outstanding_pages() const { return outstanding_; }
    void set_budget(usize pages) { budget_ = pages; }
    void recycle_pages() { recycle_ = true; }
    static constexpr usize kUnlimited = 1 << 20;  // 4 GiB

    ~FakePageSource() {
        for (const auto& [address, count] : live_) std::free(address);
        for (void* page : recycled_) std::free(page);
    }

private:
    std::map<void*, usize> live_;
    usize outstanding_ = 0;
    bool recycle_ = false;
    std::vector<void*> recycled_;
    usize budget_ = kUnlimited;
};

bool aligned(const void* pointer, usize alignment) {
    return reinterpret_cast<uintptr_t>(pointer) % alignment == 0;
}

usize objects_per_slab(usize size) {
    return (ObjectAllocator::kPageSize - std::max<usize>(32, size)) / size;
}

}  // namespace

TEST_CASE("object allocator: every size class", "[object_allocator]") {
    FakePageSource source;
    ObjectAllocator allocator(source);
    for (usize index = 0; index < ObjectAllocator::kClassCount; ++index) {
        const usize size = ObjectAllocator::kSmallestClass << index;
        INFO("class " << size);
        // Three slabs' worth of the largest request of this class, each filled with its own
        // byte; any overlap or write past a slot would show.
        const usize count = 3 * objects_per_slab(size);
        std::vector<u8*> objects;
        for (usize i = 0; i < count; ++i) {
            auto* object = static_cast<u8*>(allocator.allocate(size));
            REQUIRE(object != nullptr);
            REQUIRE(aligned(object, size));
            std::memset(object, static_cast<int>(i), size);
            objects.push_back(object);
        }
        const auto stats = allocator.class_stats(index);
        CHECK(stats.object_size == size);
        CHECK(stats.objects_in_use == count);
        CHECK(stats.bytes_in_use == count * size);
        CHECK(stats.slabs == 3);
        CHECK(allocator.pages_held() == 3);
        for (usize i = 0; i < count; ++i) {
            for (usize byte = 0; byte < size; ++byte) {
                REQUIRE(objects[i][byte] == static_cast<u8>(i));
            }
        }
        // The smallest request of the class lands in it too.
        void* smallest = allocator.allocate(size / 2 + 1);
        CHECK(allocator.class_stats(index).objects_in_use == count + 1);
        allocator.free(smallest, size / 2 + 1);
        for (u8* object : objects) allocator.free(object, size);
        CHECK(allocator.class_stats(index).objects_in_use == 0);
        CHECK(allocator.pages_held() == 0);
        CHECK(source.outstanding_pages() == 0);
    }
}

TEST_CASE("object allocator: requests and alignment", "[object_allocator]") {
    FakePageSource source;
    ObjectAllocator allocator(source);

    SECTION("tiny requests take the smallest class") {
        void* one = allocator.allocate(1);
        REQUIRE(one != nullptr);
        CHECK(aligned(one, 16));
        CHECK(allocator.class_stats(0).objects_in_use == 1);
        allocator.free(one, 1);
    }
    SECTION("alignment above the size picks a larger class") {
        void* object = allocator.allocate(24, 256);
        REQUIRE(object != nullptr);
        CHECK(aligned(object, 256));
        CHECK(allocator.class_stats(4).objects_in_use == 1);  // 256 bytes
        // Freed with the size alone it would name the wrong class.
        REQUIRE_THROWS_AS(allocator.free(object, 24), lamina::AssertionFailure);
        allocator.free(object, 24, 256);
        CHECK(allocator.pages_held() == 0);
    }
    SECTION("page alignment and large sizes get whole pages") {
        void* page_aligned = allocator.allocate(64, 4096);
        void* three_pages = allocator.allocate(2 * 4096 + 1);
        void* just_over = allocator.allocate(2049);
        REQUIRE(page_aligned != nullptr);
        REQUIRE(three_pages != nullptr);
        REQUIRE(just_over != nullptr);
        CHECK(aligned(page_aligned, 4096));
        CHECK(aligned(three_pages, 4096));
        static_cast<u8*>(three_pages)[2 * 4096] = 1;  // the last byte asked for is there
        CHECK(allocator.large_pages() == 1 + 3 + 1);
        CHECK(allocator.pages_held() == 5);
        allocator.free(page_aligned, 64, 4096);
        allocator.free(three_pages, 2 * 4096 + 1);
        allocator.free(just_over, 2049);
        CHECK(allocator.large_pages() == 0);
        CHECK(source.outstanding_pages() == 0);
    }
    SECTION("bad requests get nullptr") {
        CHECK(allocator.allocate(0) == nullptr);
        CHECK(allocator.allocate(16, 0) == nullptr);
        CHECK(allocator.allocate(16, 24) == nullptr);
        CHECK(allocator.allocate(16, 8192) == nullptr);
        CHECK(allocator.allocate(~usize{0}) == nullptr);  // no page source has that much
        CHECK(allocator.pages_held() == 0);
    }
    SECTION("free(nullptr) does nothing") {
        allocator.free(nullptr, 16);
        CHECK(allocator.pages_held() == 0);
    }
}

TEST_CASE("object allocator: reuse and returning slabs", "[object_allocator]") {
    FakePageSource source;
    ObjectAllocator allocator(source);

    SECTION("a freed slot is handed out again") {
        void* first = allocator.allocate(48);
        void* second = allocator.allocate(48);
        allocator.free(first, 48);
        CHECK(allocator.allocate(48) == first);
        allocator.free(first, 48);
        allocator.free(second, 48);
        CHECK(allocator.pages_held() == 0);
    }
    SECTION("a full slab takes objects again once one is freed") {
        const usize per_slab = objects_per_slab(512);
        std::vector<void*> objects;
        for (usize i = 0; i < per_slab + 1; ++i) objects.push_back(allocator.allocate(512));
        CHECK(allocator.class_stats(5).slabs == 2);
        allocator.free(objects[3], 512);  // from the full first slab
        void* again = allocator.allocate(512);
        CHECK(again == objects[3]);
        CHECK(allocator.class_stats(5).slabs == 2);
        objects[3] = again;
        for (void* object : objects) allocator.free(object, 512);
        CHECK(allocator.pages_held() == 0);
    }
    SECTION("random churn over all classes returns every page") {
        std::mt19937 random(7);
        std::vector<std::pair<void*, usize>> live;
        for (int step = 0; step < 20000; ++step) {
            if (live.empty() || random() % 3 != 0) {
                const usize size = 1 + random() % 3000;
                void* object = allocator.allocate(size);
                REQUIRE(object != nullptr);
                std::memset(object, 0x5a, size);
                live.emplace_back(object, size);
            } else {
                const usize victim = random() % live.size();
                allocator.free(live[victim].first, live[victim].second);
                live[victim] = live.back();
                live.pop_back();
            }
        }
        CHECK(allocator.pages_held() == source.outstanding_pages());
        std::shuffle(live.begin(), live.end(), random);
        for (auto [object, size] : live) allocator.free(object, size);
        CHECK(allocator.pages_held() == 0);
        CHECK(source.outstanding_pages() == 0);
        for (usize index = 0; index < ObjectAllocator::kClassCount; ++index) {
            CHECK(allocator.class_stats(index).bytes_in_use == 0);
        }
    }
}

TEST_CASE("object allocator: out of memory", "[object_allocator]") {
    FakePageSource source;
    ObjectAllocator allocator(source);
    source.set_budget(1);

    CHECK(allocator.allocate(5000) == nullptr);  // two pages
    std::vector<void*> objects;
    for (usize i = 0; i < objects_per_slab(1024); ++i) {
        objects.push_back(allocator.allocate(1024));
        REQUIRE(objects.back() != nullptr);
    }
    CHECK(allocator.allocate(1024) == nullptr);  // the slab is full, no page for another
    CHECK(allocator.allocate(16) == nullptr);
    CHECK(allocator.class_stats(6).objects_in_use == objects.size());
    CHECK(allocator.class_stats(0).slabs == 0);

    allocator.free(objects.back(), 1024);
    objects.pop_back();
    void* retry = allocator.allocate(1024);
    CHECK(retry != nullptr);
    objects.push_back(retry);
    for (void* object : objects) allocator.free(object, 1024);
    CHECK(allocator.allocate(16) != nullptr);  // the page came back and serves another class
}

TEST_CASE("object allocator: frees that are bugs", "[object_allocator]") {
    using lamina::AssertionFailure;
    FakePageSource source;
    ObjectAllocator allocator(source);
    auto* first = static_cast<u8*>(allocator.allocate(64));
    auto* second = static_cast<u8*>(allocator.allocate(64));
    REQUIRE(first != nullptr);
    REQUIRE(second != nullptr);

    SECTION("double free") {
        allocator.free(first, 64);
        REQUIRE_THROWS_AS(allocator.free(first, 64), AssertionFailure);
        CHECK(allocator.class_stats(2).objects_in_use == 1);
        first = nullptr;
    }
    SECTION("live data that looks like the free canary is not a double free") {
        const u64 looks_free[2] = {0, 0xdeadf4eedeadf4ee};
        std::memcpy(second, looks_free, sizeof(looks_free));
        allocator.free(second, 64);
        second = nullptr;
    }
    SECTION("a pointer inside an object") {
        REQUIRE_THROWS_AS(allocator.free(first + 16, 64), AssertionFailure);
    }
    SECTION("the wrong size") {
        REQUIRE_THROWS_AS(allocator.free(first, 16), AssertionFailure);
        REQUIRE_THROWS_AS(allocator.free(first, 4096), AssertionFailure);
        REQUIRE_THROWS_AS(allocator.free(first, 0), AssertionFailure);
    }
    SECTION("the slab header") {
        u8* header = reinterpret_cast<u8*>(reinterpret_cast<uintptr_t>(first) & ~uintptr_t{4095});
        REQUIRE_THROWS_AS(allocator.free(header, 64), AssertionFailure);
    }
    SECTION("a page no slab owns") {
        void* page = std::aligned_alloc(4096, 4096);
        std::memset(page, 0, 4096);
        REQUIRE_THROWS_AS(allocator.free(static_cast<u8*>(page) + 64, 64), AssertionFailure);
        std::free(page);
    }
    SECTION("a stale pointer into a page that has a new owner") {
        source.recycle_pages();
        allocator.free(first, 64);
        allocator.free(second, 64);  // the slab is empty and goes back
        REQUIRE(allocator.pages_held() == 0);
        auto* page = static_cast<u8*>(allocator.allocate(4000));  // the same page, as raw memory
        REQUIRE(page == first - 64);
        std::memset(page + 64, 0, 4000 - 64);  // the new owner's data, header bytes untouched
        REQUIRE_THROWS_AS(allocator.free(first, 64), AssertionFailure);
        allocator.free(page, 4000);
        first = second = nullptr;
    }
    // Refused frees leave the allocator working.
    allocator.free(first, 64);
    allocator.free(second, 64);
    CHECK(allocator.pages_held() == 0);
}

namespace {

struct Tracked {
    static inline int alive = 0;
    Tracked(int a, u64 b) : first(a), second(b) { ++alive; }
    ~Tracked() { --alive; }
    int first;
    u64 second;
    u8 payload[200];
};

struct alignas(128) Aligned {
    u8 bytes[8];
};

}  // namespace

TEST_CASE("object allocator: create and destroy", "[object_allocator]") {
    FakePageSource source;
    ObjectAllocator allocator(source);

    Tracked* object = allocator.create<Tracked>(7, u64{1} << 40);
    REQUIRE(object != nullptr);
    CHECK(object->first == 7);
    CHECK(object->second == u64{1} << 40);
    CHECK(Tracked::alive == 1);
    allocator.destroy(object);
    CHECK(Tracked::alive == 0);
    allocator.destroy<Tracked>(nullptr);

    Aligned* aligned_object = allocator.create<Aligned>();
    REQUIRE(aligned_object != nullptr);
    CHECK(aligned(aligned_object, 128));
    allocator.destroy(aligned_object);

    // Out of memory: nullptr, and no constructor ran.
    source.set_budget(0);
    CHECK(allocator.create<Tracked>(1, 2) == nullptr);
    CHECK(Tracked::alive == 0);
    source.set_budget(FakePageSource::kUnlimited);

    // Many create/destroy cycles give every page back.
    for (int cycle = 0; cycle < 200; ++cycle) {
        std::vector<Tracked*> batch;
        for (int i = 0; i < 50; ++i) batch.push_back(allocator.create<Tracked>(i, cycle));
        for (Tracked* t : batch) allocator.destroy(t);
        REQUIRE(allocator.pages_held() == 0);
    }
    CHECK(Tracked::alive == 0);
    CHECK(source.outstanding_pages() == 0);
}
