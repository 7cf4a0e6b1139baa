#include <catch2/catch.hpp>

#include "test_support.h"

#include <dom0/shell/shell.h>
#include <lamina/abi/errno.h>

#include <memory>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::shell;

namespace {

struct Terminal final : Sink {
    std::string out;
    void write(const char* text, usize length) override { out.append(text, length); }
};

struct Directory final : DomainDirectory {
    i64 find_by_name(const char* name) override { return std::string(name) == "web" ? 3 : -LAMINA_ESRCH; }
};

// What the fake commands saw.
std::vector<std::vector<std::string>> calls;

int record(Shell& shell, int argc, const char* const* argv) {
    calls.emplace_back(argv, argv + argc);
    CHECK(argv[argc] == nullptr);
    return 0;
}

int pause_command(Shell& shell, int argc, const char* const* argv) {
    if (argc != 2) return shell.usage_error(argv[0]);
    Message error;
    u16 domid = 0;
    if (!parse_domain(argv[1], shell.domains(), &domid, error)) return shell.fail("pause: {}", error.text());
    shell.print("paused {}\n", domid);
    return 0;
}

const Command kCommands[] = {
    {"list", "list [-l]", "list the domains", record},
    {"pause", "pause <domain>", "stop running a domain's vCPUs", pause_command},
    {"sched-credit", "sched-credit [-d domain] [-w weight]", "show or set credit scheduler parameters", record},
};

struct Harness {
    Terminal terminal;
    Directory directory;
    std::unique_ptr<Shell> shell = std::make_unique<Shell>(terminal, kCommands, 3, directory);

    Harness() {
        calls.clear();
        shell->start();
    }
    std::string type(const std::string& bytes) {
        const size_t before = terminal.out.size();
        for (unsigned char byte : bytes) shell->input(byte);
        return terminal.out.substr(before);
    }
};

}  // namespace

TEST_CASE("shell: prompt, echo, the command's output, the prompt again") {
    Harness h;
    CHECK(h.terminal.out == "lamina> ");
    CHECK(h.type("pause web\n") == "pause web\r\npaused 3\nlamina> ");
    CHECK(h.shell->last_status() == 0);
    CHECK(h.type("list -l 'a b'\r\n") == "list -l 'a b'\r\nlamina> ");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0] == std::vector<std::string>{"list", "-l", "a b"});
}

TEST_CASE("shell: piped commands run one after another") {
    Harness h;
    h.type("pause 1\npause 2\n\n# a comment\nlist\n");
    CHECK(h.terminal.out ==
          "lamina> pause 1\r\npaused 1\n"
          "lamina> pause 2\r\npaused 2\n"
          "lamina> \r\n"
          "lamina> # a comment\r\n"
          "lamina> list\r\n"
          "lamina> ");
    CHECK(calls.size() == 1);
}

TEST_CASE("shell: every error is one line and the shell goes on") {
    Harness h;
    CHECK(h.type("frobnicate 1\n") == "frobnicate 1\r\nunknown command \"frobnicate\"; type help\nlamina> ");
    CHECK(h.shell->last_status() == 1);
    CHECK(h.type("pause 'web\n") == "pause 'web\r\nunterminated ' quote\nlamina> ");
    CHECK(h.shell->last_status() == 1);
    CHECK(h.type("pause\n") == "pause\r\nusage: pause <domain>\nlamina> ");
    CHECK(h.type("pause db\n") == "pause db\r\npause: no domain named \"db\"\nlamina> ");
    CHECK(h.type("pause 99999\n") == "pause 99999\r\npause: 99999: domain id must be 0..32751\nlamina> ");
    CHECK(h.shell->last_status() == 1);
    CHECK(h.type("pause 1\n") == "pause 1\r\npaused 1\nlamina> ");
    CHECK(h.shell->last_status() == 0);
    CHECK(h.type("\n") == "\r\nlamina> ");
    CHECK(h.shell->last_status() == 0);
}

TEST_CASE("shell: Ctrl-C abandons the line and prompts again") {
    Harness h;
    CHECK(h.type("pause 1\x03") == "pause 1^C\r\nlamina> ");
    CHECK(h.type("\n") == "\r\nlamina> ");
}

TEST_CASE("shell: help lists every command with its line; help <command> its usage") {
    Harness h;
    h.type("help\n");
    CHECK(h.terminal.out ==
          "lamina> help\r\n"
          "Commands (help <command> shows how to use one):\n"
          "  help          list the commands, or show how to use one\n"
          "  list          list the domains\n"
          "  pause         stop running a domain's vCPUs\n"
          "  sched-credit  show or set credit scheduler parameters\n"
          "  repeat        run a command line (quoted; ; between commands) count times, stopping at a failure\n"
          "lamina> ");
    CHECK(h.type("help sched-credit\n") ==
          "help sched-credit\r\n"
          "usage: sched-credit [-d domain] [-w weight]\n"
          "  show or set credit scheduler parameters\n"
          "lamina> ");
    CHECK(h.type("help help\n") ==
          "help help\r\nusage: help [command]\n  list the commands, or show how to use one\nlamina> ");
    CHECK(h.type("help nope\n") == "help nope\r\nunknown command \"nope\"; type help\nlamina> ");
    CHECK(h.shell->last_status() == 1);
    CHECK(h.type("help a b\n") == "help a b\r\nusage: help [command]\nlamina> ");
    CHECK(calls.empty());
}

TEST_CASE("shell: run() dispatches without echo or prompt") {
    Harness h;
    h.terminal.out.clear();
    CHECK(h.shell->run("pause web") == 0);
    CHECK(h.shell->run("nope") == 1);
    CHECK(h.shell->run("") == 0);
    CHECK(h.terminal.out == "paused 3\nunknown command \"nope\"; type help\n");
}

TEST_CASE("shell: ; separates commands; repeat runs a command line until it fails") {
    Harness h;
    h.terminal.out.clear();
    CHECK(h.shell->run("pause 1 ; pause 2") == 0);
    CHECK(h.shell->run("; pause 3 ; ; nope") == 1);
    CHECK(h.terminal.out == "paused 1\npaused 2\npaused 3\nunknown command \"nope\"; type help\n");

    h.terminal.out.clear();
    CHECK(h.shell->run("repeat 3 'pause 1 ; pause 2'") == 0);
    CHECK(h.terminal.out == "paused 1\npaused 2\npaused 1\npaused 2\npaused 1\npaused 2\nrepeat: 3 runs\n");
    h.terminal.out.clear();
    CHECK(h.shell->run("repeat 5 'pause 1 ; pause db'") == 1);
    CHECK(h.terminal.out == "paused 1\npause: no domain named \"db\"\nrepeat: run 1 of 5 failed; stopped\n");
    h.terminal.out.clear();
    CHECK(h.shell->run("repeat 0 list") == 1);
    CHECK(h.shell->run("repeat many list") == 1);
    CHECK(h.shell->run("repeat 2") == 1);
    CHECK(h.terminal.out == "repeat: 0: the count must be 1..100000\nrepeat: many: the count must be 1..100000\n"
                            "usage: repeat <count> <command line>\n");
    // Nested: the inner line has words of its own.
    h.terminal.out.clear();
    CHECK(h.shell->run("repeat 2 \"repeat 2 'pause 1'\"") == 0);
    CHECK(h.terminal.out == "paused 1\npaused 1\nrepeat: 2 runs\npaused 1\npaused 1\nrepeat: 2 runs\nrepeat: 2 runs\n");
}

TEST_CASE("shell: a table with duplicate names, or its own help, is a programming error") {
    Terminal terminal;
    Directory directory;
    const Command twice[] = {{"list", "list", "a", record}, {"list", "list", "b", record}};
    CHECK_THROWS_AS(Shell(terminal, twice, 2, directory), AssertionFailure);
    const Command help[] = {{"help", "help", "mine", record}};
    CHECK_THROWS_AS(Shell(terminal, help, 1, directory), AssertionFailure);
    const Command no_handler[] = {{"list", "list", "a", nullptr}};
    CHECK_THROWS_AS(Shell(terminal, no_handler, 1, directory), AssertionFailure);
}
