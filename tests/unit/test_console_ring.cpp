#include <catch2/catch.hpp>

#include <dom0/toolstack/console_ring.h>

#include <memory>
#include <string>

using namespace lamina;
using namespace lamina::toolstack;

namespace {

constexpr u32 kOut = LAMINA_CONSOLE_RING_OUT_SIZE;
constexpr u32 kIn = LAMINA_CONSOLE_RING_IN_SIZE;

// The page a domain shares, and the domain's side of it: it produces `out` and consumes `in`.
struct Domain {
    std::unique_ptr<lamina_console_ring> ring = std::make_unique<lamina_console_ring>();
    ConsoleRing dom0;

    Domain() { dom0.attach(ring.get()); }

    void print(const std::string& text) {
        for (char c : text) ring->out[ring->out_prod++ % kOut] = c;
    }
    std::string drain(usize chunk = 4096) {
        std::string out;
        std::string buffer(chunk, '\0');
        while (usize n = dom0.read_output(buffer.data(), chunk)) out.append(buffer.data(), n);
        return out;
    }
    std::string typed() {
        std::string out;
        while (ring->in_cons != ring->in_prod) out.push_back(ring->in[ring->in_cons++ % kIn]);
        return out;
    }
};

struct Text final : Sink {
    std::string text;
    void write(const char* data, usize length) override { text.append(data, length); }
};

std::string pattern(size_t length, size_t seed = 0) {
    std::string s(length, '\0');
    for (size_t i = 0; i < length; ++i) s[i] = static_cast<char>('a' + (seed + i) % 26);
    return s;
}

}  // namespace

TEST_CASE("console ring: output is read in order and the consumer index published") {
    Domain d;
    CHECK(d.drain().empty());
    d.print("hello\n");
    char buffer[4];
    CHECK(d.dom0.read_output(buffer, sizeof(buffer)) == 4);
    CHECK(std::string(buffer, 4) == "hell");
    CHECK(d.ring->out_cons == 4);
    CHECK(d.drain() == "o\n");
    CHECK(d.ring->out_cons == 6);
    CHECK(d.dom0.resyncs() == 0);
}

TEST_CASE("console ring: output wraps around the ring and the 32-bit indices") {
    Domain d;
    SECTION("around the ring") {
        d.ring->out_prod = d.ring->out_cons = kOut - 3;
        d.dom0.attach(d.ring.get());
        d.print("abcdef");
        CHECK(d.ring->out[kOut - 1] == 'c');
        CHECK(d.ring->out[0] == 'd');
        CHECK(d.drain() == "abcdef");
    }
    SECTION("a full ring, many times over") {
        for (int round = 0; round < 5; ++round) {
            const std::string text = pattern(kOut, round);
            d.print(text);
            CHECK(d.drain(1000) == text);
        }
    }
    SECTION("across 2^32") {
        d.ring->out_prod = d.ring->out_cons = 0xffffffff - 10;
        d.ring->in_prod = d.ring->in_cons = 0xffffffff - 1;
        d.dom0.attach(d.ring.get());
        const std::string text = pattern(100);
        d.print(text);
        CHECK(d.ring->out_prod < 100);
        CHECK(d.drain() == text);
        CHECK(d.dom0.write_input("wrap", 4) == 4);
        CHECK(d.ring->in_prod == 2);
        CHECK(d.typed() == "wrap");
    }
    CHECK(d.dom0.resyncs() == 0);
}

TEST_CASE("console ring: hostile producer indices are never a copy length") {
    Domain d;
    d.print("before");
    CHECK(d.drain() == "before");
    SECTION("more than the ring ahead") {
        d.ring->out_prod += kOut + 1;
        CHECK(d.drain().empty());
        CHECK(d.dom0.resyncs() == 1);
        // From there on, output is believed again.
        d.print("after");
        CHECK(d.drain() == "after");
    }
    SECTION("behind the consumer") {
        d.ring->out_prod -= 1;
        CHECK(d.drain().empty());
        CHECK(d.dom0.resyncs() == 1);
        CHECK(d.ring->out_cons == d.ring->out_prod);
    }
    SECTION("the largest values") {
        for (u32 prod : {0xffffffffu, 0x80000000u, 0x7fffffffu}) {
            d.ring->out_prod = prod;
            CHECK(d.drain().empty());
        }
        CHECK(d.dom0.resyncs() == 3);
    }
    SECTION("exactly a ring ahead is a full ring, not a lie") {
        d.ring->out_prod += kOut;
        CHECK(d.drain().size() == kOut);
        CHECK(d.dom0.resyncs() == 0);
    }
    SECTION("a consumer index the domain overwrites is not Dom0's") {
        d.ring->out_cons = 12345;
        d.print("next");
        CHECK(d.drain() == "next");
    }
}

TEST_CASE("console ring: input goes in as far as it fits, and wraps") {
    Domain d;
    CHECK(d.dom0.write_input("ls\n", 3) == 3);
    CHECK(d.ring->in_prod == 3);
    CHECK(d.typed() == "ls\n");
    const std::string big = pattern(kIn + 100);
    CHECK(d.dom0.write_input(big.data(), big.size()) == kIn);
    CHECK(d.dom0.write_input("x", 1) == 0);  // full until the domain reads
    CHECK(d.typed() == big.substr(0, kIn));
    CHECK(d.dom0.write_input(big.data() + kIn, 100) == 100);
    CHECK(d.typed() == big.substr(kIn));
    CHECK(d.dom0.resyncs() == 0);
}

TEST_CASE("console ring: hostile consumer indices of the input") {
    Domain d;
    d.dom0.write_input("abc", 3);
    SECTION("ahead of what Dom0 wrote") {
        d.ring->in_cons = 1000;
        CHECK(d.dom0.write_input("de", 2) == 2);
        CHECK(d.dom0.resyncs() == 1);
        CHECK(d.ring->in_prod == 1002);
        CHECK(d.typed() == "de");
    }
    SECTION("far behind") {
        d.ring->in_cons = 0x80000000u;
        CHECK(d.dom0.write_input(pattern(5000).data(), 5000) == kIn);
        CHECK(d.dom0.resyncs() == 1);
    }
    SECTION("a producer index the domain overwrites is not Dom0's") {
        d.ring->in_prod = 77;
        CHECK(d.dom0.write_input("d", 1) == 1);
        CHECK(d.ring->in_prod == 4);
        CHECK(d.typed() == "abcd");
    }
}

TEST_CASE("console history: the last 4 KiB, oldest first") {
    ConsoleHistory history;
    Text out;
    history.replay(out);
    CHECK(out.text.empty());
    history.append("one ", 4);
    history.append("two", 3);
    history.replay(out);
    CHECK(out.text == "one two");
    const std::string long_text = pattern(ConsoleHistory::kCapacity * 2 + 7);
    for (size_t at = 0; at < long_text.size(); at += 1000)
        history.append(long_text.data() + at, std::min<size_t>(1000, long_text.size() - at));
    out.text.clear();
    history.replay(out);
    CHECK(out.text == long_text.substr(long_text.size() - ConsoleHistory::kCapacity));
    history.append(long_text.data(), long_text.size());
    out.text.clear();
    history.replay(out);
    CHECK(out.text == long_text.substr(long_text.size() - ConsoleHistory::kCapacity));
}
