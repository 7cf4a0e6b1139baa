// The test guests (tests/guests), run by the self-test on whatever vendor this machine has.
#include <arch/x86_64/smp.h>
#include <arch/x86_64/cpu.h>
#include <hypervisor/boot_modules.h>
#include <hypervisor/time.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/memory.h>
#include <hypervisor/selftest.h>
#include <hypervisor/virt.h>
#include <lamina/string.h>

namespace lamina {
namespace {

constexpr u64 kGuestRam = 4 * MiB;
constexpr u64 kExitBudget = 100000;

// A domain of the self-test (run by run_alone on the CPU that asks), built from a PVH image.
// Named after the image, or "<image>-2" and so on while that name is taken.
Domain* create_test_domain(const char* image_name, const u8* image, usize size) {
    char name[LAMINA_DOMAIN_NAME_SIZE];
    Domain* domain = nullptr;
    i64 created = -1;
    for (u32 copy = 1; copy < 10; ++copy) {
        BufferSink sink(name, sizeof name);
        if (copy == 1) format(sink, "{}", image_name);
        else format(sink, "{}-{}", image_name, copy);
        created = domains().create(name, false, false, &domain);
        if (created != -static_cast<i64>(LAMINA_EEXIST)) break;
    }
    if (created < 0) return nullptr;
    if (!domain->build_pvh(image, size, kGuestRam)) {
        domains().destroy(*domain);
        return nullptr;
    }
    return domain;
}

// Boots the named module, runs it to its end, checks `expected_end`, frees it and checks that
// every frame came back.
// `alone`: nothing else allocates meanwhile, so free memory must come back to the same figure.
void run_test_guest(selftest::Context& t, const char* name, GuestEnd expected_end, GuestConsole* console_out,
                    bool alone = true) {
    const u8* image;
    usize size;
    if (!t.expect(boot_modules::find(name, &image, &size), "no boot module named {}", name)) return;
    u64 free_before = memory::stats().free_bytes;
    Domain* guest = create_test_domain(name, image, size);
    if (!t.expect(guest != nullptr, "guest {} could not be created", name)) return;
    GuestEnd end = guest->run_alone(kExitBudget);
    t.expect(end == expected_end, "guest {} ended with \"{}\" after {} exits, expected \"{}\"", name,
             guest_end_name(end), guest->exits(), guest_end_name(expected_end));
    *console_out = guest->console();
    domains().destroy(*guest);
    if (alone)
        t.expect(memory::stats().free_bytes == free_before, "guest {} leaked {} KiB", name,
                 (free_before - memory::stats().free_bytes) / KiB);
}

// A guest that checks its own virtual CPU: it must halt with every check it printed passing.
void run_checking_guest(selftest::Context& t, const char* name) {
    GuestConsole console;
    run_test_guest(t, name, GuestEnd::Halted, &console);
    t.expect(console.plan > 0 && console.ok_lines == console.plan && console.not_ok_lines == 0,
             "guest checks: {} ok, {} not ok of {}; first failure: {}", console.ok_lines, console.not_ok_lines,
             console.plan, console.first_failure);
}

// Runs `guest` one exit at a time until it has printed `checks` passing checks (or ended).
void run_until_checks(Domain& guest, u32 checks) {
    while (guest.console().ok_lines < checks && guest.exits() < kExitBudget &&
           guest.run_alone(guest.exits() + 1) == GuestEnd::ExitBudget) {
    }
}

// A device of plain registers for the MMIO guest: what is written reads back.
class ScratchRegisters final : public emulate::MmioHandler {
public:
    static constexpr u64 kBase = 0x10000000;  // tests/guests/mmio
    static constexpr u64 kBytes = 64 * 8;
    u64 read(u64 gpa, u8 size) override {
        u64 value = 0;
        str::copy_bytes(&value, bytes_ + (gpa - kBase), size);
        ++accesses;
        return value;
    }
    void write(u64 gpa, u8 size, u64 value) override {
        str::copy_bytes(bytes_ + (gpa - kBase), &value, size);
        ++accesses;
    }
    u32 accesses = 0;

private:
    u8 bytes_[kBytes] = {};
};

// A guest run on another CPU's idle loop while this CPU does something else.
struct RemoteGuest {
    const char* name;
    GuestEnd end = GuestEnd::Running;
    GuestConsole console;
    Atomic<u32> created{0};  // set just before it starts running
};

void run_remote_guest(void* argument) {
    auto* remote = static_cast<RemoteGuest*>(argument);
    const u8* image;
    usize size;
    if (!boot_modules::find(remote->name, &image, &size)) return;
    Domain* guest = create_test_domain(remote->name, image, size);
    if (!guest) return;
    remote->created.store(1);
    remote->end = guest->run_alone(kExitBudget);
    remote->console = guest->console();
    domains().destroy(*guest);
}

}  // namespace

LAMINA_SELFTEST("guest long64: a PVH kernel reaches long mode and sees a proper virtual CPU") {
    run_checking_guest(t, "long64");
}

LAMINA_SELFTEST("guest prot32: a 32-bit protected-mode kernel sees a proper virtual CPU") {
    run_checking_guest(t, "prot32");
}

LAMINA_SELFTEST("guest real16: a kernel that drops to real mode runs there") {
    run_checking_guest(t, "real16");
}

LAMINA_SELFTEST("guest xmm_probe: SSE state is the guest's own, switched when another guest runs") {
    const u8* image;
    usize size;
    if (!t.expect(boot_modules::find("xmm_probe", &image, &size), "no boot module named xmm_probe")) return;
    u64 free_before = memory::stats().free_bytes;
    Domain* first = create_test_domain("xmm_probe", image, size);
    if (!t.expect(first != nullptr, "the first guest could not be created")) return;
    // Stop it half-way through the line it prints after setting its markers (one exit per byte,
    // after its three first checks)...
    constexpr u32 kChecksBeforeMarkers = 3;
    run_until_checks(*first, kChecksBeforeMarkers);
    GuestEnd paused = first->run_alone(first->exits() + 10);
    t.expect(paused == GuestEnd::ExitBudget, "the first guest did not pause (it ended: {})", guest_end_name(paused));
    t.expect(first->console().ok_lines == kChecksBeforeMarkers, "the first guest paused after {} checks, not {}",
             first->console().ok_lines, kChecksBeforeMarkers);
    // ... run a second one to completion on this CPU meanwhile: it must start clean ...
    GuestConsole second;
    run_test_guest(t, "xmm_probe", GuestEnd::Halted, &second, false);
    t.expect(second.plan > 0 && second.ok_lines == second.plan, "the second guest: {} of {} checks; {}",
             second.ok_lines, second.plan, second.first_failure);
    // ... then let the first finish: its marker must have come back with it.
    GuestEnd end = first->run_alone(kExitBudget);
    const GuestConsole& console = first->console();
    t.expect(end == GuestEnd::Halted && console.plan > 0 && console.ok_lines == console.plan,
             "the first guest: {} of {} checks; {}", console.ok_lines, console.plan, console.first_failure);
    domains().destroy(*first);
    t.expect(memory::stats().free_bytes == free_before, "{} KiB leaked", (free_before - memory::stats().free_bytes) / KiB);
}

LAMINA_SELFTEST("guest stage2_protect: a page made read-only while the guest runs reads, and a write ends it") {
    constexpr u64 kProtectedPage = 0x300000;  // tests/guests/stage2_protect
    const u8* image;
    usize size;
    if (!t.expect(boot_modules::find("stage2_protect", &image, &size), "no boot module named stage2_protect")) return;
    u64 free_before = memory::stats().free_bytes;
    Domain* guest = create_test_domain("stage2_protect", image, size);
    if (!t.expect(guest != nullptr, "the guest could not be created")) return;
    run_until_checks(*guest, 1);  // it has written the page and said so
    t.expect(guest->console().ok_lines == 1, "the guest did not report its write ({} lines)", guest->console().ok_lines);
    t.expect(guest->protect(kProtectedPage, 4096, {.read = true, .write = false, .execute = false}),
             "stage 2 refused to write-protect the page");
    GuestEnd end = guest->run_alone(kExitBudget);
    const ExitInfo& exit = guest->vcpu(0)->last_exit();
    t.expect(end == GuestEnd::Stage2Fault, "the guest ended with \"{}\"", guest_end_name(end));
    t.expect(exit.reason == ExitReason::Stage2Fault && exit.stage2.guest_physical == kProtectedPage &&
                 exit.stage2.write && !exit.stage2.misconfigured,
             "the fault named {:#x} write={}", exit.stage2.guest_physical, exit.stage2.write);
    t.expect(guest->console().plan > 0 && guest->console().ok_lines == guest->console().plan,
             "the guest's checks failed: {}", guest->console().first_failure);
    domains().destroy(*guest);
    t.expect(memory::stats().free_bytes == free_before, "{} KiB leaked", (free_before - memory::stats().free_bytes) / KiB);
}

LAMINA_SELFTEST("guest interrupts: HLT blocks until the vCPU's timer; interrupts wait for the window") {
    constexpr u8 kTimerVector = 0x40;  // tests/guests/interrupts
    constexpr u8 kLateVector = 0x41;
    constexpr u64 kSleepNs = 5000000;
    const u8* image;
    usize size;
    if (!t.expect(boot_modules::find("interrupts", &image, &size), "no boot module named interrupts")) return;
    u64 free_before = memory::stats().free_bytes;
    Domain* guest = create_test_domain("interrupts", image, size);
    if (!t.expect(guest != nullptr, "the guest could not be created")) return;
    const u64 start = time::now_ns();
    guest->vcpu(0)->set_timer(start + kSleepNs, kTimerVector);
    run_until_checks(*guest, 1);
    const u64 woke = time::now_ns();
    t.expect(woke - start >= kSleepNs, "the guest ran on after {} us, before its timer", (woke - start) / 1000);
    guest->vcpu(0)->set_timer(1, kLateVector);  // due at once: pending while the guest has interrupts off
    GuestEnd end = guest->run_alone(kExitBudget);
    const GuestConsole& console = guest->console();
    t.expect(end == GuestEnd::Halted, "the guest ended with \"{}\"", guest_end_name(end));
    t.expect(console.plan > 0 && console.ok_lines == console.plan, "guest checks: {} ok of {}; first failure: {}",
             console.ok_lines, console.plan, console.first_failure);
    domains().destroy(*guest);
    t.expect(memory::stats().free_bytes == free_before, "{} KiB leaked", (free_before - memory::stats().free_bytes) / KiB);
}

LAMINA_SELFTEST("guest mmio: device accesses are decoded and emulated through the domain's handler") {
    const u8* image;
    usize size;
    if (!t.expect(boot_modules::find("mmio", &image, &size), "no boot module named mmio")) return;
    u64 free_before = memory::stats().free_bytes;
    Domain* guest = create_test_domain("mmio", image, size);
    if (!t.expect(guest != nullptr, "the guest could not be created")) return;
    ScratchRegisters device;
    t.expect(guest->claim_mmio(ScratchRegisters::kBase, ScratchRegisters::kBytes, device), "the claim was refused");
    GuestEnd end = guest->run_alone(kExitBudget);
    const GuestConsole& console = guest->console();
    t.expect(end == GuestEnd::Halted, "the guest ended with \"{}\"", guest_end_name(end));
    t.expect(console.plan > 0 && console.ok_lines == console.plan, "guest checks: {} ok of {}; first failure: {}",
             console.ok_lines, console.plan, console.first_failure);
    t.expect(device.accesses >= 20, "the device saw {} accesses", device.accesses);
    domains().destroy(*guest);
    t.expect(memory::stats().free_bytes == free_before, "{} KiB leaked", (free_before - memory::stats().free_bytes) / KiB);
}

LAMINA_SELFTEST("guest triple_fault: a triple-faulting guest is ended, the hypervisor goes on") {
    GuestConsole console;
    run_test_guest(t, "triple_fault", GuestEnd::TripleFault, &console);
}

LAMINA_SELFTEST("guest stage2_fault: an access outside guest memory ends that guest") {
    GuestConsole console;
    run_test_guest(t, "stage2_fault", GuestEnd::Stage2Fault, &console);
}

LAMINA_SELFTEST("guests: one guest's triple fault leaves a guest on another CPU running") {
    if (smp::online_count() < 2) return;  // the sequential runs above cover one CPU
    u64 free_before = memory::stats().free_bytes;
    // The exit-cost guest takes thousands of exits, so under QEMU (CPUs in parallel) it is still
    // running when this one faults; Bochs interleaves its CPUs too coarsely to promise that.
    RemoteGuest remote{.name = "exit_bench"};
    if (!t.expect(smp::start_on(1, run_remote_guest, &remote), "cpu1 would not take the work")) return;
    // Fault only once the other guest runs, so that the two overlap.
    u64 deadline = time::now_ns() + 10000000000;
    while (!remote.created.load() && time::now_ns() < deadline) x86::pause();
    GuestConsole console;
    run_test_guest(t, "triple_fault", GuestEnd::TripleFault, &console, false);
    if (!t.expect(smp::wait_for_work(1, 30000000), "the guest on cpu1 did not finish within 30 s")) return;
    t.expect(remote.created.load() != 0, "no guest could be created on cpu1");
    t.expect(remote.end == GuestEnd::Halted, "the guest on cpu1 ended with \"{}\"", guest_end_name(remote.end));
    t.expect(memory::stats().free_bytes == free_before, "{} KiB leaked", (free_before - memory::stats().free_bytes) / KiB);
}

}  // namespace lamina
