#include <catch2/catch.hpp>

#include <dom0/toolstack/domain_builder.h>
#include <lamina/pvh.h>

#include "elf_builder.h"
#include "fake_domain_control.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::toolstack;
using test::FakeDomainControl;

namespace {

constexpr u64 kEightMiBFrames = 2048;

DomainConfig finished_config(const std::string& text) {
    const Limits limits{4096, 8, 4};
    DomainConfig config;
    Diagnostics diagnostics;
    REQUIRE(parse_config(text.data(), text.size(), limits, config, diagnostics));
    REQUIRE(finish_config(limits, config, diagnostics));
    return config;
}

// A kernel as the test guests are: linked at 1 MiB, entered at its PVH note.
std::vector<u8> kernel_image() {
    test::ElfBuilder elf;
    elf.load(0x100000, 0x2000, 0x2000, 5);
    elf.load(0x102000, 0x100, 0x1000, 6);
    elf.pvh_note(0x100020);
    return elf.build();
}

struct Setup {
    FakeDomainControl control;
    std::vector<u8> kernel_bytes = kernel_image();
    std::string ramdisk_bytes = "ramdisk contents";
    BootImage kernel{"ticker", kernel_bytes.data(), kernel_bytes.size()};
    BootImage ramdisk{"initrd", reinterpret_cast<const u8*>(ramdisk_bytes.data()), ramdisk_bytes.size()};
    DomainConfig config =
        finished_config("name = \"ticker\"\nmemory = 8\nkernel = \"ticker\"\ncmdline = \"ticks=3\"\n");
    BuiltDomain built{};
    Message error;

    bool build(bool paused = false, const BootImage* with_ramdisk = nullptr) {
        return build_domain(control, config, {kernel, with_ramdisk}, paused, built, error);
    }
    // Nothing of a failed build is left: no domain, no mapping, no port.
    void check_nothing_left() {
        CHECK(control.domains.empty());
        CHECK(control.mappings.empty());
        CHECK(control.ports.empty());
    }
};

}  // namespace

TEST_CASE("domain builder: the calls in order, and a domain that runs") {
    Setup s;
    REQUIRE(s.build(false, &s.ramdisk));
    CHECK(s.control.calls == std::vector<std::string>{
                                 "create ticker 0",
                                 "set_max_memory 1 2048",
                                 "populate_memory 1 0 2048",
                                 "set_max_vcpus 1 1",
                                 "sched_set_domain 1 256 0",
                                 "map_frames 1 0 2048 0x80000",
                                 "set_vcpu_context 1 0",
                                 "unmap_frames 0x80000 2048",
                                 "map_frames 1 2047 1 0xa0001",
                                 "evtchn_alloc_unbound 1",
                                 "set_console 1 2047 5",
                                 "unpause 1",
                             });
    CHECK(s.built.domid == 1);
    CHECK(s.built.console_gfn == kEightMiBFrames - 1);
    CHECK(s.built.console_slot == kConsoleSlotBase + 1);
    CHECK(s.built.console_port == 5);
    CHECK(reinterpret_cast<u8*>(s.built.console) == s.control.ram(1, (kEightMiBFrames - 1) * 4096));
    // Only the console page stays mapped, at the domain's slot.
    REQUIRE(s.control.mappings.size() == 1);
    CHECK(s.control.mappings.begin()->first == kConsoleSlotBase + 1);
    CHECK(s.control.domain(1).state == LAMINA_DOMAIN_RUNNING);
    CHECK(s.control.domain(1).console_port == 5);
}

TEST_CASE("domain builder: the entry, start info, modules and console page in the domain's RAM") {
    Setup s;
    REQUIRE(s.build(false, &s.ramdisk));
    const lamina_vcpu_context& context = s.control.domain(1).context;
    CHECK(context.mode == LAMINA_VCPU_MODE_PROTECTED32);
    CHECK(context.flags == 0);
    CHECK(context.regs.rip == 0x100020);
    CHECK(context.regs.rflags == 2);
    CHECK(context.cr0 == 0);
    CHECK(context.regs.rsp == 0);

    pvh::StartInfo start;
    std::memcpy(&start, s.control.ram(1, context.regs.rbx), sizeof(start));
    CHECK(context.regs.rbx == 0x1000);
    CHECK(start.magic == pvh::kStartInfoMagic);
    CHECK(start.flags == 0);  // not privileged
    CHECK(std::string(reinterpret_cast<char*>(s.control.ram(1, start.command_line))) == "ticks=3");
    REQUIRE(start.module_count == 1);
    pvh::ModuleEntry module;
    std::memcpy(&module, s.control.ram(1, start.module_list), sizeof(module));
    CHECK(std::string(reinterpret_cast<char*>(s.control.ram(1, module.command_line))) == "initrd");
    CHECK(std::string(reinterpret_cast<char*>(s.control.ram(1, module.address)), module.size) == "ramdisk contents");
    // The kernel's bytes where its segment says.
    CHECK(std::memcmp(s.control.ram(1, 0x100000), s.kernel_bytes.data() + 64 + 56 * 3, 0x2000) == 0);

    // The memory map: RAM, then the console page reserved at the end.
    REQUIRE(start.memory_map_entries == 2);
    pvh::MemoryMapEntry map[2];
    std::memcpy(map, s.control.ram(1, start.memory_map), sizeof(map));
    CHECK((map[0].address == 0 && map[0].size == 8 * MiB - 4096 && map[0].type == pvh::MemoryType::Ram));
    CHECK((map[1].address == 8 * MiB - 4096 && map[1].size == 4096 && map[1].type == pvh::MemoryType::Reserved));
    // The builder left the console page as the hypervisor gave it: zero.
    const u8* page = s.control.ram(1, 8 * MiB - 4096);
    CHECK(std::all_of(page, page + 4096, [](u8 b) { return b == 0; }));
}

TEST_CASE("domain builder: paused, without a ramdisk, with maxmem and maxvcpus") {
    Setup s;
    s.config = finished_config("name = \"web\"\nmemory = 4\nmaxmem = 16\nvcpus = 2\nmaxvcpus = 4\nkernel = \"k\"\n");
    REQUIRE(s.build(true));
    CHECK(s.control.calls[1] == "set_max_memory 1 4096");
    CHECK(s.control.calls[2] == "populate_memory 1 0 1024");
    CHECK(s.control.calls[3] == "set_max_vcpus 1 4");
    CHECK(s.control.calls.back() == "set_console 1 1023 5");
    CHECK(s.control.domain(1).state == LAMINA_DOMAIN_BUILDING);
    pvh::StartInfo start;
    std::memcpy(&start, s.control.ram(1, 0x1000), sizeof(start));
    CHECK(start.module_count == 0);
    CHECK(start.command_line == 0);
}

TEST_CASE("domain builder: a step that fails undoes the steps before it") {
    struct Case {
        const char* call;
        i64 error;
        const char* message;
        std::vector<std::string> undo;  // the calls after the failed one
    };
    const std::vector<Case> cases = {
        {"create", -LAMINA_EEXIST, "a domain named \"ticker\" exists (domain_create: EEXIST)", {}},
        {"create", -LAMINA_ENOSPC,
         "the host runs as many domains as it can (domain_create: ENOSPC; info shows max_domains)", {}},
        {"create", -LAMINA_EPERM, "domain_create: EPERM", {}},
        {"set_max_memory", -LAMINA_EINVAL, "set_max_memory: EINVAL", {"destroy"}},
        {"populate_memory", -LAMINA_ENOMEM, "populate_memory: ENOMEM", {"destroy"}},
        {"set_max_vcpus", -LAMINA_EINVAL, "set_max_vcpus: EINVAL", {"destroy"}},
        {"sched_set_domain", -LAMINA_EINVAL, "sched_set_domain (cpu_weight 256, cap 0%): EINVAL", {"destroy"}},
        {"map_frames", -LAMINA_EFAULT, "map_frames (build window): EFAULT", {"destroy"}},
        {"set_vcpu_context", -LAMINA_EINVAL, "set_vcpu_context: EINVAL", {"unmap_frames", "destroy"}},
        // The window stays mapped, so the hypervisor refuses to destroy the domain: the error says so.
        {"unmap_frames", -LAMINA_EINVAL,
         "unmap_frames (build window): EINVAL; and domain_destroy: EBUSY: domain 1 is left", {"destroy"}},
        {"evtchn_alloc_unbound", -LAMINA_ENOSPC, "evtchn_alloc_unbound: ENOSPC", {"unmap_frames", "destroy"}},
        {"set_console", -LAMINA_EINVAL, "set_console: EINVAL", {"unmap_frames", "evtchn_close", "destroy"}},
        {"unpause", -LAMINA_ENOSYS, "unpause: ENOSYS", {"unmap_frames", "evtchn_close", "destroy"}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.call);
        Setup s;
        s.control.failures[c.call] = c.error;
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == c.message);
        std::vector<std::string> names = s.control.names();
        const auto failed = std::find(names.begin(), names.end(), c.call);
        REQUIRE(failed != names.end());
        CHECK(std::vector<std::string>(failed + 1, names.end()) == c.undo);
        if (std::string(c.call) != "unmap_frames") s.check_nothing_left();
    }
}

TEST_CASE("domain builder: cpu_weight, cap and cpus are applied before the domain runs") {
    Setup s;
    s.config = finished_config("name = \"web\"\nmemory = 4\nvcpus = 2\nmaxvcpus = 3\ncpu_weight = 512\ncap = 50\n"
                               "cpus = \"1-2\"\nkernel = \"k\"\n");
    REQUIRE(s.build());
    CHECK(std::vector<std::string>(s.control.calls.begin() + 3, s.control.calls.begin() + 8) ==
          std::vector<std::string>{"set_max_vcpus 1 3", "sched_set_domain 1 512 50",
                                   "sched_set_affinity 1 0 0x6,0,0,0", "sched_set_affinity 1 1 0x6,0,0,0",
                                   "sched_set_affinity 1 2 0x6,0,0,0"});
    CHECK(s.control.calls.back() == "unpause 1");
    const FakeDomainControl::Domain& web = s.control.domain(1);
    CHECK(web.weight == 512);
    CHECK(web.cap == 50);
    for (const lamina_sched_affinity& affinity : web.affinity) {
        CHECK(affinity.hard[0] == 0x6);
        CHECK(affinity.soft[0] == 0);  // a new vCPU's: no preference
    }
}

TEST_CASE("domain builder: without cpus every vCPU keeps the hypervisor's affinity") {
    Setup s;
    s.config = finished_config("name = \"web\"\nmemory = 4\nvcpus = 2\nkernel = \"k\"\n");
    REQUIRE(s.build());
    const std::vector<std::string> names = s.control.names();
    CHECK(std::count(names.begin(), names.end(), "sched_set_affinity") == 0);
    CHECK(s.control.domain(1).affinity[1].hard[0] == ~u64{0});
}

TEST_CASE("domain builder: scheduling the hypervisor refuses undoes the build, in one line") {
    Setup s;
    SECTION("a cap beyond the host's CPUs") {
        s.control.host_cpus = 1;
        s.config = finished_config("name = \"web\"\nmemory = 4\nvcpus = 2\ncap = 200\nkernel = \"k\"\n");
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "sched_set_domain (cpu_weight 256, cap 200%): EINVAL");
        CHECK(s.control.names(4) == std::vector<std::string>{"sched_set_domain", "destroy"});
    }
    SECTION("cpus without a CPU the host runs") {
        s.control.host_cpus = 2;
        s.config = finished_config("name = \"web\"\nmemory = 4\ncpus = \"3\"\nkernel = \"k\"\n");
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "sched_set_affinity (cpus, vCPU 0): EINVAL");
        CHECK(s.control.names(5) == std::vector<std::string>{"sched_set_affinity", "destroy"});
    }
    SECTION("any other refusal, with its error") {
        s.config = finished_config("name = \"web\"\nmemory = 4\nvcpus = 2\ncpus = \"0\"\nkernel = \"k\"\n");
        s.control.failures["sched_set_affinity"] = -LAMINA_EPERM;
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "sched_set_affinity (cpus, vCPU 0): EPERM");
    }
    s.check_nothing_left();
}

TEST_CASE("domain builder: the console page mapping failing is undone too") {
    Setup s;
    // The second map_frames (the console page) at a slot something else holds.
    s.control.mappings[kConsoleSlotBase + 1] = {99, 0, 1};
    CHECK_FALSE(s.build());
    CHECK(std::string(s.error.text()) == "map_frames (console page): EEXIST");
    CHECK(s.control.names(8) == std::vector<std::string>{"map_frames", "destroy"});
    CHECK(s.control.domains.empty());
}

TEST_CASE("domain builder: a domain that cannot be destroyed is named in the error") {
    Setup s;
    s.control.failures["set_console"] = -LAMINA_EINVAL;
    s.control.failures["destroy"] = -LAMINA_EBUSY;
    CHECK_FALSE(s.build());
    CHECK(std::string(s.error.text()) == "set_console: EINVAL; and domain_destroy: EBUSY: domain 1 is left");
}

TEST_CASE("domain builder: what is refused before any hypercall") {
    Setup s;
    SECTION("more memory than the build window") {
        s.config = finished_config("name = \"big\"\nmemory = 513\nkernel = \"k\"\n");
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "memory: 513 MiB is more than the 512 MiB Dom0 can build a domain with");
    }
    SECTION("a name the hypervisor cannot hold") {
        s.config = finished_config("name = \"abcdefghijklmnopqrstuvwxyz012345\"\nkernel = \"k\"\n");
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) ==
              "name: \"abcdefghijklmnopqrstuvwxyz012345\" is longer than the 31 characters a domain name may have");
    }
    SECTION("an HVM domain") {
        s.config = finished_config("name = \"win\"\ntype = \"hvm\"\nkernel = \"k\"\n");
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "type: hvm domains cannot be built yet; only pvh");
    }
    CHECK(s.control.calls.empty());
}

TEST_CASE("domain builder: the largest domain fits the build window") {
    Setup s;
    s.config = finished_config("name = \"big\"\nmemory = 512\nkernel = \"k\"\n");
    REQUIRE(s.build());
    CHECK(s.control.calls[5] == "map_frames 1 0 131072 0x80000");
}

TEST_CASE("domain builder: a kernel that does not load is refused and the domain destroyed") {
    Setup s;
    SECTION("not an ELF image") {
        s.kernel_bytes.assign(100, 0x90);
        s.kernel = {"ticker", s.kernel_bytes.data(), s.kernel_bytes.size()};
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) == "loading ticker: the kernel is not a loadable ELF image: no ELF magic");
    }
    SECTION("a segment beyond the domain's RAM") {
        test::ElfBuilder elf;
        elf.load(0x1000000, 0x100, 0x100);  // 16 MiB, the domain has 8
        elf.pvh_note(0x1000000);
        s.kernel_bytes = elf.build();
        s.kernel = {"ticker", s.kernel_bytes.data(), s.kernel_bytes.size()};
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) ==
              "loading ticker: segment 0 [0x1000000, 0x1000100) is outside the RAM [0, 0x800000)");
    }
    SECTION("a kernel over the console page") {
        test::ElfBuilder elf;
        elf.load(0x7ff000, 0x100, 0x100);
        elf.pvh_note(0x7ff000);
        s.kernel_bytes = elf.build();
        s.kernel = {"ticker", s.kernel_bytes.data(), s.kernel_bytes.size()};
        CHECK_FALSE(s.build());
        CHECK(std::string(s.error.text()) ==
              "loading ticker: segment 0 [0x7ff000, 0x7ff100) overlaps reserved region 0");
    }
    CHECK(s.control.names(6) == std::vector<std::string>{"unmap_frames", "destroy"});
    s.check_nothing_left();
}

TEST_CASE("domain builder: release unmaps the console page, closes the port, destroys") {
    Setup s;
    REQUIRE(s.build());
    const size_t before = s.control.calls.size();
    CHECK(release_domain(s.control, s.built) == 0);
    CHECK(std::vector<std::string>(s.control.calls.begin() + static_cast<long>(before), s.control.calls.end()) ==
          std::vector<std::string>{"unmap_frames 0xa0001 1", "evtchn_close 5", "destroy 1"});
    s.check_nothing_left();
}
