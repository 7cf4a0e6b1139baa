#include <catch2/catch.hpp>

#include <lamina/format.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace lamina;

namespace {

struct StringSink final : Sink {
    std::string text;
    void write(const char* s, usize n) override { text.append(s, n); }
};

template <typename... Args>
std::string render(const char* fmt, const Args&... args) {
    StringSink sink;
    format(sink, fmt, args...);
    return sink.text;
}

enum class SmallEnum : u8 { Zero, One, Three = 3, Max = 255 };
enum class SignedEnum : int { Negative = -2, Positive = 9 };
enum PlainEnum { kPlainSeven = 7 };

}  // namespace

TEST_CASE("format: literal text and empty formats") {
    CHECK(render("") == "");
    CHECK(render("plain text") == "plain text");
    CHECK(render("no placeholders", 1, 2) == "no placeholders");
    CHECK(render("a}b") == "a}b");  // a lone closing brace is literal
}

TEST_CASE("format: signed and unsigned integers in decimal") {
    CHECK(render("{}", 0) == "0");
    CHECK(render("{}", 42) == "42");
    CHECK(render("{}", -7) == "-7");
    CHECK(render("{}", INT32_MIN) == "-2147483648");
    CHECK(render("{}", INT64_MAX) == "9223372036854775807");
    CHECK(render("{}", INT64_MIN) == "-9223372036854775808");
    CHECK(render("{}", UINT64_MAX) == "18446744073709551615");
    CHECK(render("{}", 4000000000u) == "4000000000");
    CHECK(render("{}", static_cast<short>(-300)) == "-300");
    CHECK(render("{}", static_cast<unsigned short>(65535)) == "65535");
    CHECK(render("{}", 123L) == "123");
    CHECK(render("{}", 123UL) == "123");
    CHECK(render("{:d}", -5) == "-5");
    // u8/i8 are numbers, not characters.
    CHECK(render("{}", u8{200}) == "200");
    CHECK(render("{}", i8{-5}) == "-5");
    CHECK(render("{} {} {}", 1, 22, 333) == "1 22 333");
}

TEST_CASE("format: hex, binary and octal") {
    CHECK(render("{:x}", 255u) == "ff");
    CHECK(render("{:X}", 255u) == "FF");
    CHECK(render("{:#x}", 255u) == "0xff");
    CHECK(render("{:#X}", 0xabcdefu) == "0xABCDEF");
    CHECK(render("{:x}", 0u) == "0");
    CHECK(render("{:#x}", 0u) == "0x0");
    CHECK(render("{:x}", UINT64_MAX) == "ffffffffffffffff");
    CHECK(render("{:#x}", 0x1000) == "0x1000");  // a positive signed value renders the same
    CHECK(render("{:b}", 5u) == "101");
    CHECK(render("{:#b}", 5u) == "0b101");
    CHECK(render("{:b}", 0u) == "0");
    CHECK(render("{:b}", UINT64_MAX) == std::string(64, '1'));  // the widest rendering
    CHECK(render("{:#b}", UINT64_MAX) == "0b" + std::string(64, '1'));
    CHECK(render("{:o}", 8u) == "10");
    CHECK(render("{:#o}", 8u) == "0o10");
    CHECK(render("{:o}", UINT64_MAX) == "1777777777777777777777");
}

TEST_CASE("format: width, zero padding and alignment") {
    CHECK(render("{:08x}", 0xbeefu) == "0000beef");
    CHECK(render("{:#010x}", 0xbeefu) == "0x0000beef");  // the prefix counts toward the width
    CHECK(render("{:016X}", 0xfee00000u) == "00000000FEE00000");
    CHECK(render("{:04}", 7) == "0007");
    CHECK(render("{:05}", -42) == "-0042");  // the sign goes before the zeros
    CHECK(render("{:8}", 42) == "      42");  // numbers align right by default
    CHECK(render("{:8}", "ab") == "ab      ");  // text aligns left by default
    CHECK(render("{:>8}", "ab") == "      ab");
    CHECK(render("{:<8}", 42) == "42      ");
    CHECK(render("{:<5}", -3) == "-3   ");
    CHECK(render("{:>5}", -3) == "   -3");
    CHECK(render("{:>8x}", 0xabu) == "      ab");
    CHECK(render("{:<08x}", 0xabu) == "ab      ");  // explicit alignment wins over zero fill
    CHECK(render("{:2}", 12345) == "12345");  // never truncated to the width
    CHECK(render("{:3}", "toolong") == "toolong");
    CHECK(render("{:0}", 5) == "5");
    CHECK(render("[{:40}]", 1) == "[" + std::string(39, ' ') + "1]");  // more than one fill chunk
    CHECK(render("{:>6}", true) == "  true");
    CHECK(render("{:<3}|", 'c') == "c  |");
}

TEST_CASE("format: an absurd width is capped, not trusted") {
    const std::string out = render("{:99999999999999999999999}", 1);
    CHECK(out.size() < 10000);
    CHECK(out.back() == '1');
}

TEST_CASE("format: characters and booleans") {
    CHECK(render("{}", 'A') == "A");
    CHECK(render("{}{}{}", 'a', 'b', 'c') == "abc");
    CHECK(render("{:x}", 'A') == "41");
    CHECK(render("{:#X}", 'z') == "0x7A");
    CHECK(render("{:d}", 'A') == "65");
    CHECK(render("{:x}", static_cast<char>(-1)) == "ff");  // the byte, not a sign-extended value
    CHECK(render("{}", true) == "true");
    CHECK(render("{}", false) == "false");
}

TEST_CASE("format: strings, including null") {
    const char* name = "vcpu0";
    char mutable_name[] = "dom0";
    const char* null_string = nullptr;
    char* null_mutable = nullptr;
    CHECK(render("{}", name) == "vcpu0");
    CHECK(render("{}", mutable_name) == "dom0");
    CHECK(render("{}", "") == "");
    CHECK(render("<{}>", null_string) == "<(null)>");
    CHECK(render("<{}>", null_mutable) == "<(null)>");
    CHECK(render("{:>8}", null_string) == "  (null)");
    // Braces inside an argument are data, not format syntax.
    CHECK(render("{}", "{}{{") == "{}{{");
}

TEST_CASE("format: pointers render as 0x hex") {
    int object = 0;
    const auto address = reinterpret_cast<uptr>(&object);
    char expected[32];
    std::snprintf(expected, sizeof(expected), "0x%llx", static_cast<unsigned long long>(address));
    CHECK(render("{}", static_cast<void*>(&object)) == expected);
    CHECK(render("{}", static_cast<const void*>(&object)) == expected);
    CHECK(render("{}", reinterpret_cast<void*>(0x1234)) == "0x1234");
    CHECK(render("{}", static_cast<void*>(nullptr)) == "0x0");
    CHECK(render("{:018}", reinterpret_cast<const void*>(0xdead)) == "0x000000000000dead");
    CHECK(render("{:d}", reinterpret_cast<void*>(0x10)) == "0x10");  // always hex
}

TEST_CASE("format: enums render as their underlying value") {
    CHECK(render("{}", SmallEnum::Three) == "3");
    CHECK(render("{}", SmallEnum::Max) == "255");
    CHECK(render("{:#x}", SmallEnum::Max) == "0xff");
    CHECK(render("{}", SignedEnum::Negative) == "-2");
    CHECK(render("{}", SignedEnum::Positive) == "9");
    CHECK(render("{}", kPlainSeven) == "7");
}

TEST_CASE("format: brace escapes") {
    CHECK(render("{{") == "{");
    CHECK(render("}}") == "}");
    CHECK(render("{{}}") == "{}");
    CHECK(render("{{{}}}", 5) == "{5}");
    CHECK(render("a {{b}} c") == "a {b} c");
    CHECK(render("{{{{") == "{{");
    CHECK(render("{{{} {}}}", 1, 2) == "{1 2}");
}

TEST_CASE("format: missing, surplus and malformed placeholders degrade gracefully") {
    CHECK(render("{}") == "{?}");
    CHECK(render("{} {}", 1) == "1 {?}");
    CHECK(render("{:x} {:#x} {}", 255u) == "ff {?} {?}");
    CHECK(render("{}", 1, 2, 3) == "1");
    CHECK(render("{} and {}", "a", "b", "c") == "a and b");

    // An unterminated placeholder is emitted verbatim and consumes nothing.
    CHECK(render("value {", 1) == "value {");
    CHECK(render("value {:x", 1) == "value {:x");
    CHECK(render("{", 1) == "{");
    CHECK(render("{} and {", 1) == "1 and {");
    CHECK(render("{} and {:08", 1, 2) == "1 and {:08");

    // Unknown specs still consume their argument and fall back to the default rendering.
    CHECK(render("{:q}", 5) == "5");
    CHECK(render("{:}", 5) == "5");
    CHECK(render("{name}", 5) == "5");
}

TEST_CASE("format: BufferSink truncates, counts and always terminates") {
    SECTION("output that fits") {
        char buffer[16];
        CHECK(format_to(buffer, sizeof(buffer), "id={}", 42) == 5);
        CHECK(std::string(buffer) == "id=42");
    }
    SECTION("exactly size - 1 characters") {
        char buffer[6];
        CHECK(format_to(buffer, sizeof(buffer), "{}", "hello") == 5);
        CHECK(std::string(buffer) == "hello");
    }
    SECTION("truncated output keeps counting what it needed") {
        // Heap-exact buffer, so any write past the end is an ASan error.
        std::vector<char> buffer(8, 'X');
        CHECK(format_to(buffer.data(), buffer.size(), "hello {}", "world") == 11);
        CHECK(std::string(buffer.data()) == "hello w");
        CHECK(buffer[7] == '\0');
    }
    SECTION("truncation in the middle of an argument") {
        std::vector<char> buffer(6, 'X');
        CHECK(format_to(buffer.data(), buffer.size(), "id={:#x}", 0xabcdefu) == 11);
        CHECK(std::string(buffer.data()) == "id=0x");
    }
    SECTION("size 1 holds only the terminator") {
        char buffer[1] = {'X'};
        CHECK(format_to(buffer, 1, "abc") == 3);
        CHECK(buffer[0] == '\0');
    }
    SECTION("size 0 writes nothing, even through a null buffer") {
        char canary = 'C';
        CHECK(format_to(&canary, 0, "abc {}", 12) == 6);
        CHECK(canary == 'C');
        CHECK(format_to(nullptr, 0, "{:#x}", 0x1234u) == 6);
    }
    SECTION("empty output") {
        char buffer[4] = {'X', 'X', 'X', 'X'};
        CHECK(format_to(buffer, sizeof(buffer), "") == 0);
        CHECK(buffer[0] == '\0');
        CHECK(buffer[1] == 'X');
    }
    SECTION("the buffer is terminated before anything is written") {
        char buffer[4] = {'X', 'X', 'X', 'X'};
        BufferSink sink(buffer, sizeof(buffer));
        CHECK(buffer[0] == '\0');
        CHECK(sink.needed() == 0);
        CHECK(sink.str() == buffer);
    }
    SECTION("several writes accumulate, then truncate") {
        char buffer[5];
        BufferSink sink(buffer, sizeof(buffer));
        format(sink, "ab");
        CHECK(std::string(sink.str()) == "ab");
        format(sink, "{}", 12);
        CHECK(std::string(sink.str()) == "ab12");
        format(sink, "xyz");
        CHECK(std::string(sink.str()) == "ab12");
        CHECK(sink.needed() == 7);
        sink.write("", 0);
        CHECK(sink.needed() == 7);
    }
    SECTION("needed matches the untruncated rendering") {
        const std::string full = render("{:#018x} {:>12} {} {:b}", 0x1234u, "right", -99, 6u);
        for (usize size = 0; size <= full.size() + 2; ++size) {
            std::vector<char> buffer(size + 1, 'Z');  // one guard byte past the claimed size
            const usize needed =
                format_to(size ? buffer.data() : nullptr, size, "{:#018x} {:>12} {} {:b}", 0x1234u,
                          "right", -99, 6u);
            INFO("size " << size);
            CHECK(needed == full.size());
            if (size > 0) CHECK(std::string(buffer.data()) == full.substr(0, size - 1));
            CHECK(buffer[size] == 'Z');
        }
    }
}
