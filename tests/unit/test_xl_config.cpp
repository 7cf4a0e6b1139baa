#include <catch2/catch.hpp>

#include "test_support.h"

#include <dom0/toolstack/xl_config.h>
#include <lamina/format.h>

#include <cstring>
#include <memory>
#include <string>

using namespace lamina;
using namespace lamina::toolstack;

namespace {

constexpr Limits kLimits{.max_memory_mib = 4096, .max_vcpus = 8, .host_cpus = 8};

struct Parsed {
    bool ok;
    DomainConfig config;
    Diagnostics diagnostics;

    std::string error() const { return diagnostics.error.text; }
    std::string warning(usize i) const { return diagnostics.warnings[i].text; }
};

// DomainConfig is a few KiB: on the heap, not the test's stack.
std::unique_ptr<Parsed> parse(const std::string& text, const Limits& limits = kLimits) {
    auto p = std::make_unique<Parsed>();
    p->ok = parse_config(text.data(), text.size(), limits, p->config, p->diagnostics);
    return p;
}

std::string error_of(const std::string& text) {
    auto p = parse(text);
    CHECK_FALSE(p->ok);
    return p->error();
}

std::string cpus_of(const DomainConfig& config) {
    std::string out;
    for (u32 cpu = 0; cpu < CpuSet::kMaxCpus; ++cpu)
        if (config.cpus.contains(cpu)) out += std::to_string(cpu) + " ";
    return out;
}

std::string formatted(const DomainConfig& config) {
    std::string out;
    struct StringSink final : Sink {
        std::string& out;
        explicit StringSink(std::string& o) : out(o) {}
        void write(const char* text, usize length) override { out.append(text, length); }
    } sink(out);
    format_config(sink, config);
    return out;
}

constexpr const char* kEveryKey = R"(# A domain with every key Lamina reads.
name = "web-1.example"
type = 'hvm'
memory = 512
maxmem = 1024
vcpus = 2
maxvcpus = 4
cpus = "0-3,5"
cpu_weight = 512
cap = 150
kernel = "/boot/vmlinuz"
ramdisk = '/boot/initrd.img'
cmdline = "console=hvc0 root=/dev/xvda1"
root = "/dev/sda"
extra = "quiet"
on_poweroff = "preserve"
on_reboot = "rename-restart"
on_watchdog = "coredump-destroy"
on_crash = "coredump-restart"
on_soft_reset = "destroy"
)";

}  // namespace

TEST_CASE("xl config: defaults are xl's") {
    auto p = parse("");
    REQUIRE(p->ok);
    const DomainConfig& c = p->config;
    CHECK(c.name[0] == '\0');
    CHECK(c.type == DomainType::Pvh);
    CHECK(c.memory_mib == 32);
    CHECK(c.max_memory_mib == 0);
    CHECK(c.vcpus == 1);
    CHECK(c.max_vcpus == 0);
    CHECK(c.cpu_weight == 256);
    CHECK(c.cap == 0);
    CHECK_FALSE(c.cpus_pinned);
    CHECK(c.on_poweroff == Action::Destroy);
    CHECK(c.on_reboot == Action::Restart);
    CHECK(c.on_watchdog == Action::Destroy);
    CHECK(c.on_crash == Action::Destroy);
    CHECK(c.on_soft_reset == Action::SoftReset);
    CHECK(p->diagnostics.warning_count == 0);

    // finish_config wants a name and a kernel, then fills in maxvcpus and maxmem.
    DomainConfig& config = p->config;
    Diagnostics& d = p->diagnostics;
    CHECK_FALSE(finish_config(kLimits, config, d));
    CHECK(std::string(d.error.text) == "name: missing; every domain needs one");
    CHECK(d.error.line == 0);
    REQUIRE(apply_override("name=guest", kLimits, config, d));
    CHECK_FALSE(finish_config(kLimits, config, d));
    CHECK(std::string(d.error.text) == "kernel: missing; a domain boots from one");
    REQUIRE(apply_override("kernel=guest.elf", kLimits, config, d));
    REQUIRE(finish_config(kLimits, config, d));
    CHECK(config.max_vcpus == 1);
    CHECK(config.max_memory_mib == 32);
    CHECK(config.command_line[0] == '\0');
}

TEST_CASE("xl config: every key") {
    auto p = parse(kEveryKey);
    REQUIRE(p->ok);
    const DomainConfig& c = p->config;
    CHECK(std::string(c.name) == "web-1.example");
    CHECK(c.type == DomainType::Hvm);
    CHECK(c.memory_mib == 512);
    CHECK(c.max_memory_mib == 1024);
    CHECK(c.vcpus == 2);
    CHECK(c.max_vcpus == 4);
    CHECK(c.cpus_pinned);
    CHECK(cpus_of(c) == "0 1 2 3 5 ");
    CHECK(c.cpu_weight == 512);
    CHECK(c.cap == 150);
    CHECK(std::string(c.kernel) == "/boot/vmlinuz");
    CHECK(std::string(c.ramdisk) == "/boot/initrd.img");
    CHECK(std::string(c.cmdline) == "console=hvc0 root=/dev/xvda1");
    CHECK(std::string(c.root) == "/dev/sda");
    CHECK(std::string(c.extra) == "quiet");
    CHECK(c.on_poweroff == Action::Preserve);
    CHECK(c.on_reboot == Action::RenameRestart);
    CHECK(c.on_watchdog == Action::CoredumpDestroy);
    CHECK(c.on_crash == Action::CoredumpRestart);
    CHECK(c.on_soft_reset == Action::Destroy);
    CHECK(p->diagnostics.warning_count == 0);

    // cmdline wins over root and extra, with a warning, as in xl.
    REQUIRE(finish_config(kLimits, p->config, p->diagnostics));
    CHECK(std::string(c.command_line) == "console=hvc0 root=/dev/xvda1");
    REQUIRE(p->diagnostics.warning_count == 1);
    CHECK(p->warning(0) == "root and extra are ignored: cmdline is set");
}

TEST_CASE("xl config: every action name, on every on_ key") {
    const char* names[] = {"destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart",
                           "soft-reset"};
    for (int i = 0; i < 7; ++i) {
        for (const char* key : {"on_poweroff", "on_reboot", "on_watchdog", "on_crash", "on_soft_reset"}) {
            auto p = parse(std::string(key) + " = \"" + names[i] + "\"\n");
            REQUIRE(p->ok);
            const DomainConfig& c = p->config;
            Action set = std::string(key) == "on_poweroff" ? c.on_poweroff
                         : std::string(key) == "on_reboot" ? c.on_reboot
                         : std::string(key) == "on_watchdog" ? c.on_watchdog
                         : std::string(key) == "on_crash" ? c.on_crash
                                                           : c.on_soft_reset;
            CHECK(set == static_cast<Action>(i));
            CHECK(std::string(action_name(set)) == names[i]);
        }
    }
    CHECK(error_of("on_crash = \"explode\"") ==
          "line 1: on_crash: unknown action \"explode\" (destroy, restart, rename-restart, preserve, "
          "coredump-destroy, coredump-restart or soft-reset)");
    CHECK(error_of("on_reboot = \"Restart\"").find("unknown action") != std::string::npos);
    CHECK(error_of("on_reboot = \"\"").find("unknown action \"\"") != std::string::npos);
}

TEST_CASE("xl config: syntax that xl accepts") {
    SECTION("comments, blank lines, semicolons, tabs and trailing whitespace") {
        auto p = parse("\n# comment\n\n  name=\"a\" ;memory=64;\tvcpus = 2   \t\n"
                       "kernel = \"k\" # the kernel; \"quoted\" = [not a value\n# \xc3\xa9 UTF-8 in a comment\n"
                       "cap=10# no space before the comment");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.name) == "a");
        CHECK(p->config.memory_mib == 64);
        CHECK(p->config.vcpus == 2);
        CHECK(std::string(p->config.kernel) == "k");
        CHECK(p->config.cap == 10);
    }
    SECTION("CRLF line ends") {
        auto p = parse("name = \"a\"\r\nmemory = 64\r\n# c\r\n\r\nvcpus = 3\r\n");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.name) == "a");
        CHECK(p->config.memory_mib == 64);
        CHECK(p->config.vcpus == 3);
    }
    SECTION("quotes and escapes") {
        auto p = parse(R"(cmdline = 'single "double" # not a comment; nor a separator'
extra = "tab\there \"q\" \'s\' back\\slash \x41\x7e nl\n"
root = ''
)");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.cmdline) == "single \"double\" # not a comment; nor a separator");
        CHECK(std::string(p->config.extra) == "tab\there \"q\" 's' back\\slash A~ nl\n");
        CHECK(p->config.root[0] == '\0');
    }
    SECTION("numbers: decimal, hex, octal, quoted") {
        auto p = parse("memory = 0x100\nvcpus = 010\ncpu_weight = \"300\"\ncap = 0\n");
        REQUIRE(p->ok);
        CHECK(p->config.memory_mib == 256);
        CHECK(p->config.vcpus == 8);
        CHECK(p->config.cpu_weight == 300);
        CHECK(p->config.cap == 0);
    }
    SECTION("string keys take bare numbers, as in xl") {
        auto p = parse("kernel = 42\n");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.kernel) == "42");
    }
    SECTION("+= appends to a string") {
        auto p = parse("extra = \"console=hvc0\"\nextra += \" quiet\"\nroot += \"/dev/xvda\"\n");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.extra) == "console=hvc0 quiet");
        CHECK(std::string(p->config.root) == "/dev/xvda");
        CHECK(p->diagnostics.warning_count == 0);
    }
}

TEST_CASE("xl config: lists") {
    SECTION("lists of unknown keys are read, checked and ignored with a warning") {
        auto p = parse("disk = [ 'phy:/dev/vg/a,xvda,w',\n"
                       "        \"file:/b.img,xvdb,r\", # a comment inside\n"
                       "        ]\n"
                       "vnuma = [ [\"pnode=0\", \"size=512\"], [ 1, 0x2 ], [] ]\n"
                       "vif = []\n"
                       "memory = 64\n");
        REQUIRE(p->ok);
        CHECK(p->config.memory_mib == 64);
        REQUIRE(p->diagnostics.warning_count == 3);
        CHECK(p->warning(0) == "line 1: unknown key \"disk\" ignored");
        CHECK(p->warning(1) == "line 4: unknown key \"vnuma\" ignored");
        CHECK(p->warning(2) == "line 5: unknown key \"vif\" ignored");
        CHECK(p->diagnostics.warnings[1].line == 4);
    }
    SECTION("a list for a scalar key is an error") {
        CHECK(error_of("name = \"a\"\nmemory = [ 128 ]\n") == "line 2: memory: expected a single value, not a list");
        CHECK(error_of("cpus = [\"2\", \"3-5\"]") ==
              "line 1: cpus: per-vCPU lists are not supported; give one CPU list like \"0-3,5\"");
    }
    SECTION("malformed lists") {
        CHECK(error_of("disk = [ 'a',\n 'b'\n") == "line 1: disk: a list without its closing ']'");
        CHECK(error_of("disk = [ 'a' 'b' ]") == "line 1: disk: expected ',' or ']' in the list, not '''");
        CHECK(error_of("disk = [ , ]").find("expected a value") != std::string::npos);
        CHECK(error_of("disk = [[[[[[[[[ ]]]]]]]]]") == "line 1: disk: lists nested more than 8 deep");
        CHECK(parse("disk = [[[[[[[[ ]]]]]]]]")->ok);
        CHECK(error_of("disk = [ 'a' ] 'b'").find("expected the end of the statement") != std::string::npos);
    }
}

TEST_CASE("xl config: numbers out of range or malformed") {
    CHECK(error_of("name = \"a\"\n\nmemory = 12x\n") == "line 3: memory: not a number: \"12x\"");
    CHECK(error_of("memory = \"12x\"") == "line 1: memory: not a number: \"12x\"");
    CHECK(error_of("memory = 99999999999999999999") == "line 1: memory: number too large: \"99999999999999999999\"");
    CHECK(error_of("memory = 0xffffffffffffffffff").find("number too large") != std::string::npos);
    CHECK(error_of("memory = 0") == "line 1: memory: 0 MiB is out of range (1 to 4096 MiB)");
    CHECK(error_of("memory = 4097") == "line 1: memory: 4097 MiB is out of range (1 to 4096 MiB)");
    CHECK(parse("memory = 4096")->ok);
    CHECK(error_of("maxmem = 5000") == "line 1: maxmem: 5000 MiB is out of range (1 to 4096 MiB)");
    CHECK(error_of("vcpus = 0") == "line 1: vcpus: 0 is out of range (1 to 8)");
    CHECK(error_of("vcpus = 9") == "line 1: vcpus: 9 is out of range (1 to 8)");
    CHECK(error_of("maxvcpus = 9") == "line 1: maxvcpus: 9 is out of range (1 to 8)");
    CHECK(error_of("cpu_weight = 0") == "line 1: cpu_weight: 0 is out of range (1 to 65535)");
    CHECK(error_of("cpu_weight = 65536") == "line 1: cpu_weight: 65536 is out of range (1 to 65535)");
    CHECK(parse("cpu_weight = 65535")->ok);
    CHECK(parse("cpu_weight = 1")->ok);
    CHECK(error_of("cap = 65536") == "line 1: cap: 65536% is out of range (0 to 65535%)");
    CHECK(error_of("memory = 08") == "line 1: memory: not a number: \"08\"");  // octal, as strtol reads it
    CHECK(error_of("memory = \"0x\"") == "line 1: memory: not a number: \"0x\"");
    CHECK(error_of("memory = \"\"") == "line 1: memory: not a number: \"\"");
    CHECK(error_of("memory = \" 12\"") == "line 1: memory: not a number: \" 12\"");
    CHECK(error_of("memory = \"1\\t\\\"\"") == "line 1: memory: not a number: \"1\\x09\\\"\"");
    CHECK(error_of("memory = -1") == "line 1: memory: expected a value (a quoted string, a number or a list), not '-'");
    CHECK(error_of("memory = 1.5").find("expected the end of the statement") != std::string::npos);
    CHECK(error_of("memory += \"1\"") == "line 1: memory: '+=' works only on strings");
    std::string huge(2000, '9');
    CHECK(error_of("memory = " + huge) == "line 1: memory: a value longer than 1023 characters");
}

TEST_CASE("xl config: strings too long, empty or with bad characters") {
    CHECK(parse("name = \"" + std::string(63, 'n') + "\"")->ok);
    CHECK(error_of("name = \"" + std::string(64, 'n') + "\"") == "line 1: name: longer than 63 characters");
    CHECK(error_of("name = \"\"") == "line 1: name: empty");
    CHECK(error_of("name = \"web 1\"") ==
          "line 1: name: \"web 1\" has a character other than letters, digits, '-', '_' and '.'");
    CHECK(error_of("name = \"a/b\"").find("has a character other than") != std::string::npos);
    CHECK(error_of("name = \"1234\"") ==
          "line 1: name: \"1234\" is a number, which the shell would take for a domain id");
    CHECK(parse("name = \"Web_1-2.3\"")->ok);
    CHECK(parse("kernel = \"" + std::string(127, 'k') + "\"")->ok);
    CHECK(error_of("kernel = \"" + std::string(128, 'k') + "\"") == "line 1: kernel: longer than 127 characters");
    CHECK(error_of("kernel = ''") == "line 1: kernel: an empty path");
    CHECK(error_of("ramdisk = \"" + std::string(128, 'r') + "\"") == "line 1: ramdisk: longer than 127 characters");
    CHECK(parse("cmdline = \"" + std::string(1023, 'c') + "\"")->ok);
    CHECK(error_of("cmdline = \"" + std::string(1024, 'c') + "\"") == "line 1: cmdline: longer than 1023 characters");
    CHECK(error_of("cmdline = \"" + std::string(5000, 'c') + "\"") == "line 1: cmdline: longer than 1023 characters");
    CHECK(error_of("extra = \"" + std::string(1000, 'e') + "\"\nextra += \"" + std::string(24, 'e') + "\"") ==
          "line 2: extra: longer than 1023 characters");
    // A long value is shown cut short.
    CHECK(error_of("name = \"" + std::string(50, 'x') + " \"") ==
          "line 1: name: \"" + std::string(40, 'x') + "...\" has a character other than letters, digits, "
          "'-', '_' and '.'");
}

TEST_CASE("xl config: type") {
    CHECK(parse("type = \"pvh\"")->config.type == DomainType::Pvh);
    CHECK(parse("type = \"hvm\"")->config.type == DomainType::Hvm);
    CHECK(error_of("type = \"pv\"") == "line 1: type: PV guests are not supported (\"pvh\" or \"hvm\")");
    CHECK(error_of("type = \"xen\"") == "line 1: type: unknown type \"xen\" (\"pvh\" or \"hvm\")");
    CHECK(std::string(domain_type_name(DomainType::Hvm)) == "hvm");
}

TEST_CASE("xl config: cpus") {
    auto cpus = [](const std::string& value) {
        auto p = parse("cpus = \"" + value + "\"");
        REQUIRE(p->ok);
        CHECK(p->config.cpus_pinned);
        return cpus_of(p->config);
    };
    CHECK(cpus("all") == "0 1 2 3 4 5 6 7 ");
    CHECK(cpus("0-3,5") == "0 1 2 3 5 ");
    CHECK(cpus("all,^7") == "0 1 2 3 4 5 6 ");
    CHECK(cpus("0-7,^2-5") == "0 1 6 7 ");
    CHECK(cpus("^1,0-3") == "0 1 2 3 ");  // terms apply in order
    CHECK(cpus("7") == "7 ");
    CHECK(cpus(" 0 , 2 ") == "0 2 ");
    CHECK(parse("cpus = 3")->ok);

    CHECK(error_of("cpus = \"3-1\"") == "line 1: cpus: the range 3-1 runs backwards");
    CHECK(error_of("cpus = \"8\"") == "line 1: cpus: CPU 8 does not exist (the host has CPUs 0 to 7)");
    CHECK(error_of("cpus = \"0-99999999999\"").find("is not a CPU list") != std::string::npos);
    CHECK(error_of("cpus = \"node:0\"") == "line 1: cpus: NUMA node terms are not supported");
    CHECK(error_of("cpus = \"nodes:0-1\"") == "line 1: cpus: NUMA node terms are not supported");
    CHECK(error_of("cpus = \"^0\"") == "line 1: cpus: \"^0\" selects no CPU");
    for (const char* bad : {"", "0,,1", "x", "1-", "-1", "0-3,", "1-2-3", "^", "all-3"})
        CHECK(error_of(std::string("cpus = \"") + bad + "\"").find("is not a CPU list like") != std::string::npos);
}

namespace {

std::string members(const CpuSet& set) {
    std::string out;
    for (u32 cpu = 0; cpu < CpuSet::kMaxCpus; ++cpu)
        if (set.contains(cpu)) out += (out.empty() ? "" : " ") + std::to_string(cpu);
    return out;
}

// The CPUs the list selects, or "error: " and why.
std::string cpu_list(const char* text, u32 host_cpus = 8) {
    CpuSet set;
    set.add(200);  // replaced on success
    Message error;
    if (!parse_cpu_list(text, host_cpus, set, error)) {
        CHECK(set.contains(200));  // untouched on failure
        return std::string("error: ") + error.text();
    }
    return members(set);
}

std::string written_cpu_list(const CpuSet& set) {
    char text[Message::kCapacity];
    BufferSink sink(text, sizeof(text));
    format_cpu_list(sink, set);
    return text;
}

}  // namespace

TEST_CASE("cpu list: all, numbers, ranges, exclusions") {
    CHECK(cpu_list("all") == "0 1 2 3 4 5 6 7");
    CHECK(cpu_list("all", 1) == "0");
    CHECK(cpu_list("0-3,5") == "0 1 2 3 5");
    CHECK(cpu_list("5,0-3") == "0 1 2 3 5");
    CHECK(cpu_list("7") == "7");
    CHECK(cpu_list("2-2") == "2");
    CHECK(cpu_list("all,^7") == "0 1 2 3 4 5 6");
    CHECK(cpu_list("0-7,^2-5,3") == "0 1 3 6 7");
    CHECK(cpu_list("^1,1") == "1");
    CHECK(cpu_list(" 1 , 3") == "1 3");
    CHECK(cpu_list("all", 256).size() > 0);
    CHECK(cpu_list("255", 256) == "255");
}

TEST_CASE("cpu list: every malformed list is refused with its reason") {
    const std::string kBad = " is not a CPU list like \"0-3,5\" or \"all,^7\"";
    for (const char* bad : {"", "x", "0,,1", "0,", ",0", "1-", "-1", "1-2-3", "^", "^^1", "All", "0x3",
                            "99999999999999999999999"})
        CHECK(cpu_list(bad) == "error: \"" + std::string(bad) + "\"" + kBad);
    CHECK(cpu_list("node:0") == "error: NUMA node terms are not supported");
    CHECK(cpu_list("5-2") == "error: the range 5-2 runs backwards");
    CHECK(cpu_list("8") == "error: CPU 8 does not exist (the host has CPUs 0 to 7)");
    CHECK(cpu_list("0-300") == "error: CPU 300 does not exist (the host has CPUs 0 to 7)");
    CHECK(cpu_list("1", 1) == "error: CPU 1 does not exist (the host has only CPU 0)");
    CHECK(cpu_list("256", 256) == "error: CPU 256 does not exist (the host has CPUs 0 to 255)");
    CHECK(cpu_list("all,^0-7") == "error: \"all,^0-7\" selects no CPU");
    CHECK(cpu_list("^3") == "error: \"^3\" selects no CPU");
    // A long list is cut short in the message, which stays one line.
    const std::string long_list(300, '9');
    CHECK(cpu_list(long_list.c_str()).size() < Message::kCapacity);
}

TEST_CASE("cpu list: the host's CPU count must be one the set can hold") {
    CpuSet set;
    Message error;
    CHECK_THROWS_AS(parse_cpu_list("0", 0, set, error), AssertionFailure);
    CHECK_THROWS_AS(parse_cpu_list("0", CpuSet::kMaxCpus + 1, set, error), AssertionFailure);
}

TEST_CASE("cpu list: written as ranges, and read back the same") {
    CpuSet set;
    CHECK(written_cpu_list(set).empty());
    for (u32 cpu : {0u, 1u, 2u, 3u, 5u, 7u, 8u, 63u, 64u, 65u, 255u}) set.add(cpu);
    CHECK(written_cpu_list(set) == "0-3,5,7-8,63-65,255");
    CpuSet again;
    Message error;
    REQUIRE(parse_cpu_list(written_cpu_list(set).c_str(), CpuSet::kMaxCpus, again, error));
    CHECK(members(again) == members(set));
}

TEST_CASE("cpu set: covers says whether it holds every CPU of a host") {
    CpuSet set;
    CHECK(set.covers(0));
    CHECK_FALSE(set.covers(1));
    for (u32 cpu = 0; cpu < 70; ++cpu) set.add(cpu);
    CHECK(set.covers(70));
    CHECK_FALSE(set.covers(71));
    set.remove(64);
    CHECK(set.covers(64));
    CHECK_FALSE(set.covers(65));
}

TEST_CASE("xl config: a key set twice: the last value wins, with a warning") {
    auto p = parse("memory = 64\nname = \"a\"\nmemory = 128\n");
    REQUIRE(p->ok);
    CHECK(p->config.memory_mib == 128);
    REQUIRE(p->diagnostics.warning_count == 1);
    CHECK(p->warning(0) == "line 3: memory set again (first on line 1); the last value wins");
    CHECK(p->diagnostics.warnings[0].line == 3);
}

TEST_CASE("xl config: unknown keys are warnings, and too many are counted") {
    std::string text;
    for (int i = 0; i < 11; ++i) text += "unknown_" + std::to_string(i) + " = 1\n";
    auto p = parse(text);
    REQUIRE(p->ok);
    CHECK(p->diagnostics.warning_count == Diagnostics::kMaxWarnings);
    CHECK(p->diagnostics.warnings_dropped == 3);
    CHECK(p->warning(7) == "line 8: unknown key \"unknown_7\" ignored");
}

TEST_CASE("xl config: malformed input") {
    CHECK(error_of("name = \"a\"\nmemory 128\n") == "line 2: memory: expected '=', not '1'");
    CHECK(error_of("memory\n") == "line 1: memory: expected '=', not the end of the line");
    CHECK(error_of("memory =\n") == "line 1: memory: no value after '='");
    CHECK(error_of("memory = # c") == "line 1: memory: no value after '='");
    CHECK(error_of("memory = ;") == "line 1: memory: no value after '='");
    CHECK(error_of("memory = 128 256") ==
          "line 1: memory: expected the end of the statement after the value, not '2'");
    CHECK(error_of("\n\nname = \"abc\nmemory = 1\n") == "line 3: name: a string without its closing quote");
    CHECK(error_of("name = 'abc") == "line 1: name: a string without its closing quote");
    CHECK(error_of("name = \"abc\\") == "line 1: name: a string without its closing quote");
    CHECK(error_of("name = foo") ==
          "line 1: name: expected a value (a quoted string, a number or a list), not 'f'");
    CHECK(error_of("Memory = 1") == "line 1: expected a key, not 'M'");
    CHECK(error_of("= 1") == "line 1: expected a key, not '='");
    CHECK(error_of("_x = 1") == "line 1: expected a key, not '_'");
    CHECK(error_of(std::string(64, 'k') + " = 1") == "line 1: a key longer than 63 characters");
    CHECK(parse(std::string(63, 'k') + " = 1")->ok);
    CHECK(error_of("extra = \"a\\qb\"") == "line 1: extra: an unknown escape after '\\' in a string");
    CHECK(error_of("extra = \"a\\x4\"") == "line 1: extra: \\x needs two hex digits");
    CHECK(error_of("extra = \"a\\x00b\"") == "line 1: extra: \\x00 (NUL) in a string");
    CHECK(error_of("extra = \"a\x01" "b\"") ==
          "line 1: extra: a control character (byte 0x01) in a string; write it as an escape");
    CHECK(error_of("extra = \"a\rb\"").find("a control character (byte 0x0d)") != std::string::npos);

    SECTION("garbage bytes") {
        CHECK(error_of("\x01") == "line 1: expected a key, not the byte 0x01");
        CHECK(error_of("name = \"a\"\n\xff\xfe") == "line 2: expected a key, not the byte 0xff");
        CHECK(error_of("memory = \x80") ==
              "line 1: memory: expected a value (a quoted string, a number or a list), not the byte 0x80");
        CHECK(error_of("memory \x7f= 1") == "line 1: memory: expected '=', not the byte 0x7f");
    }
    SECTION("NUL bytes anywhere, even in comments and strings") {
        CHECK(error_of(std::string("name = \"a\"\nmemory = 1\0", 22)) == "line 2: a NUL byte in the configuration");
        CHECK(error_of(std::string("# \0\n", 4)) == "line 1: a NUL byte in the configuration");
        CHECK(error_of(std::string("\n\nname = \"a\0b\"", 14)) == "line 3: a NUL byte in the configuration");
    }
    SECTION("non-ASCII bytes in strings are kept") {
        auto p = parse("cmdline = \"caf\xc3\xa9\"");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.cmdline) == "caf\xc3\xa9");
    }
}

TEST_CASE("xl config: no truncation or corruption of a config reads out of bounds") {
    std::string good = kEveryKey;
    for (size_t n = 0; n <= good.size(); ++n) {
        auto cut = std::make_unique<char[]>(n + 1);  // ASan guards the end
        std::memcpy(cut.get(), good.data(), n);
        auto p = std::make_unique<Parsed>();
        parse_config(cut.get(), n, kLimits, p->config, p->diagnostics);
    }
    // Byte soup, weighted towards the characters the syntax gives meaning to.
    const char alphabet[] = "ab09x_ =\"'[],;#\\\n\r\t^-+\x01\xff";
    u64 seed = 1;
    for (int round = 0; round < 3000; ++round) {
        std::string soup;
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        for (u64 n = (seed >> 33) % 120; n > 0; --n) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            soup.push_back(alphabet[(seed >> 33) % (sizeof(alphabet) - 1)]);
        }
        auto p = parse(soup);
        if (!p->ok) CHECK(std::string(p->error()).rfind("line ", 0) == 0);
    }
    // Every byte, in turn, replaced by each of a few troublemakers.
    for (size_t i = 0; i < good.size(); ++i) {
        for (char c : {'\0', '"', '\'', '[', ']', '\n', '\\', '=', '#', ',', '\xff'}) {
            std::string bad = good;
            bad[i] = c;
            auto p = parse(bad);
            if (!p->ok) CHECK(std::string(p->error()).rfind("line ", 0) == 0);
        }
    }
}

TEST_CASE("xl config: overrides from the shell") {
    auto p = parse(kEveryKey);
    REQUIRE(p->ok);
    DomainConfig& c = p->config;
    Diagnostics& d = p->diagnostics;
    auto override_error = [&](const char* assignment) {
        CHECK_FALSE(apply_override(assignment, kLimits, c, d));
        CHECK(d.error.line == 0);
        return std::string(d.error.text);
    };

    REQUIRE(apply_override("memory=256", kLimits, c, d));
    CHECK(c.memory_mib == 256);
    REQUIRE(apply_override("name=web2", kLimits, c, d));  // a bare string
    CHECK(std::string(c.name) == "web2");
    REQUIRE(apply_override("name = \"web3\"", kLimits, c, d));
    CHECK(std::string(c.name) == "web3");
    REQUIRE(apply_override("cmdline=console=hvc0 quiet # all of it  ", kLimits, c, d));
    CHECK(std::string(c.cmdline) == "console=hvc0 quiet # all of it");
    REQUIRE(apply_override("extra+= debug", kLimits, c, d));
    CHECK(std::string(c.extra) == "quietdebug");
    REQUIRE(apply_override("cpus=all,^0", kLimits, c, d));
    CHECK(cpus_of(c) == "1 2 3 4 5 6 7 ");
    REQUIRE(apply_override("on_crash=preserve", kLimits, c, d));
    CHECK(c.on_crash == Action::Preserve);
    REQUIRE(apply_override("vcpus=0x3", kLimits, c, d));
    CHECK(c.vcpus == 3);
    CHECK(d.warning_count == 0);
    REQUIRE(apply_override("serial=pty", kLimits, c, d));
    REQUIRE(d.warning_count == 1);
    CHECK(std::string(d.warnings[0].text) == "unknown key \"serial\" ignored");

    CHECK(override_error("vcpus=abc") == "vcpus: not a number: \"abc\"");
    CHECK(override_error("memory=99999") == "memory: 99999 MiB is out of range (1 to 4096 MiB)");
    CHECK(override_error("memory") == "memory: expected '=', not the end of the line");
    CHECK(override_error("memory=") == "memory: no value after '='");
    CHECK(override_error("=5") == "expected key=value");
    CHECK(override_error("") == "expected key=value");
    CHECK(override_error("name=\"a\" b") == "name: expected the end of the statement after the value, not 'b'");
    CHECK(override_error("name=\"a\";memory=1") == "name: expected the end of the statement after the value, not ';'");
    CHECK(override_error("name=two words") ==
          "name: \"two words\" has a character other than letters, digits, '-', '_' and '.'");
    CHECK(override_error("type=pv") == "type: PV guests are not supported (\"pvh\" or \"hvm\")");
    // A refused override leaves the config as it was.
    CHECK(std::string(c.name) == "web3");
    CHECK(c.memory_mib == 256);
}

TEST_CASE("xl config: finishing checks what involves several keys") {
    auto finished = [](const std::string& text, const Limits& limits = kLimits) {
        auto p = parse("name = \"a\"\nkernel = \"k\"\n" + text, limits);
        REQUIRE(p->ok);
        p->ok = finish_config(limits, p->config, p->diagnostics);
        return p;
    };
    SECTION("maxvcpus and maxmem default to vcpus and memory, and may not be less") {
        auto p = finished("vcpus = 3\nmemory = 100\n");
        REQUIRE(p->ok);
        CHECK(p->config.max_vcpus == 3);
        CHECK(p->config.max_memory_mib == 100);
        CHECK(finished("vcpus = 2\nmaxvcpus = 8\n")->ok);
        CHECK(finished("vcpus = 4\nmaxvcpus = 2\n")->error() == "maxvcpus: 2 is less than vcpus (4)");
        CHECK(finished("memory = 512\nmaxmem = 256\n")->error() == "maxmem: 256 MiB is less than memory (512 MiB)");
    }
    SECTION("the defaults must fit the limits too") {
        Limits small{.max_memory_mib = 16, .max_vcpus = 1, .host_cpus = 1};
        CHECK(finished("", small)->error() == "memory: 32 MiB is more than the 16 MiB available");
        CHECK(finished("memory = 16", small)->ok);
    }
    SECTION("the cap is a share of the domain's vCPUs") {
        CHECK(finished("vcpus = 2\ncap = 200\n")->ok);
        CHECK(finished("vcpus = 2\ncap = 201\n")->error() == "cap: 201% is more than 2 vCPUs can use (200%)");
        CHECK(finished("vcpus = 2\nmaxvcpus = 4\ncap = 400\n")->ok);
    }
    SECTION("the command line, as xl puts it together") {
        CHECK(std::string(finished("root = \"/dev/xvda1\"\nextra = \"console=hvc0\"\n")->config.command_line) ==
              "root=/dev/xvda1 console=hvc0");
        CHECK(std::string(finished("root = \"/dev/xvda1\"\n")->config.command_line) == "root=/dev/xvda1");
        CHECK(std::string(finished("extra = \"quiet\"\n")->config.command_line) == "quiet");
        auto p = finished("cmdline = \"console=hvc0\"\nextra = \"quiet\"\n");
        REQUIRE(p->ok);
        CHECK(std::string(p->config.command_line) == "console=hvc0");
        CHECK(p->diagnostics.warning_count == 1);
        CHECK(finished("root = \"" + std::string(100, 'r') + "\"\nextra = \"" + std::string(1000, 'e') + "\"\n")
                  ->error() == "root and extra make a command line longer than 1023 characters");
    }
}

TEST_CASE("xl config: a config written back reads back the same") {
    auto p = parse(kEveryKey);
    REQUIRE(p->ok);
    REQUIRE(apply_override("extra=\"a \\\"quoted\\\" back\\\\slash\\ttab\"", kLimits, p->config, p->diagnostics));
    std::string written = formatted(p->config);
    auto again = parse(written);
    INFO(written);
    REQUIRE(again->ok);
    CHECK(formatted(again->config) == written);
    CHECK(std::string(again->config.extra) == "a \"quoted\" back\\slash\ttab");
    CHECK(written.find("cpus = \"0-3,5\"\n") != std::string::npos);
    CHECK(written.find("extra = \"a \\\"quoted\\\" back\\\\slash\\x09tab\"\n") != std::string::npos);

    // The defaults write out as a config that parses to the defaults.
    auto defaults = parse("");
    auto reread = parse(formatted(defaults->config));
    REQUIRE(reread->ok);
    CHECK(formatted(reread->config) == formatted(defaults->config));
    CHECK(formatted(defaults->config).find("\ncpus") == std::string::npos);
}

TEST_CASE("xl config: a host's limits, each at least 1 and within what the toolstack can name") {
    lamina_host_info host{};
    Limits limits = limits_of(host);
    CHECK(limits.max_memory_mib == 1);
    CHECK(limits.max_vcpus == 1);
    CHECK(limits.host_cpus == 1);
    host.free_pages = 3 * 256 + 255;  // 3 MiB and a bit
    host.max_vcpus = 1000;
    host.cpus = 100000;
    limits = limits_of(host);
    CHECK(limits.max_memory_mib == 3);
    CHECK(limits.max_vcpus == LAMINA_MAX_VCPUS);
    CHECK(limits.host_cpus == CpuSet::kMaxCpus);
}
