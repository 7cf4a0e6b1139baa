#include <catch2/catch.hpp>

#include <lamina/bitmap.h>

#include <random>
#include <vector>

using namespace lamina;

namespace {

constexpr usize kNotFound = Bitmap::kNotFound;

// A Bitmap over heap storage of exactly words_for(bits) words (so ASan sees any access past
// it), shadowed by a plain vector<bool> that every check is compared against.
struct Checked {
    std::vector<u64> storage;
    Bitmap bitmap;
    std::vector<bool> model;

    explicit Checked(usize bits) : storage(Bitmap::words_for(bits), ~u64{0}), model(bits, false) {
        // Dirty storage on purpose: init must clear it.
        bitmap.init(storage.empty() ? nullptr : storage.data(), bits);
    }

    void set_range(usize first, usize count) {
        bitmap.set_range(first, count);
        for (usize bit = first; bit < model.size() && bit - first < count; ++bit) model[bit] = true;
    }
    void clear_range(usize first, usize count) {
        bitmap.clear_range(first, count);
        for (usize bit = first; bit < model.size() && bit - first < count; ++bit) model[bit] = false;
    }

    usize count_set() const {
        usize n = 0;
        for (bool b : model) n += b;
        return n;
    }
    usize find_first(bool value, usize from) const {
        for (usize bit = from; bit < model.size(); ++bit) {
            if (model[bit] == value) return bit;
        }
        return kNotFound;
    }
    usize find_clear_run(usize count, usize align, usize from, usize limit) const {
        if (count == 0 || align == 0 || (align & (align - 1)) != 0) return kNotFound;
        const usize end = limit < model.size() ? limit : model.size();
        if (from >= end) return kNotFound;
        for (usize start = (from + align - 1) / align * align; start < end && end - start >= count;
             start += align) {
            bool all_clear = true;
            for (usize bit = start; bit < start + count && all_clear; ++bit) all_clear = !model[bit];
            if (all_clear) return start;
            if (end - start < align) break;  // the next candidate would be past the end
        }
        return kNotFound;
    }

    // Every observable property agrees with the model; bits past the end stay clear.
    void verify() const {
        REQUIRE(bitmap.size() == model.size());
        for (usize bit = 0; bit < model.size(); ++bit) {
            if (bitmap.test(bit) != model[bit]) FAIL("bit " << bit << " differs from the model");
        }
        CHECK(bitmap.count_set() == count_set());
        if (model.size() % 64 != 0) {
            CHECK((storage.back() >> (model.size() % 64)) == 0);
        }
    }
};

const usize kSizes[] = {1, 2, 63, 64, 65, 127, 128, 129, 191, 200, 256, 1000};

}  // namespace

TEST_CASE("bitmap: init clears dirty storage and sizes storage in words") {
    CHECK(Bitmap::words_for(0) == 0);
    CHECK(Bitmap::words_for(1) == 1);
    CHECK(Bitmap::words_for(64) == 1);
    CHECK(Bitmap::words_for(65) == 2);
    CHECK(Bitmap::words_for(128) == 2);
    CHECK(Bitmap::words_for(129) == 3);

    for (usize bits : kSizes) {
        INFO("bits " << bits);
        Checked c(bits);
        for (u64 word : c.storage) CHECK(word == 0);
        c.verify();
        CHECK(c.bitmap.find_first_set() == kNotFound);
        CHECK(c.bitmap.find_first_clear() == 0);
    }
}

TEST_CASE("bitmap: an empty bitmap finds nothing") {
    Bitmap bitmap;
    bitmap.init(nullptr, 0);
    CHECK(bitmap.size() == 0);
    CHECK(bitmap.count_set() == 0);
    CHECK(bitmap.find_first_set() == kNotFound);
    CHECK(bitmap.find_first_clear() == kNotFound);
    CHECK(bitmap.find_clear_run(1) == kNotFound);
    bitmap.set_range(0, 10);
    bitmap.clear_range(0, 10);
    CHECK(bitmap.count_set() == 0);
}

TEST_CASE("bitmap: set, clear and test single bits") {
    Checked c(130);
    for (usize bit : {usize{0}, usize{1}, usize{63}, usize{64}, usize{65}, usize{127}, usize{129}}) {
        c.bitmap.set(bit);
        c.model[bit] = true;
    }
    c.verify();
    CHECK(c.storage[0] == ((u64{1} << 63) | 3));
    CHECK(c.storage[2] == 2);  // bit 129 is bit 1 of the third word
    c.bitmap.set(64);  // setting twice changes nothing
    c.verify();
    c.bitmap.clear(64);
    c.model[64] = false;
    c.bitmap.clear(66);  // clearing a clear bit changes nothing
    c.verify();
    CHECK(c.bitmap.count_set() == 6);
}

TEST_CASE("bitmap: ranges crossing word boundaries") {
    Checked c(256);
    c.set_range(60, 10);  // straddles words 0 and 1
    c.verify();
    CHECK(c.storage[0] == ~u64{0} << 60);
    CHECK(c.storage[1] == 0x3f);

    c.set_range(64, 128);  // two whole words
    c.verify();
    CHECK(c.storage[1] == ~u64{0});
    CHECK(c.storage[2] == ~u64{0});
    CHECK(c.storage[3] == 0);

    c.clear_range(1, 254);  // almost everything, from an unaligned start
    c.verify();
    CHECK(c.count_set() == 0);

    c.set_range(0, 0);  // empty ranges are no-ops
    c.clear_range(17, 0);
    c.verify();

    c.set_range(0, 256);
    c.verify();
    CHECK(c.bitmap.count_set() == 256);
    CHECK(c.bitmap.find_first_clear() == kNotFound);
}

TEST_CASE("bitmap: ranges clamp at the end, including overflowing ones") {
    for (usize bits : kSizes) {
        INFO("bits " << bits);
        Checked c(bits);
        c.set_range(bits - 1, 100);
        c.verify();
        CHECK(c.bitmap.count_set() == 1);
        c.set_range(bits, 5);  // starts at the end: nothing
        c.set_range(bits + 1000, 5);  // starts past the end: nothing
        c.set_range(~usize{0}, ~usize{0});  // first + count wraps around
        c.verify();

        c.set_range(bits / 2, ~usize{0});  // count so large that first + count wraps
        c.verify();
        CHECK(c.bitmap.count_set() == bits - bits / 2);

        c.clear_range(bits / 3, ~usize{0} - bits / 4);
        c.verify();
        c.clear_range(0, ~usize{0});
        c.verify();
        CHECK(c.bitmap.count_set() == 0);
    }
}

TEST_CASE("bitmap: find_first_set and find_first_clear from every position") {
    for (usize bits : kSizes) {
        INFO("bits " << bits);
        Checked c(bits);
        // A sparse, irregular pattern with runs across word boundaries.
        for (usize bit = 0; bit < bits; ++bit) {
            if (bit % 7 == 3 || (bit >= 60 && bit < 70) || bit + 1 == bits) c.set_range(bit, 1);
        }
        c.verify();
        for (usize from = 0; from <= bits + 70; ++from) {
            if (c.bitmap.find_first_set(from) != c.find_first(true, from))
                FAIL("find_first_set(" << from << ")");
            if (c.bitmap.find_first_clear(from) != c.find_first(false, from))
                FAIL("find_first_clear(" << from << ")");
        }
        CHECK(c.bitmap.find_first_set(kNotFound) == kNotFound);
        CHECK(c.bitmap.find_first_clear(kNotFound) == kNotFound);
    }
}

TEST_CASE("bitmap: find_first_clear ignores the unused tail of the last word") {
    Checked c(70);
    c.set_range(0, 70);
    // Bits 70..127 of the storage are clear but outside the bitmap.
    CHECK(c.bitmap.find_first_clear() == kNotFound);
    CHECK(c.bitmap.find_first_clear(65) == kNotFound);
    CHECK(c.bitmap.find_clear_run(1) == kNotFound);
    c.clear_range(69, 1);
    CHECK(c.bitmap.find_first_clear() == 69);
    CHECK(c.bitmap.find_clear_run(1) == 69);
    CHECK(c.bitmap.find_clear_run(2) == kNotFound);
}

TEST_CASE("bitmap: find_clear_run edge cases") {
    Checked c(256);
    c.set_range(0, 3);
    c.set_range(10, 1);
    c.set_range(64, 64);
    // Clear: 3..9, 11..63, 128..255.

    CHECK(c.bitmap.find_clear_run(0) == kNotFound);  // an empty run is not a request
    CHECK(c.bitmap.find_clear_run(1) == 3);
    CHECK(c.bitmap.find_clear_run(7) == 3);
    CHECK(c.bitmap.find_clear_run(8) == 11);
    CHECK(c.bitmap.find_clear_run(53) == 11);
    CHECK(c.bitmap.find_clear_run(54) == 128);
    CHECK(c.bitmap.find_clear_run(128) == 128);
    CHECK(c.bitmap.find_clear_run(129) == kNotFound);
    CHECK(c.bitmap.find_clear_run(257) == kNotFound);
    CHECK(c.bitmap.find_clear_run(~usize{0}) == kNotFound);

    SECTION("alignment") {
        CHECK(c.bitmap.find_clear_run(1, 4) == 4);
        CHECK(c.bitmap.find_clear_run(6, 4) == 4);  // 4..9 fits exactly before bit 10
        CHECK(c.bitmap.find_clear_run(7, 4) == 12);
        CHECK(c.bitmap.find_clear_run(4, 8) == 16);
        CHECK(c.bitmap.find_clear_run(1, 64) == 128);
        CHECK(c.bitmap.find_clear_run(1, 128) == 128);
        CHECK(c.bitmap.find_clear_run(1, 256) == kNotFound);  // only 0 is aligned, and it is set
        CHECK(c.bitmap.find_clear_run(1, u64{1} << 63) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 0) == kNotFound);  // not a power of two
        CHECK(c.bitmap.find_clear_run(1, 3) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 12) == kNotFound);
    }
    SECTION("from") {
        CHECK(c.bitmap.find_clear_run(1, 1, 5) == 5);
        CHECK(c.bitmap.find_clear_run(5, 1, 5) == 5);
        CHECK(c.bitmap.find_clear_run(6, 1, 5) == 11);
        CHECK(c.bitmap.find_clear_run(1, 1, 10) == 11);
        CHECK(c.bitmap.find_clear_run(1, 8, 9) == 16);  // from rounds up to the alignment
        CHECK(c.bitmap.find_clear_run(1, 1, 255) == 255);
        CHECK(c.bitmap.find_clear_run(2, 1, 255) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 1, 256) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 1, 100000) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 1, kNotFound) == kNotFound);
        // Rounding a from near the top of the address space up must not wrap around to 0.
        CHECK(c.bitmap.find_clear_run(1, 2, kNotFound) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 4, kNotFound - 1) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 4096, kNotFound - 5) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, u64{1} << 63, (u64{1} << 63) + 1) == kNotFound);
    }
    SECTION("limit") {
        CHECK(c.bitmap.find_clear_run(1, 1, 0, 0) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 1, 0, 3) == kNotFound);
        CHECK(c.bitmap.find_clear_run(1, 1, 0, 4) == 3);  // the run may end exactly at the limit
        CHECK(c.bitmap.find_clear_run(7, 1, 0, 10) == 3);
        CHECK(c.bitmap.find_clear_run(8, 1, 0, 64) == 11);
        CHECK(c.bitmap.find_clear_run(54, 1, 0, 181) == kNotFound);
        CHECK(c.bitmap.find_clear_run(54, 1, 0, 182) == 128);
        CHECK(c.bitmap.find_clear_run(128, 1, 0, 100000) == 128);  // limit clamps to the size
        CHECK(c.bitmap.find_clear_run(1, 1, 20, 20) == kNotFound);  // from == limit
        CHECK(c.bitmap.find_clear_run(1, 1, 30, 20) == kNotFound);  // from > limit
    }
}

TEST_CASE("bitmap: randomized operations agree with a brute-force model") {
    std::mt19937_64 rng(0x1a3117aULL);  // fixed seed: failures reproduce
    auto below = [&](usize n) { return static_cast<usize>(rng() % n); };

    for (usize bits : kSizes) {
        INFO("bits " << bits);
        Checked c(bits);
        for (int step = 0; step < 400; ++step) {
            // Mostly short ranges, sometimes long or clamped ones, so runs of every length occur.
            const usize first = below(bits + 8);
            const usize count = below(4) == 0 ? below(bits + 70) : below(12);
            if (below(2) == 0) {
                c.set_range(first, count);
            } else {
                c.clear_range(first, count);
            }
            if (step % 20 == 0) c.verify();

            const usize from = below(bits + 8);
            REQUIRE(c.bitmap.find_first_set(from) == c.find_first(true, from));
            REQUIRE(c.bitmap.find_first_clear(from) == c.find_first(false, from));

            const usize run = 1 + below(below(3) == 0 ? bits + 2 : 10);
            const usize align = usize{1} << below(8);
            const usize run_from = below(3) == 0 ? 0 : below(bits + 4);
            const usize limit = below(3) == 0 ? kNotFound : below(bits + 16);
            INFO("find_clear_run(" << run << ", " << align << ", " << run_from << ", " << limit
                                   << ")");
            REQUIRE(c.bitmap.find_clear_run(run, align, run_from, limit) ==
                    c.find_clear_run(run, align, run_from, limit));
        }
        c.verify();
    }
}
