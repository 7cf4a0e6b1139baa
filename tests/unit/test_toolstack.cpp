#include <catch2/catch.hpp>

#include <dom0/toolstack/toolstack.h>

#include "boot_modules.h"
#include "elf_builder.h"
#include "fake_domain_control.h"

#include <memory>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::toolstack;
using test::Dom0Memory;
using test::FakeDomainControl;

namespace {

const Limits kLimits{1024, 8, 4};

std::string kernel_image() {
    test::ElfBuilder elf;
    elf.load(0x100000, 0x1000, 0x1000, 5);
    elf.pvh_note(0x100000);
    const std::vector<u8> bytes = elf.build();
    return std::string(bytes.begin(), bytes.end());
}

// Dom0 with boot images "ticker" (a kernel), "ticker.cfg", "restarting.cfg", "initrd" and
// "notes", and the toolstack over a fake hypervisor.
struct Dom0 {
    Dom0Memory memory;
    ImageDirectory images;
    FakeDomainControl control;
    std::unique_ptr<Toolstack> toolstack;
    test::Log log;

    Dom0() {
        memory.add(kernel_image(), "ticker");
        memory.add("name = \"ticker\"\nmemory = 8\nkernel = \"ticker\"\n", "ticker.cfg");
        memory.add("name = \"phoenix\"\nmemory = 4\nkernel = \"ticker\"\nramdisk = \"initrd\"\n"
                   "on_poweroff = \"restart\"\non_crash = \"preserve\"\n",
                   "restarting.cfg");
        memory.add("initial ramdisk", "initrd");
        memory.add("\x01\x02 not a config", "notes");
        REQUIRE(memory.load(images).empty());
        toolstack = std::make_unique<Toolstack>(control, images);
    }

    DomainConfig config(const char* source, std::vector<const char*> overrides = {}) {
        DomainConfig config;
        Diagnostics diagnostics;
        INFO(diagnostics.error.text);
        REQUIRE(prepare_config(images, source, overrides.data(), overrides.size(), kLimits, config, diagnostics));
        return config;
    }
    ManagedDomain& create(const char* source, bool paused = false) {
        Message error;
        ManagedDomain* domain = toolstack->create(config(source), paused, error);
        INFO(error.text());
        REQUIRE(domain);
        return *domain;
    }
    // The domain writes to its console as the hypervisor appends its port 0xE9 output.
    void print(u16 domid, const std::string& text) {
        auto* ring = reinterpret_cast<lamina_console_ring*>(
            control.ram(domid, control.domain(domid).console_gfn * 4096));
        for (char c : text) ring->out[ring->out_prod++ % LAMINA_CONSOLE_RING_OUT_SIZE] = c;
    }
    std::string handle_ended() {
        log.text.clear();
        toolstack->handle_ended_domains(log);
        return log.text;
    }
};

std::string refusal(Dom0& dom0, const char* source, std::vector<const char*> overrides = {}) {
    DomainConfig config;
    Diagnostics diagnostics;
    CHECK_FALSE(prepare_config(dom0.images, source, overrides.data(), overrides.size(), kLimits, config, diagnostics));
    return diagnostics.error.text;
}

}  // namespace

TEST_CASE("toolstack: a config from a config image, or the defaults for a kernel image") {
    Dom0 dom0;
    DomainConfig from_file = dom0.config("ticker.cfg");
    CHECK(std::string(from_file.name) == "ticker");
    CHECK(from_file.memory_mib == 8);
    CHECK(from_file.max_memory_mib == 8);
    DomainConfig from_kernel = dom0.config("ticker");
    CHECK(std::string(from_kernel.name) == "ticker");
    CHECK(std::string(from_kernel.kernel) == "ticker");
    CHECK(from_kernel.memory_mib == 32);
    DomainConfig overridden = dom0.config("ticker.cfg", {"name=ticker2", "memory=16", "cmdline=ticks=3 crash"});
    CHECK(std::string(overridden.name) == "ticker2");
    CHECK(overridden.memory_mib == 16);
    CHECK(std::string(overridden.command_line) == "ticks=3 crash");
}

TEST_CASE("toolstack: what prepare_config refuses, in one line") {
    Dom0 dom0;
    CHECK(refusal(dom0, "nope") == "no boot image named \"nope\" (images lists them)");
    CHECK(refusal(dom0, "notes") == "\"notes\" is neither an xl config nor a PVH kernel");
    CHECK(refusal(dom0, "initrd") == "\"initrd\" is neither an xl config nor a PVH kernel");
    CHECK(refusal(dom0, "ticker", {"memory=lots"}) == "memory: not a number: \"lots\"");
    CHECK(refusal(dom0, "ticker", {"memory"}) == "memory: expected '=', not the end of the line");
    CHECK(refusal(dom0, "ticker", {"memory=2048"}) == "memory: 2048 MiB is out of range (1 to 1024 MiB)");
}

TEST_CASE("toolstack: create keeps the domain with its config and console") {
    Dom0 dom0;
    ManagedDomain& ticker = dom0.create("ticker.cfg");
    CHECK(ticker.built.domid == 1);
    CHECK(dom0.toolstack->find(1) == &ticker);
    CHECK(dom0.toolstack->find(2) == nullptr);
    CHECK(std::string(ticker.config.name) == "ticker");
    CHECK(dom0.control.domain(1).state == LAMINA_DOMAIN_RUNNING);
    ManagedDomain& phoenix = dom0.create("restarting.cfg", true);
    CHECK(phoenix.built.domid == 2);
    CHECK(dom0.control.domain(2).state == LAMINA_DOMAIN_BUILDING);
    pvh::StartInfo start;
    std::memcpy(&start, dom0.control.ram(2, 0x1000), sizeof(start));
    CHECK(start.module_count == 1);  // the ramdisk
}

TEST_CASE("toolstack: create refuses a missing kernel or ramdisk, and a full table") {
    Dom0 dom0;
    Message error;
    DomainConfig config = dom0.config("ticker", {"kernel=missing"});
    CHECK(dom0.toolstack->create(config, false, error) == nullptr);
    CHECK(std::string(error.text()) == "kernel: no boot image named \"missing\"");
    config = dom0.config("ticker", {"ramdisk=missing"});
    CHECK(dom0.toolstack->create(config, false, error) == nullptr);
    CHECK(std::string(error.text()) == "ramdisk: no boot image named \"missing\"");
    CHECK(dom0.control.calls.empty());
    config = dom0.config("ticker", {"memory=2"});
    for (usize i = 0; i < Toolstack::kMaxDomains; ++i) {
        config.name[0] = static_cast<char>('A' + i);
        INFO(error.text());
        REQUIRE(dom0.toolstack->create(config, false, error));
    }
    config.name[0] = 'z';
    CHECK(dom0.toolstack->create(config, false, error) == nullptr);
    CHECK(std::string(error.text()) == "Dom0 keeps at most 64 domains of its own");
}

TEST_CASE("toolstack: console output goes to the history, and to the terminal while followed") {
    Dom0 dom0;
    ManagedDomain& ticker = dom0.create("ticker.cfg");
    dom0.print(1, "ticker: hello from domain\n");
    dom0.toolstack->drain_consoles();
    test::Log terminal;
    ticker.history.replay(terminal);
    CHECK(terminal.text == "ticker: hello from domain\n");
    terminal.text.clear();
    dom0.toolstack->follow(&ticker, &terminal);
    dom0.print(1, "tick 1\n");
    dom0.toolstack->drain_consoles();
    CHECK(terminal.text == "tick 1\n");
    dom0.toolstack->follow(nullptr, nullptr);
    dom0.print(1, "tick 2\n");
    dom0.toolstack->drain_consoles();
    CHECK(terminal.text == "tick 1\n");
    terminal.text.clear();
    ticker.history.replay(terminal);
    CHECK(terminal.text == "ticker: hello from domain\ntick 1\ntick 2\n");
}

TEST_CASE("toolstack: typed bytes go into the domain's ring and signal its port") {
    Dom0 dom0;
    ManagedDomain& ticker = dom0.create("ticker.cfg");
    CHECK(dom0.toolstack->type_into(ticker, "ls\n", 3) == 3);
    CHECK(dom0.control.calls.back() == "evtchn_send 5");
    auto* ring = reinterpret_cast<lamina_console_ring*>(dom0.control.ram(1, 2047 * 4096));
    CHECK(ring->in_prod == 3);
    CHECK(std::string(ring->in, 3) == "ls\n");
}

TEST_CASE("toolstack: destroy releases the console first; another domain is only destroyed") {
    Dom0 dom0;
    dom0.create("ticker.cfg");
    dom0.control.domains[7].name = "foreign";
    const size_t before = dom0.control.calls.size();
    CHECK(dom0.toolstack->destroy(1) == 0);
    CHECK(dom0.toolstack->destroy(7) == 0);
    CHECK(dom0.toolstack->destroy(9) == -LAMINA_ESRCH);
    CHECK(dom0.control.names(before) ==
          std::vector<std::string>{"unmap_frames", "evtchn_close", "destroy", "destroy", "destroy"});
    CHECK(dom0.toolstack->find(1) == nullptr);
    CHECK(dom0.control.mappings.empty());
}

TEST_CASE("toolstack: ended domains get their config's action, one line each") {
    Dom0 dom0;
    dom0.create("ticker.cfg");      // on_poweroff destroy, on_reboot restart, on_crash destroy
    dom0.create("restarting.cfg");  // on_poweroff restart, on_crash preserve
    CHECK(dom0.handle_ended().empty());

    SECTION("poweroff: destroyed") {
        dom0.print(1, "last words\n");
        dom0.control.end(1, LAMINA_SHUTDOWN_POWEROFF);
        CHECK(dom0.handle_ended() == "domain 1 (ticker) powered off; destroyed\n");
        CHECK(dom0.control.domains.count(1) == 0);
        CHECK(dom0.toolstack->find(1) == nullptr);
    }
    SECTION("a fault: crashed, with the hypervisor's reason") {
        dom0.control.end(1, LAMINA_SHUTDOWN_CRASH, "triple fault");
        CHECK(dom0.handle_ended() == "domain 1 (ticker) crashed: triple fault; destroyed\n");
    }
    SECTION("reboot: restarted from the remembered config") {
        dom0.print(1, "before the reboot\n");
        dom0.toolstack->drain_consoles();
        dom0.control.end(1, LAMINA_SHUTDOWN_REBOOT);
        CHECK(dom0.handle_ended() == "domain 1 (ticker) rebooted; restarted as domain 3\n");
        ManagedDomain* again = dom0.toolstack->find(3);
        REQUIRE(again);
        CHECK(dom0.control.domain(3).name == "ticker");
        CHECK(dom0.control.domain(3).state == LAMINA_DOMAIN_RUNNING);
        test::Log history;
        again->history.replay(history);
        CHECK(history.text == "before the reboot\n");  // the history goes on
    }
    SECTION("a restart that fails says why") {
        dom0.control.failures["populate_memory"] = -LAMINA_ENOMEM;
        dom0.control.end(2, LAMINA_SHUTDOWN_POWEROFF);
        CHECK(dom0.handle_ended() ==
              "domain 2 (phoenix) powered off; destroyed; restarting failed: populate_memory: ENOMEM\n");
        CHECK(dom0.toolstack->find(2) == nullptr);
    }
    SECTION("preserve: left as it is, and not acted on again") {
        dom0.control.end(2, LAMINA_SHUTDOWN_CRASH);
        CHECK(dom0.handle_ended() == "domain 2 (phoenix) crashed; preserved\n");
        CHECK(dom0.handle_ended().empty());
        CHECK(dom0.control.domain(2).state == LAMINA_DOMAIN_SHUTTING_DOWN);
        REQUIRE(dom0.toolstack->find(2));
        CHECK(dom0.toolstack->destroy(2) == 0);
    }
    SECTION("a domain destroyed behind Dom0's back") {
        dom0.control.mappings.erase(kConsoleSlotBase + 1);  // as if the hypervisor dropped it
        dom0.control.domains.erase(1);
        CHECK(dom0.handle_ended() == "domain 1 (ticker) is gone; its console is closed\n");
        CHECK(dom0.toolstack->find(1) == nullptr);
    }
    SECTION("destroy refused") {
        dom0.control.failures["destroy"] = -LAMINA_EBUSY;
        dom0.control.end(1, LAMINA_SHUTDOWN_POWEROFF);
        CHECK(dom0.handle_ended() == "domain 1 (ticker) powered off; domain_destroy: EBUSY\n");
        CHECK(dom0.toolstack->find(1) == nullptr);
    }
}

TEST_CASE("toolstack: a followed domain's last output reaches the terminal; then it is not followed") {
    Dom0 dom0;
    ManagedDomain& ticker = dom0.create("ticker.cfg");
    test::Log terminal;
    dom0.toolstack->follow(&ticker, &terminal);
    dom0.print(1, "bye\n");
    dom0.control.end(1, LAMINA_SHUTDOWN_POWEROFF);
    dom0.handle_ended();
    CHECK(terminal.text == "bye\n");
    CHECK(dom0.toolstack->followed() == nullptr);
}
