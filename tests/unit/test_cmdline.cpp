#include <catch2/catch.hpp>

#include <hypervisor/boot/cmdline.h>

#include <string>

using namespace lamina;

namespace {

struct StringSink final : Sink {
    std::string text;
    void write(const char* s, usize n) override { text.append(s, n); }
    usize lines() const {
        usize n = 0;
        for (char c : text) n += c == '\n';
        return n;
    }
};

enum class Color : u8 { Red, Green, Blue };
constexpr const char* kColorNames[] = {"red", "green", "blue"};

// One field of every kind, with recognisable defaults.
struct Settings {
    bool verbose = false;
    bool fast = true;
    u32 count = 8;
    u16 small = 3;
    u64 memory = 0;
    Color color = Color::Green;
    char label[8] = "none";
};

struct Harness {
    Settings s;
    StringSink diagnostics;
    Option rows[7] = {
        Option::flag("verbose", &s.verbose, "talk more"),
        Option::flag("fast", &s.fast, "go fast"),
        Option::number("count", &s.count, 1, 256, "how many"),
        Option::number("small", &s.small, 0, 1000000, "capped by its type"),
        Option::size("memory", &s.memory, 0, 64 * GiB, "how much"),
        Option::choice("color", &s.color, kColorNames, "which color"),
        Option::text("label", s.label, sizeof(s.label), "a name"),
    };

    usize parse(const char* text) {
        return parse_command_line(text, OptionTable(rows), diagnostics);
    }
};

}  // namespace

TEST_CASE("cmdline: empty, null and blank lines change nothing") {
    for (const char* text : {static_cast<const char*>(nullptr), "", "   ", " \t\r\n "}) {
        Harness h;
        CHECK(h.parse(text) == 0);
        CHECK(h.diagnostics.text.empty());
        CHECK_FALSE(h.s.verbose);
        CHECK(h.s.count == 8);
        CHECK(h.s.color == Color::Green);
        CHECK(std::string(h.s.label) == "none");
    }
}

TEST_CASE("cmdline: booleans") {
    Harness h;

    SECTION("a bare flag is true, no-flag is false") {
        CHECK(h.parse("verbose no-fast") == 0);
        CHECK(h.s.verbose);
        CHECK_FALSE(h.s.fast);
    }
    SECTION("every boolean word") {
        for (const char* on : {"1", "on", "yes", "true", "enable"}) {
            h.s.verbose = false;
            CHECK(h.parse((std::string("verbose=") + on).c_str()) == 0);
            CHECK(h.s.verbose);
        }
        for (const char* off : {"0", "off", "no", "false", "disable"}) {
            h.s.verbose = true;
            CHECK(h.parse((std::string("verbose=") + off).c_str()) == 0);
            CHECK_FALSE(h.s.verbose);
        }
        CHECK(h.diagnostics.text.empty());
    }
    SECTION("a bad word keeps the default and says what is accepted") {
        CHECK(h.parse("fast=maybe") == 1);
        CHECK(h.s.fast);
        CHECK(h.diagnostics.text ==
              "cmdline: fast=maybe: not a boolean (expected on/off, yes/no, true/false, "
              "enable/disable or 1/0)\n");
    }
    SECTION("words are whole: prefixes and case variants are not booleans") {
        CHECK(h.parse("verbose=o verbose=onn verbose=ON verbose=") == 4);
        CHECK_FALSE(h.s.verbose);
    }
    SECTION("no- takes no value") {
        CHECK(h.parse("no-fast=1") == 1);
        CHECK(h.s.fast);
        CHECK(h.diagnostics.text == "cmdline: no-fast=1: 'no-' takes no value\n");
    }
    SECTION("no- applies to booleans only") {
        CHECK(h.parse("no-count") == 1);
        CHECK(h.s.count == 8);
        CHECK(h.diagnostics.text == "cmdline: no-count: 'no-' applies only to on/off options\n");
    }
}

TEST_CASE("cmdline: unsigned numbers") {
    Harness h;

    SECTION("decimal, hex and the range's ends") {
        CHECK(h.parse("count=1") == 0);
        CHECK(h.s.count == 1);
        CHECK(h.parse("count=256") == 0);
        CHECK(h.s.count == 256);
        CHECK(h.parse("count=0x10") == 0);
        CHECK(h.s.count == 16);
        CHECK(h.diagnostics.text.empty());
    }
    SECTION("out of range keeps the value and states the range") {
        CHECK(h.parse("count=0 count=257") == 2);
        CHECK(h.s.count == 8);
        CHECK(h.diagnostics.text ==
              "cmdline: count=0: out of range (expected 1..256)\n"
              "cmdline: count=257: out of range (expected 1..256)\n");
    }
    SECTION("not a number") {
        CHECK(h.parse("count=abc") == 1);
        CHECK(h.diagnostics.text == "cmdline: count=abc: not a number (expected 1..256)\n");
        for (const char* bad : {"count=", "count=-1", "count=1.5", "count=12x", "count=0x",
                                "count=99999999999999999999999", "count=4K"}) {
            StringSink sink;
            CHECK(parse_command_line(bad, OptionTable(h.rows), sink) == 1);
            CHECK(sink.text.find("not a number") != std::string::npos);
        }
        CHECK(h.s.count == 8);
    }
    SECTION("a bare name needs a value") {
        CHECK(h.parse("count") == 1);
        CHECK(h.diagnostics.text == "cmdline: count: needs a value (expected 1..256)\n");
    }
    SECTION("the range is capped by the field's type") {
        CHECK(h.parse("small=65535") == 0);
        CHECK(h.s.small == 65535);
        CHECK(h.parse("small=65536") == 1);
        CHECK(h.s.small == 65535);
        CHECK(h.diagnostics.text == "cmdline: small=65536: out of range (expected 0..65535)\n");
    }
    SECTION("the last occurrence wins; a bad one leaves the field as it was") {
        CHECK(h.parse("count=4 count=5 count=abc") == 1);
        CHECK(h.s.count == 5);
    }
}

TEST_CASE("cmdline: sizes take K, M and G suffixes") {
    Harness h;
    struct Case {
        const char* text;
        u64 value;
    };
    for (const Case& c : {Case{"memory=64K", 64 * KiB}, Case{"memory=512M", 512 * MiB},
                          Case{"memory=4G", 4 * GiB}, Case{"memory=4g", 4 * GiB},
                          Case{"memory=0x10M", 16 * MiB}, Case{"memory=0", 0},
                          Case{"memory=4096", 4096}, Case{"memory=64G", 64 * GiB}}) {
        CAPTURE(c.text);
        CHECK(h.parse(c.text) == 0);
        CHECK(h.s.memory == c.value);
    }
    h.s.memory = 0;
    CHECK(h.parse("memory=65G") == 1);
    CHECK(h.parse("memory=12T") == 1);
    CHECK(h.parse("memory=M") == 1);
    CHECK(h.parse("memory=1MB") == 1);
    CHECK(h.s.memory == 0);
    CHECK(h.diagnostics.text ==
          "cmdline: memory=65G: out of range (expected 0..64G)\n"
          "cmdline: memory=12T: not a number (expected 0..64G)\n"
          "cmdline: memory=M: not a number (expected 0..64G)\n"
          "cmdline: memory=1MB: not a number (expected 0..64G)\n");
}

TEST_CASE("cmdline: choices") {
    Harness h;
    CHECK(h.parse("color=blue") == 0);
    CHECK(h.s.color == Color::Blue);
    CHECK(h.parse("color=red") == 0);
    CHECK(h.s.color == Color::Red);
    CHECK(h.parse("color=purple color=Red color=bluee color= color") == 5);
    CHECK(h.s.color == Color::Red);
    CHECK(h.diagnostics.text.find("cmdline: color=purple: not a valid choice "
                                  "(expected red|green|blue)\n") == 0);
    CHECK(h.diagnostics.text.find("cmdline: color: needs a value (expected red|green|blue)\n") !=
          std::string::npos);
}

TEST_CASE("cmdline: strings and quoting") {
    Harness h;

    SECTION("a plain value") {
        CHECK(h.parse("label=disk0") == 0);
        CHECK(std::string(h.s.label) == "disk0");
    }
    SECTION("a quoted value keeps its spaces") {
        CHECK(h.parse("verbose label=\"a b  c\" count=3") == 0);
        CHECK(std::string(h.s.label) == "a b  c");
        CHECK(h.s.verbose);
        CHECK(h.s.count == 3);
    }
    SECTION("a quoted whole token") {
        CHECK(h.parse("\"label=x y\" \"verbose\"") == 0);
        CHECK(std::string(h.s.label) == "x y");
        CHECK(h.s.verbose);
    }
    SECTION("quoted values of other kinds") {
        CHECK(h.parse("count=\"12\" fast=\"off\" color=\"blue\"") == 0);
        CHECK(h.s.count == 12);
        CHECK_FALSE(h.s.fast);
        CHECK(h.s.color == Color::Blue);
    }
    SECTION("an empty value is an empty string") {
        CHECK(h.parse("label=") == 0);
        CHECK(std::string(h.s.label).empty());
        CHECK(h.parse("label=\"\"") == 0);
        CHECK(std::string(h.s.label).empty());
    }
    SECTION("the buffer's capacity, and one past it") {
        CHECK(h.parse("label=1234567") == 0);
        CHECK(std::string(h.s.label) == "1234567");
        CHECK(h.parse("label=12345678") == 1);
        CHECK(std::string(h.s.label) == "1234567");
        CHECK(h.diagnostics.text ==
              "cmdline: label=12345678: too long (expected at most 7 characters)\n");
    }
    SECTION("an unterminated quote swallows the rest of the line, which is ignored") {
        CHECK(h.parse("count=2 label=\"abc count=9 verbose") == 1);
        CHECK(h.s.count == 2);
        CHECK_FALSE(h.s.verbose);
        CHECK(std::string(h.s.label) == "none");
        CHECK(h.diagnostics.text ==
              "cmdline: label=\"abc count=9 verbose: unterminated quote\n");
    }
}

TEST_CASE("cmdline: unknown options and separators") {
    Harness h;

    SECTION("unknown names are reported one line each, and the rest still applies") {
        CHECK(h.parse("foo verbose bar=1 no-baz =5") == 4);
        CHECK(h.s.verbose);
        CHECK(h.diagnostics.text ==
              "cmdline: foo: unknown option\n"
              "cmdline: bar=1: unknown option\n"
              "cmdline: no-baz: unknown option\n"
              "cmdline: =5: unknown option\n");
        CHECK(h.diagnostics.lines() == 4);
    }
    SECTION("names are whole and case-sensitive") {
        CHECK(h.parse("verb Verbose verbosee count2=1 no- no") == 6);
        CHECK_FALSE(h.s.verbose);
    }
    SECTION("'-' and '_' in names are the same") {
        const Option rows[] = {Option::flag("emu_exit", &h.s.verbose, "")};
        CHECK(parse_command_line("emu-exit", rows, h.diagnostics) == 0);
        CHECK(h.s.verbose);
        CHECK(parse_command_line("no-emu_exit", rows, h.diagnostics) == 0);
        CHECK_FALSE(h.s.verbose);
        CHECK(parse_command_line("no-emu-exit emu_exit", rows, h.diagnostics) == 0);
        CHECK(h.s.verbose);
    }
    SECTION("a quoted token with a newline or an escape is still reported on one line") {
        // Found by tests/fuzz (multiboot2): the token was echoed raw, newline and all.
        CHECK(h.parse("\"count=1\n2\" \"label=\x1b[2J") == 2);
        CHECK(h.diagnostics.text ==
              "cmdline: \"count=1?2\": not a number (expected 1..256)\n"
              "cmdline: \"label=?[2J: unterminated quote\n");
        CHECK(h.diagnostics.lines() == 2);
    }
    SECTION("tabs and newlines separate tokens; only the first '=' splits") {
        CHECK(h.parse("\tverbose\ncount=7\r\nlabel=a=b ") == 0);
        CHECK(h.s.verbose);
        CHECK(h.s.count == 7);
        CHECK(std::string(h.s.label) == "a=b");
    }
}

TEST_CASE("cmdline: very long tokens") {
    Harness h;

    SECTION("an unknown token is shortened in the report") {
        const std::string token(10000, 'x');
        CHECK(h.parse(token.c_str()) == 1);
        CHECK(h.diagnostics.text ==
              "cmdline: " + std::string(64, 'x') + "...: unknown option\n");
    }
    SECTION("a token of 64 characters is echoed whole, one more is shortened") {
        const std::string exact(64, 'z');
        CHECK(h.parse(exact.c_str()) == 1);
        CHECK(h.parse((exact + "z").c_str()) == 1);
        CHECK(h.diagnostics.text == "cmdline: " + exact + ": unknown option\n" +
                                        "cmdline: " + exact + "...: unknown option\n");
    }
    SECTION("a long string value is refused without overflowing the buffer") {
        const std::string text = "label=" + std::string(5000, 'y');
        CHECK(h.parse(text.c_str()) == 1);
        CHECK(std::string(h.s.label) == "none");
    }
    SECTION("a long run of leading zeros is still a number") {
        const std::string text = "count=" + std::string(5000, '0') + "42";
        CHECK(h.parse(text.c_str()) == 0);
        CHECK(h.s.count == 42);
    }
    SECTION("many tokens") {
        std::string text;
        for (int i = 0; i < 2000; ++i) text += "count=" + std::to_string(i % 200 + 1) + " ";
        CHECK(h.parse(text.c_str()) == 0);
        CHECK(h.s.count == 1999 % 200 + 1);
    }
}

TEST_CASE("cmdline: help lists every option with its current value") {
    Harness h;
    StringSink help;
    print_option_help(OptionTable(h.rows), help);
    CHECK(help.lines() == 7);
    CHECK(help.text.find("  [no-]verbose                     talk more (default off)\n") !=
          std::string::npos);
    CHECK(help.text.find("count=1..256") != std::string::npos);
    CHECK(help.text.find("(default 8)") != std::string::npos);
    CHECK(help.text.find("memory=0..64G") != std::string::npos);
    CHECK(help.text.find("color=red|green|blue") != std::string::npos);
    CHECK(help.text.find("which color (default green)") != std::string::npos);
    CHECK(help.text.find("label=<text>") != std::string::npos);
    CHECK(help.text.find("a name (default \"none\")") != std::string::npos);
}

TEST_CASE("cmdline: the hypervisor's options") {
    HypervisorOptions options;
    StringSink diagnostics;

    SECTION("defaults") {
        CHECK(parse_hypervisor_command_line("", options, diagnostics) == 0);
        CHECK(options.console == HypervisorOptions::Console::Com1);
        CHECK(options.baud == 115200);
        CHECK(options.log_level == log::Level::Info);
        CHECK(options.max_cpus == 256);
        CHECK_FALSE(options.selftest);
        CHECK_FALSE(options.emu_exit);
        CHECK(options.apic == HypervisorOptions::Apic::Auto);
        CHECK(options.dom0_mem == 0);
    }
    SECTION("what the test ISO passes") {
        CHECK(parse_hypervisor_command_line("selftest emu_exit", options, diagnostics) == 0);
        CHECK(options.selftest);
        CHECK(options.emu_exit);
    }
    SECTION("every option set") {
        CHECK(parse_hypervisor_command_line("console=com2 baud=9600 loglvl=debug smp=4 selftest "
                                            "emu-exit apic=x2apic dom0_mem=512M",
                                            options, diagnostics) == 0);
        CHECK(diagnostics.text.empty());
        CHECK(options.console == HypervisorOptions::Console::Com2);
        CHECK(options.baud == 9600);
        CHECK(options.log_level == log::Level::Debug);
        CHECK(options.max_cpus == 4);
        CHECK(options.selftest);
        CHECK(options.emu_exit);
        CHECK(options.apic == HypervisorOptions::Apic::X2Apic);
        CHECK(options.dom0_mem == 512 * MiB);
    }
    SECTION("the other choices") {
        CHECK(parse_hypervisor_command_line("console=none loglvl=error apic=xapic", options,
                                            diagnostics) == 0);
        CHECK(options.console == HypervisorOptions::Console::None);
        CHECK(options.log_level == log::Level::Error);
        CHECK(options.apic == HypervisorOptions::Apic::XApic);
    }
    SECTION("bad values keep the defaults, one line each") {
        CHECK(parse_hypervisor_command_line(
                  "smp=abc smp=0 baud=230400 console=com3 loglvl=trace apic=on "
                  "dom0_mem=5T no-smp frobnicate",
                  options, diagnostics) == 9);
        CHECK(diagnostics.text ==
              "cmdline: smp=abc: not a number (expected 1..256)\n"
              "cmdline: smp=0: out of range (expected 1..256)\n"
              "cmdline: baud=230400: out of range (expected 50..115200)\n"
              "cmdline: console=com3: not a valid choice (expected com1|com2|none)\n"
              "cmdline: loglvl=trace: not a valid choice (expected error|warn|info|debug)\n"
              "cmdline: apic=on: not a valid choice (expected auto|xapic|x2apic)\n"
              "cmdline: dom0_mem=5T: not a number (expected 0..4194304G)\n"
              "cmdline: no-smp: 'no-' applies only to on/off options\n"
              "cmdline: frobnicate: unknown option\n");
        const HypervisorOptions defaults;
        CHECK(options.max_cpus == defaults.max_cpus);
        CHECK(options.baud == defaults.baud);
        CHECK(options.console == defaults.console);
        CHECK(options.log_level == defaults.log_level);
        CHECK(options.apic == defaults.apic);
        CHECK(options.dom0_mem == defaults.dom0_mem);
    }
    SECTION("dom0_mem is bounded by the 52-bit physical address space") {
        CHECK(parse_hypervisor_command_line("dom0_mem=0x10000000000000", options, diagnostics) ==
              0);
        CHECK(options.dom0_mem == u64{1} << 52);
        CHECK(parse_hypervisor_command_line("dom0_mem=0x10000000000001", options, diagnostics) ==
              1);
        CHECK(options.dom0_mem == u64{1} << 52);
    }
    SECTION("help shows every option with its default") {
        StringSink help;
        print_hypervisor_options_help(help);
        CHECK(help.lines() == 10);
        for (const char* expected :
             {"console=com1|com2|none", "(default com1)", "baud=50..115200", "(default 115200)",
              "loglvl=error|warn|info|debug", "(default info)", "smp=1..256", "(default 256)",
              "[no-]selftest", "[no-]emu_exit", "apic=auto|xapic|x2apic", "(default auto)",
              "dom0_mem=0..4194304G", "(default 0)", "crash=none|panic|page-fault|stack-overflow",
              "(default none)", "[no-]bench"}) {
            CAPTURE(expected);
            CHECK(help.text.find(expected) != std::string::npos);
        }
    }
}
