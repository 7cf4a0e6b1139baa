#include <catch2/catch.hpp>

#include <lamina/atomic.h>

#include <thread>
#include <vector>

using namespace lamina;

TEST_CASE("atomic: load, store and exchange") {
    Atomic<u64> value;
    CHECK(value.load() == 0);  // default-constructed to zero
    value.store(0x1122334455667788ull);
    CHECK(value.load() == 0x1122334455667788ull);
    CHECK(value.load(MemoryOrder::Relaxed) == 0x1122334455667788ull);
    CHECK(value.exchange(5) == 0x1122334455667788ull);
    CHECK(value.load(MemoryOrder::Acquire) == 5);
    value.store(9, MemoryOrder::Release);
    CHECK(value.exchange(10, MemoryOrder::AcqRel) == 9);

    Atomic<bool> flag{true};
    CHECK(flag.load());
    CHECK(flag.exchange(false));
    CHECK_FALSE(flag.load());

    const Atomic<int> constant{-4};
    CHECK(constant.load() == -4);
}

TEST_CASE("atomic: compare_exchange succeeds only on a match and reports the current value") {
    for (MemoryOrder order : {MemoryOrder::Relaxed, MemoryOrder::Acquire, MemoryOrder::Release,
                              MemoryOrder::AcqRel, MemoryOrder::SeqCst}) {
        Atomic<u32> value{7};
        u32 expected = 7;
        CHECK(value.compare_exchange(expected, 8, order));
        CHECK(expected == 7);
        CHECK(value.load() == 8);

        expected = 7;  // stale
        CHECK_FALSE(value.compare_exchange(expected, 100, order));
        CHECK(expected == 8);  // updated to what was there
        CHECK(value.load() == 8);  // unchanged
    }
}

TEST_CASE("atomic: fetch operations return the old value") {
    Atomic<u32> value{10};
    CHECK(value.fetch_add(5) == 10);
    CHECK(value.fetch_sub(3) == 15);
    CHECK(value.load() == 12);
    CHECK(value.fetch_or(0x100) == 12);
    CHECK(value.fetch_and(0x10c) == 0x10c);
    CHECK(value.load() == 0x10c);
    CHECK(value.fetch_and(0xf0, MemoryOrder::Relaxed) == 0x10c);
    CHECK(value.load() == 0);

    // Unsigned wraparound, at the width of T.
    Atomic<u8> byte{250};
    CHECK(byte.fetch_add(10) == 250);
    CHECK(byte.load() == 4);
    CHECK(byte.fetch_sub(5) == 4);
    CHECK(byte.load() == 255);

    Atomic<i64> signed_value{-1};
    CHECK(signed_value.fetch_add(-5) == -1);
    CHECK(signed_value.load() == -6);
}

TEST_CASE("atomic: concurrent fetch_add and compare_exchange lose no updates") {
    constexpr int kThreads = 8;
    constexpr int kIterations = 20000;
    Atomic<u64> added{0};
    Atomic<u64> swapped{0};

    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kIterations; ++i) {
                added.fetch_add(1, MemoryOrder::Relaxed);
                u64 seen = swapped.load(MemoryOrder::Relaxed);
                while (!swapped.compare_exchange(seen, seen + 2, MemoryOrder::AcqRel)) cpu_relax();
            }
        });
    }
    for (std::thread& thread : threads) thread.join();

    CHECK(added.load() == u64{kThreads} * kIterations);
    CHECK(swapped.load() == 2 * u64{kThreads} * kIterations);
}
