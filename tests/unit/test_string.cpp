#include <catch2/catch.hpp>

#include <lamina/string.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

using namespace lamina;

namespace {

int sign(int v) { return (v > 0) - (v < 0); }

// parse_u64 over a whole std::string (the parser takes a length, not a terminator).
bool parse(const std::string& text, u64* out, bool allow_suffix = false) {
    return str::parse_u64(text.data(), text.size(), out, allow_suffix);
}

}  // namespace

TEST_CASE("string: length and length_bounded") {
    CHECK(str::length("") == 0);
    CHECK(str::length("a") == 1);
    CHECK(str::length("hypervisor") == 10);
    CHECK(str::length("ab\0cd") == 2);

    CHECK(str::length_bounded("hello", 0) == 0);
    CHECK(str::length_bounded("hello", 3) == 3);
    CHECK(str::length_bounded("hello", 5) == 5);
    CHECK(str::length_bounded("hello", 100) == 5);
    CHECK(str::length_bounded("", 10) == 0);

    // The bound is a promise not to read past max bytes: an unterminated buffer is fine.
    const char unterminated[4] = {'w', 'x', 'y', 'z'};
    CHECK(str::length_bounded(unterminated, sizeof(unterminated)) == 4);
}

TEST_CASE("string: compare orders like strcmp, bytes as unsigned") {
    CHECK(str::compare("", "") == 0);
    CHECK(str::compare("abc", "abc") == 0);
    CHECK(str::compare("abc", "abd") < 0);
    CHECK(str::compare("abd", "abc") > 0);
    CHECK(str::compare("ab", "abc") < 0);
    CHECK(str::compare("abc", "ab") > 0);
    CHECK(str::compare("", "a") < 0);
    // 0xff must sort after 'a', which a signed-char comparison would get wrong.
    CHECK(str::compare("\xff", "a") > 0);
    CHECK(str::compare("a", "\xff") < 0);

    const char* words[] = {"", "a", "ab", "abc", "b", "B", "zz", "\x80", "\xfe\x01", "a\xff"};
    for (const char* a : words) {
        for (const char* b : words) {
            INFO(a << " vs " << b);
            CHECK(sign(str::compare(a, b)) == sign(std::strcmp(a, b)));
            CHECK(str::equal(a, b) == (std::strcmp(a, b) == 0));
        }
    }
}

TEST_CASE("string: compare_n stops at n or at the terminator") {
    CHECK(str::compare_n("abcdef", "abcxyz", 0) == 0);
    CHECK(str::compare_n("abcdef", "abcxyz", 3) == 0);
    CHECK(str::compare_n("abcdef", "abcxyz", 4) < 0);
    CHECK(str::compare_n("abcxyz", "abcdef", 4) > 0);
    CHECK(str::compare_n("ab", "ab", 10) == 0);
    CHECK(str::compare_n("ab", "abc", 10) < 0);
    CHECK(str::compare_n("abc", "ab", 10) > 0);
    CHECK(str::compare_n("\xff", "a", 1) > 0);

    // Nothing after the common terminator is read, whatever n says.
    const char a[] = {'x', '\0', 'P'};
    const char b[] = {'x', '\0', 'Q'};
    CHECK(str::compare_n(a, b, 3) == 0);
}

TEST_CASE("string: starts_with") {
    CHECK(str::starts_with("console=serial", "console="));
    CHECK(str::starts_with("console", "console"));
    CHECK(str::starts_with("anything", ""));
    CHECK(str::starts_with("", ""));
    CHECK_FALSE(str::starts_with("con", "console"));
    CHECK_FALSE(str::starts_with("", "a"));
    CHECK_FALSE(str::starts_with("Console", "console"));
}

TEST_CASE("string: copy_bytes, fill_bytes and compare_bytes") {
    std::vector<u8> source(300);
    std::iota(source.begin(), source.end(), u8{7});
    std::vector<u8> target(300, 0xAA);

    str::copy_bytes(target.data(), source.data(), 0);
    CHECK(target[0] == 0xAA);
    str::copy_bytes(target.data() + 1, source.data(), 257);
    CHECK(target[0] == 0xAA);
    CHECK(std::memcmp(target.data() + 1, source.data(), 257) == 0);
    CHECK(target[258] == 0xAA);

    str::fill_bytes(target.data() + 10, 0x5C, 20);
    CHECK(target[9] == source[8]);
    for (usize i = 10; i < 30; ++i) CHECK(target[i] == 0x5C);
    CHECK(target[30] == source[29]);
    str::fill_bytes(target.data(), 0, 0);
    CHECK(target[0] == 0xAA);

    const u8 x[] = {1, 2, 3, 0x80};
    const u8 y[] = {1, 2, 3, 0x7f};
    CHECK(str::compare_bytes(x, y, 0) == 0);
    CHECK(str::compare_bytes(x, y, 3) == 0);
    CHECK(str::compare_bytes(x, y, 4) > 0);  // bytes compare unsigned: 0x80 > 0x7f
    CHECK(str::compare_bytes(y, x, 4) < 0);
    // Embedded zeros are data, not terminators.
    const u8 z1[] = {0, 0, 1};
    const u8 z2[] = {0, 0, 2};
    CHECK(str::compare_bytes(z1, z2, 3) < 0);
}

TEST_CASE("string: move_bytes handles overlap in both directions") {
    // Every (source, destination, length) inside a small buffer, against memmove.
    constexpr usize kSize = 24;
    for (usize src = 0; src < kSize; ++src) {
        for (usize dst = 0; dst < kSize; ++dst) {
            for (usize n = 0; n <= kSize - max(src, dst); ++n) {
                u8 actual[kSize];
                u8 expected[kSize];
                for (usize i = 0; i < kSize; ++i) actual[i] = expected[i] = static_cast<u8>(i * 7 + 1);
                str::move_bytes(actual + dst, actual + src, n);
                std::memmove(expected + dst, expected + src, n);
                if (std::memcmp(actual, expected, kSize) != 0) {
                    FAIL("move_bytes(dst=" << dst << ", src=" << src << ", n=" << n << ")");
                }
            }
        }
    }
    SUCCEED();
}

TEST_CASE("string: copy_bounded truncates, terminates and reports the source length") {
    char buffer[8];
    std::memset(buffer, 'Q', sizeof(buffer));
    CHECK(str::copy_bounded(buffer, "abc", sizeof(buffer)) == 3);
    CHECK(std::string(buffer) == "abc");
    CHECK(buffer[4] == 'Q');  // nothing beyond the terminator is touched

    CHECK(str::copy_bounded(buffer, "0123456", sizeof(buffer)) == 7);  // exactly fits
    CHECK(std::string(buffer) == "0123456");

    CHECK(str::copy_bounded(buffer, "0123456789", sizeof(buffer)) == 10);
    CHECK(std::string(buffer) == "0123456");

    CHECK(str::copy_bounded(buffer, "xyz", 1) == 3);
    CHECK(buffer[0] == '\0');

    CHECK(str::copy_bounded(buffer, "", sizeof(buffer)) == 0);
    CHECK(buffer[0] == '\0');

    // size 0: the destination is not written at all.
    char untouched = 'U';
    CHECK(str::copy_bounded(&untouched, "xyz", 0) == 3);
    CHECK(untouched == 'U');
}

TEST_CASE("string: parse_u64 decimal") {
    u64 v = 12345;
    CHECK(parse("0", &v));
    CHECK(v == 0);
    CHECK(parse("42", &v));
    CHECK(v == 42);
    CHECK(parse("007", &v));
    CHECK(v == 7);
    CHECK(parse("18446744073709551615", &v));
    CHECK(v == UINT64_MAX);

    // The length, not a terminator, ends the number.
    CHECK(str::parse_u64("12345", 3, &v));
    CHECK(v == 123);
}

TEST_CASE("string: parse_u64 hexadecimal") {
    u64 v = 0;
    CHECK(parse("0x0", &v));
    CHECK(v == 0);
    CHECK(parse("0x1f", &v));
    CHECK(v == 0x1f);
    CHECK(parse("0XABCDEF", &v));
    CHECK(v == 0xabcdef);
    CHECK(parse("0xDeadBeef", &v));
    CHECK(v == 0xdeadbeef);
    CHECK(parse("0xffffffffffffffff", &v));
    CHECK(v == UINT64_MAX);
    CHECK(parse("0x0000000000000000001", &v));  // leading zeros never overflow
    CHECK(v == 1);
}

TEST_CASE("string: parse_u64 rejects junk and overflow without touching the output") {
    const char* rejected[] = {
        "",       " 1",     "1 ",     "+1",     "-1",   "abc",  "12a",  "0x",     "0x ",
        "0xg",    "0x1g",   "1.5",    "ff",     "x10",  "0xx1", "1K",   "0x10M",  "08z",
        "18446744073709551616",        "99999999999999999999",      "0x10000000000000000",
        "0x1ffffffffffffffff",
    };
    for (const char* text : rejected) {
        INFO('"' << text << '"');
        u64 v = 0x5A5A;
        CHECK_FALSE(parse(text, &v));
        CHECK(v == 0x5A5A);
    }
    u64 v = 0x5A5A;
    CHECK_FALSE(str::parse_u64("123", 0, &v));
    CHECK(v == 0x5A5A);
}

TEST_CASE("string: parse_u64 size suffixes") {
    u64 v = 0;
    CHECK(parse("4K", &v, true));
    CHECK(v == 4 * KiB);
    CHECK(parse("4k", &v, true));
    CHECK(v == 4 * KiB);
    CHECK(parse("16M", &v, true));
    CHECK(v == 16 * MiB);
    CHECK(parse("16m", &v, true));
    CHECK(v == 16 * MiB);
    CHECK(parse("2G", &v, true));
    CHECK(v == 2 * GiB);
    CHECK(parse("3g", &v, true));
    CHECK(v == 3 * GiB);
    CHECK(parse("0x10M", &v, true));
    CHECK(v == 16 * MiB);
    CHECK(parse("0K", &v, true));
    CHECK(v == 0);
    CHECK(parse("1234", &v, true));  // the suffix is optional
    CHECK(v == 1234);

    // The largest value that still fits after the shift, and the first that does not.
    CHECK(parse("17179869183G", &v, true));
    CHECK(v == 17179869183ull << 30);
    CHECK(parse("17592186044415M", &v, true));
    CHECK(v == 17592186044415ull << 20);
    CHECK(parse("18014398509481983K", &v, true));
    CHECK(v == 18014398509481983ull << 10);

    const char* rejected[] = {"K", "0xK", "4KB", "4KK", "4T", "4 K", "4b", "17179869184G",
                              "17592186044416M", "18014398509481984K", "0xffffffffffffffffK"};
    for (const char* text : rejected) {
        INFO('"' << text << '"');
        u64 out = 77;
        CHECK_FALSE(parse(text, &out, true));
        CHECK(out == 77);
    }
}
