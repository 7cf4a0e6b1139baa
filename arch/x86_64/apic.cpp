#include <arch/x86_64/apic.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <arch/x86_64/interrupts.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/percpu.h>
#include <hypervisor/time.h>

namespace lamina::apic {
namespace {

// Register offsets (SDM Vol. 3A table 11-1); in x2APIC mode MSR = 0x800 + offset / 16.
constexpr u32 kRegId = 0x20, kRegTpr = 0x80, kRegEoi = 0xb0, kRegSpurious = 0xf0,
              kRegIcrLow = 0x300, kRegIcrHigh = 0x310, kRegLvtTimer = 0x320, kRegLvtLint0 = 0x350,
              kRegLvtLint1 = 0x360, kRegLvtError = 0x370, kRegTimerInitial = 0x380,
              kRegTimerCurrent = 0x390, kRegTimerDivide = 0x3e0;
constexpr u64 kApicBaseEnable = 1u << 11;
constexpr u64 kApicBaseX2 = 1u << 10;
constexpr u64 kApicBaseAddressMask = 0xffffff000;
constexpr u32 kSpuriousEnable = 1u << 8;
constexpr u32 kLvtMasked = 1u << 16;
constexpr u32 kLvtTscDeadline = 2u << 17;
constexpr u32 kDeliveryNmi = 4u << 8, kDeliveryInit = 5u << 8, kDeliveryStartup = 6u << 8;
constexpr u32 kLevelAssert = 1u << 14;
constexpr u32 kDeliveryPending = 1u << 12;
constexpr u32 kShorthandAllButSelf = 3u << 18;
constexpr u32 kTimerDivideBy1 = 0xb;

Mode current_mode = Mode::XApic;
volatile u32* mmio = nullptr;
bool tsc_deadline = false;
u64 timer_ticks_per_ms = 0;  // one-shot mode: APIC timer ticks per millisecond

u32 read(u32 reg) {
    if (current_mode == Mode::X2Apic) return static_cast<u32>(x86::rdmsr(0x800 + reg / 16));
    return mmio[reg / 4];
}

void write(u32 reg, u32 value) {
    if (current_mode == Mode::X2Apic) x86::wrmsr(0x800 + reg / 16, value);
    else mmio[reg / 4] = value;
}

void write_icr(u32 destination, u32 command) {
    if (current_mode == Mode::X2Apic) {
        // One 64-bit write; no delivery-status polling in x2APIC mode (SDM Vol. 3A 11.12.9).
        x86::wrmsr(0x800 + kRegIcrLow / 16, (u64{destination} << 32) | command);
        return;
    }
    write(kRegIcrHigh, destination << 24);
    write(kRegIcrLow, command);
    for (u32 spins = 0; spins < 1000000 && (read(kRegIcrLow) & kDeliveryPending); ++spins) x86::pause();
}

void mask_legacy_pics() {
    x86::outb(0x21, 0xff);
    x86::outb(0xa1, 0xff);
}

void spurious_interrupt(x86::InterruptFrame&) {}  // no EOI for spurious vectors (SDM 11.9)

void timer_interrupt(x86::InterruptFrame&) {
    this_cpu()->timer_ticks.fetch_add(1);
    this_cpu()->reschedule_pending.store(true, MemoryOrder::Relaxed);
    end_of_interrupt();
}

// Counts APIC timer ticks over a TSC-measured interval.
void calibrate_one_shot_timer() {
    write(kRegTimerDivide, kTimerDivideBy1);
    write(kRegLvtTimer, kLvtMasked | x86::vector::kTimer);
    write(kRegTimerInitial, 0xffffffff);
    time::spin_delay_us(2000);
    u32 elapsed = 0xffffffff - read(kRegTimerCurrent);
    write(kRegTimerInitial, 0);
    timer_ticks_per_ms = elapsed / 2;
    if (timer_ticks_per_ms == 0) timer_ticks_per_ms = 1;
}

}  // namespace

Mode mode() { return current_mode; }

void init_boot_cpu(bool prefer_x2apic) {
    const x86::CpuFeatures& cpu = x86::cpu_features();
    current_mode = prefer_x2apic && cpu.x2apic ? Mode::X2Apic : Mode::XApic;
    tsc_deadline = cpu.tsc_deadline;
    if (current_mode == Mode::XApic) {
        u64 base = x86::rdmsr(x86::msr::kApicBase) & kApicBaseAddressMask;
        mmio = static_cast<volatile u32*>(memory::map_device(base, 4096));
    }
    mask_legacy_pics();
    x86::set_interrupt_handler(x86::vector::kSpurious, spurious_interrupt);
    x86::set_interrupt_handler(x86::vector::kTimer, timer_interrupt);
    init_this_cpu();
    if (!tsc_deadline) calibrate_one_shot_timer();
    const char* mode_name = current_mode == Mode::X2Apic ? "x2APIC" : "xAPIC";
    if (tsc_deadline) log::info("apic: {} mode, TSC-deadline timer", mode_name);
    else log::info("apic: {} mode, one-shot timer at {} ticks/ms", mode_name, timer_ticks_per_ms);
}

void init_this_cpu() {
    u64 base = x86::rdmsr(x86::msr::kApicBase) | kApicBaseEnable;
    if (current_mode == Mode::X2Apic) base |= kApicBaseX2;
    x86::wrmsr(x86::msr::kApicBase, base);
    write(kRegTpr, 0);
    write(kRegSpurious, kSpuriousEnable | x86::vector::kSpurious);
    write(kRegLvtLint0, kLvtMasked);
    write(kRegLvtLint1, kDeliveryNmi);
    write(kRegLvtError, kLvtMasked);
    write(kRegLvtTimer, kLvtMasked | x86::vector::kTimer);
}

u32 this_cpu_id() {
    u32 id = read(kRegId);
    return current_mode == Mode::X2Apic ? id : id >> 24;
}

void end_of_interrupt() { write(kRegEoi, 0); }

void send_ipi(u32 apic_id, u8 vector) { write_icr(apic_id, vector); }
void send_nmi_to_all_others() { write_icr(0, kShorthandAllButSelf | kDeliveryNmi | kLevelAssert); }
void send_init(u32 apic_id) { write_icr(apic_id, kDeliveryInit | kLevelAssert); }
void send_startup(u32 apic_id, u8 page_vector) {
    write_icr(apic_id, kDeliveryStartup | kLevelAssert | page_vector);
}

void arm_timer(u64 ns) {
    if (tsc_deadline) {
        write(kRegLvtTimer, kLvtTscDeadline | x86::vector::kTimer);
        u64 ticks = ns * (time::tsc_frequency() / 1000000) / 1000;
        x86::wrmsr(x86::msr::kTscDeadline, x86::rdtsc() + (ticks ? ticks : 1));
        return;
    }
    u64 count = ns * timer_ticks_per_ms / 1000000;
    write(kRegTimerDivide, kTimerDivideBy1);
    write(kRegLvtTimer, x86::vector::kTimer);
    write(kRegTimerInitial, static_cast<u32>(min<u64>(count ? count : 1, 0xffffffff)));
}

void stop_timer() {
    if (tsc_deadline) x86::wrmsr(x86::msr::kTscDeadline, 0);
    else write(kRegTimerInitial, 0);
}

}  // namespace lamina::apic
