// Boot: from the Multiboot2 hand-off to a machine whose every CPU runs the hypervisor with its
// virtualization extension on. Phase 1 runs on the image's boot stack with the loader's memory
// still identity-mapped; phase 2 runs on a guard-paged stack under the hypervisor's own tables.
#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <arch/x86_64/descriptors.h>
#include <arch/x86_64/emulator_exit.h>
#include <arch/x86_64/smp.h>
#include <arch/x86_64/tsc.h>
#include <boot/multiboot2/multiboot2.h>
#include <drivers/acpi/acpi.h>
#include <drivers/uart/uart16550.h>
#include <hypervisor/boot/cmdline.h>
#include <hypervisor/boot_modules.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/mm/device_ranges.h>
#include <hypervisor/panic.h>
#include <hypervisor/percpu.h>
#include <hypervisor/platform.h>
#include <hypervisor/console.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <hypervisor/selftest.h>
#include <lamina/abi/domain.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <lamina/string.h>

extern "C" void (*__init_array_start[])();
extern "C" void (*__init_array_end[])();

namespace lamina {
namespace {

constexpr u32 kMultiboot2Magic = 0x36d76289;
constexpr usize kMaxBootInfoBytes = 1 * MiB;

Uart16550 console_uart;
mb2::BootInfo boot_info;
HypervisorOptions options;
u64 entry_tsc;

// Early IST stacks for the boot CPU, until phase 2 replaces them with guard-paged ones.
LAMINA_ALIGNED(16) u8 early_ist_stacks[x86::kIstCount][4096];

void run_global_constructors() {
    for (auto* ctor = __init_array_start; ctor < __init_array_end; ++ctor) (*ctor)();
}

void init_console(const char* cmdline_diagnostics) {
    u16 port = 0;
    switch (options.console) {
        case HypervisorOptions::Console::Com1: port = 0x3f8; break;
        case HypervisorOptions::Console::Com2: port = 0x2f8; break;
        case HypervisorOptions::Console::None: break;
    }
    if (port && console_uart.init(port, options.baud)) log::attach_console(&console_uart);
    log::set_level(options.log_level);
    if (cmdline_diagnostics[0]) log::print("{}", cmdline_diagnostics);
}

const char* boot_firmware() { return boot_info.has(mb2::TagType::Efi64SystemTable) ? "uefi" : "bios"; }

[[noreturn]] void finish(bool success) {
    if (options.emu_exit) x86::end_emulator(success);
    for (;;) x86::enable_interrupts_and_halt();
}

void end_emulator_on_panic(bool success) { x86::end_emulator(success); }
void stop_other_cpus_on_panic() { apic::send_nmi_to_all_others(); }

void print_ready_line() {
    memory::Stats mem = memory::stats();
    const virt::Summary& v = virt::summary();
    log::print("LAMINA READY version={} cpus={}/{} mem={} virt={} stage2={} boot={}\n", LAMINA_VERSION,
               smp::online_count(), platform::present_cpu_count(), mem.usable_bytes / MiB,
               virt::vendor_name(v.vendor), virt::stage2_name(v.vendor), boot_firmware());
    u64 image_bytes = memory::image_bytes();
    log::print("LAMINA STAT entry_tsc={} boot_tsc={} tsc_khz={} image_bytes={} hv_ram_kib={} free_kib={}\n",
               entry_tsc, x86::rdtsc() - entry_tsc, time::tsc_frequency() / 1000, image_bytes,
               mem.hypervisor_bytes / KiB, mem.free_bytes / KiB);
}

// The exit-cost guest (tests/guests/exit_bench): its figures become LAMINA STAT lines.
void run_exit_benchmark() {
    const u8* image;
    usize size;
    if (!boot_modules::find("exit_bench", &image, &size)) {
        log::error("bench: no exit_bench module");
        return;
    }
    Domain* domain = nullptr;
    if (domains().create("exit_bench", false, false, &domain) < 0) return;
    if (domain->build_pvh(image, size, 4 * MiB)) {
        domain->relay_stats();
        GuestEnd end = domain->run_alone(1000000);
        if (end != GuestEnd::Halted) log::error("bench: the guest ended with {}", guest_end_name(end));
    }
    domains().destroy(*domain);
}

// Dom0 powering off or crashing takes the host with it (Xen's rule): how it ends is how the
// machine ends.
void control_domain_ended(Domain& dom0) {
    const bool poweroff = !dom0.faulted() && dom0.shutdown_reason() == LAMINA_SHUTDOWN_POWEROFF;
    if (!poweroff) log::error("dom0 ended: {}; the machine stops", guest_end_name(dom0.end()));
    else log::info("dom0 powered off; the machine stops");
    log::drain_console();
    finish(poweroff);
}

// The host's device memory below 4 GiB, 1:1 and uncached, for Dom0 to drive: what the memory
// map does not call RAM, less the local APIC and the I/O APICs (the hypervisor's), and less the
// window Dom0's toolstack maps other domains at (dom0/toolstack/domain_builder.h: 2 GiB on, no
// device memory on QEMU or Bochs; PCI BARs sit above 3 GiB). The IOMMUs' registers join the
// hypervisor's share once their tables are parsed.
void map_control_domain_devices(Domain& dom0) {
    constexpr u64 kToolstackWindow = 2 * GiB;
    constexpr u64 kToolstackWindowEnd = 0xa0000000 + u64{LAMINA_DOMID_MAX + 1} * kFrameSize;
    mm::DeviceRanges devices(4 * GiB);
    bool fits = devices.remove(kToolstackWindow, kToolstackWindowEnd);
    for (const mb2::MemoryRegion& region : boot_info.memory_regions())
        if (region.available()) fits = fits && devices.remove(region.base, region.end());
    const acpi::Platform& acpi = platform::acpi();
    const u64 lapic = acpi.madt.local_apic_address ? acpi.madt.local_apic_address : 0xfee00000;
    fits = fits && devices.remove(lapic, lapic + kFrameSize);
    for (const acpi::IoApic& ioapic : acpi.madt.io_apics) fits = fits && devices.remove(ioapic.address, ioapic.address + kFrameSize);
    if (!fits) log::warn("dom0: the memory map has too many holes; some device memory is not mapped");
    u64 mapped = 0;
    for (usize i = 0; i < devices.count(); ++i) {
        if (dom0.map_host_device(devices[i].base, devices[i].end - devices[i].base)) mapped += devices[i].end - devices[i].base;
        else log::warn("dom0: device memory {:#x}-{:#x} could not be mapped", devices[i].base, devices[i].end);
    }
    log::info("dom0: {} MiB of device memory mapped 1:1 in {} ranges", mapped / MiB, devices.count());
}

// Dom0, the control domain, from the Multiboot2 module named "dom0", with every other module
// (guest images and configurations) handed to it by name. From then on every CPU runs the
// scheduled domains. Returns when there is no Dom0 to run.
void run_dom0() {
    constexpr u64 kDefaultDom0Memory = 64 * MiB;
    const u8* image;
    usize size;
    if (!boot_modules::find("dom0", &image, &size)) {
        log::info("dom0: no module named dom0; the CPUs idle");
        return;
    }
    boot_modules::BootModule found[pvh::kMaxModules + 1];
    const usize total = boot_modules::list(found, array_size(found));
    pvh::Module modules[pvh::kMaxModules];
    usize module_count = 0;
    for (usize i = 0; i < min(total, array_size(found)); ++i) {
        if (str::equal(found[i].name, "dom0")) continue;
        if (module_count == pvh::kMaxModules) {
            log::warn("dom0: more than {} modules; \"{}\" and those after it are left out", pvh::kMaxModules, found[i].name);
            break;
        }
        modules[module_count++] = {found[i].data, found[i].size, found[i].name};
    }
    scheduler::init();
    const u64 ram = options.dom0_mem ? options.dom0_mem : kDefaultDom0Memory;
    Domain* dom0 = nullptr;
    if (domains().create("dom0", true, true, &dom0) < 0 ||
        !dom0->build_pvh(image, size, ram, modules, module_count)) {
        log::error("dom0: could not be built; the CPUs idle");
        if (dom0) domains().destroy(*dom0);
        return;
    }
    map_control_domain_devices(*dom0);
    domains().set_control_domain_ended(control_domain_ended);
    console::start_input(console_uart);
    log::info("dom0: {} MiB, {} modules, starting", ram / MiB, module_count);
    (void)dom0->unpause();
    for (u32 cpu = 1; cpu < smp::online_count(); ++cpu) {
        if (!smp::start_on(cpu, [](void*) { scheduler::run_this_cpu(); }, nullptr))
            log::error("sched: cpu{} would not start scheduling", cpu);
    }
    scheduler::run_this_cpu();
}

// Each way the hypervisor can die must print a diagnosis; crash= proves it on real paths.
[[gnu::noinline]] u64 overflow_stack(u64 depth) {
    volatile u8 frame[512];
    frame[0] = static_cast<u8>(depth);
    // The bound is far beyond any stack; it only keeps the recursion formally finite.
    return depth < (u64{1} << 40) ? overflow_stack(depth + 1) + frame[0] : 0;
}

void crash_on_purpose(HypervisorOptions::Crash crash) {
    switch (crash) {
        case HypervisorOptions::Crash::None: return;
        case HypervisorOptions::Crash::Panic: panic("crash=panic asked for on the command line");
        case HypervisorOptions::Crash::PageFault:
            *reinterpret_cast<volatile u64*>(0xdead0000) = 1;  // never mapped
            return;
        case HypervisorOptions::Crash::StackOverflow: overflow_stack(0); return;
    }
}

[[noreturn]] void boot_phase2() {
    PerCpu& bsp = smp::boot_cpu();
    smp::init_cpu_descriptors(bsp);
    x86::enable_cpu_features();

    const acpi::Platform& acpi = platform::acpi();
    tsc::Calibration tsc = tsc::calibrate(acpi.hpet.present ? acpi.hpet.base_address : 0);
    time::set_tsc_frequency(tsc.hz);
    log::info("tsc: {} MHz (from {}){}", tsc.hz / 1000000, tsc::source_name(tsc.source),
              x86::cpu_features().invariant_tsc ? ", invariant" : "");

    apic::init_boot_cpu(options.apic != HypervisorOptions::Apic::XApic);
    if (options.apic == HypervisorOptions::Apic::X2Apic && apic::mode() != apic::Mode::X2Apic)
        log::warn("apic=x2apic asked for, but this CPU has no x2APIC");
    bsp.apic_id = apic::this_cpu_id();
    panic_hooks.stop_other_cpus = stop_other_cpus_on_panic;

    virt::Summary v = virt::detect();
    if (v.vendor != virt::Vendor::None && !virt::enable_on_this_cpu())
        log::error("cannot turn {} on on the boot CPU", virt::vendor_name(v.vendor));

    u32 apic_ids[kMaxCpus];
    u32 present = platform::usable_apic_ids(apic_ids, kMaxCpus);
    smp::start_application_processors(apic_ids, present, options.max_cpus);
    log::info("{} of {} CPUs online", smp::online_count(), present);

    print_ready_line();
    domains().init();
    crash_on_purpose(options.crash);
    if (options.bench) run_exit_benchmark();
    if (options.selftest) finish(selftest::run_all() == 0);
    run_dom0();
    for (;;) x86::enable_interrupts_and_halt();
}

}  // namespace
}  // namespace lamina

extern "C" [[noreturn]] void boot_main(lamina::u32 magic, lamina::u32 info_phys, lamina::u64 entry_tsc) {
    using namespace lamina;
    PerCpu& bsp = smp::boot_cpu();
    bsp.index = 0;
    install_percpu(bsp);
    x86::load_descriptors(bsp.descriptors, {
        reinterpret_cast<u64>(early_ist_stacks[0] + 4096), reinterpret_cast<u64>(early_ist_stacks[1] + 4096),
        reinterpret_cast<u64>(early_ist_stacks[2] + 4096)});
    x86::init_idt();
    lamina::entry_tsc = entry_tsc;
    run_global_constructors();
    x86::detect_cpu_features();

    // The loader's first 4 GiB are in the physmap from the start (boot/entry.S), so pointers
    // the parser keeps into the boot information stay valid under the hypervisor's tables.
    const u8* info = static_cast<const u8*>(memory::phys_to_virt(info_phys));
    if (magic != kMultiboot2Magic) {
        console_uart.init(0x3f8, 115200);
        log::attach_console(&console_uart);
        panic("not started by a Multiboot2 loader (magic {:#x})", magic);
    }
    u32 total_size = *reinterpret_cast<const u32*>(info);
    mb2::ParseResult parsed = mb2::parse(info, min<usize>(total_size, kMaxBootInfoBytes), boot_info);

    char diagnostics[512];
    BufferSink diagnostic_sink(diagnostics, sizeof(diagnostics));
    if (parsed.ok() && boot_info.command_line)
        parse_hypervisor_command_line(boot_info.command_line, options, diagnostic_sink);
    init_console(diagnostics);
    if (options.emu_exit) panic_hooks.end_emulator = end_emulator_on_panic;

    const x86::CpuFeatures& cpu = x86::cpu_features();
    log::info("Lamina {} (x86-64), {} {}", LAMINA_VERSION, cpu.vendor_string, cpu.brand);
    if (!parsed.ok())
        panic("bad Multiboot2 information: {} (tag {} at offset {})", parsed.reason, parsed.tag_type,
              parsed.offset);
    log::info("boot: {} via {}, command line \"{}\"", boot_firmware(),
              boot_info.boot_loader_name ? boot_info.boot_loader_name : "?",
              boot_info.command_line ? boot_info.command_line : "");

    boot_modules::remember(boot_info);
    platform::discover_acpi(boot_info);
    memory::init(boot_info, info_phys, total_size);
    platform::report();
    u64 stack_top = memory::allocate_stack(4);
    if (!stack_top) panic("no memory for the boot CPU's stack");
    bsp.stack_top = stack_top;
    // A zero return address ends every backtrace walk at boot_phase2.
    asm volatile("movq %0, %%rsp; xorl %%ebp, %%ebp; pushq $0; jmp *%1" : : "r"(stack_top), "r"(&boot_phase2) : "memory");
    __builtin_unreachable();
}

namespace lamina {
namespace {
// A global whose constructor must have run before any self-test.
struct ConstructedAtBoot {
    ConstructedAtBoot() : magic(0x1a31a) {}
    volatile u32 magic;
};
ConstructedAtBoot constructed_at_boot;
}  // namespace

LAMINA_SELFTEST("boot: global constructors ran") {
    t.expect(constructed_at_boot.magic == 0x1a31a, "constructor did not run (magic {:#x})", constructed_at_boot.magic);
}
}  // namespace lamina
