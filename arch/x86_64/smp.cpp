#include <arch/x86_64/smp.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <arch/x86_64/descriptors.h>
#include <arch/x86_64/interrupts.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/panic.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <lamina/spinlock.h>
#include <lamina/string.h>

extern "C" const char ap_trampoline_start[], ap_trampoline_end[];
extern "C" const lamina::u64 ap_offset_gdt, ap_offset_gdt_pointer, ap_offset_far_jump32,
    ap_offset_protected_mode, ap_offset_far_jump64, ap_offset_long_mode, ap_offset_cr3,
    ap_offset_stack_top, ap_offset_percpu, ap_offset_entry;

namespace lamina::smp {
namespace {

constexpr usize kStackPages = 4;      // 16 KiB kernel stack per CPU
constexpr usize kIstStackPages = 2;   // 8 KiB for each of NMI, #DF, #MC
constexpr u64 kSecondStartupAfterUs = 200;
constexpr u64 kStartTimeoutUs = 2000000;  // emulators can be slow to schedule a new CPU

PerCpu cpus[kMaxCpus];
Atomic<u32> cpus_online{1};
Atomic<u32> ap_started{0};

// Cross-CPU calls: one at a time, under call_lock.
SpinLock call_lock;
void (*volatile call_function)() = nullptr;
Atomic<u32> call_pending{0};

void call_function_interrupt(x86::InterruptFrame&) {
    call_function();
    call_pending.fetch_sub(1);
    apic::end_of_interrupt();
}

template <typename T>
void patch(u8* page, u64 offset, T value) {
    str::copy_bytes(page + offset, &value, sizeof(value));
}

void wakeup_interrupt(x86::InterruptFrame&) { apic::end_of_interrupt(); }

// Halts until started() or the timeout: an AP announces itself with a wake-up IPI, so the boot
// CPU burns no cycles meanwhile (under emulation those would delay the AP itself).
bool wait_for_start(u64 timeout_us) {
    u64 deadline = time::now_ns() + timeout_us * 1000;
    while (!ap_started.load()) {
        u64 now = time::now_ns();
        if (now >= deadline) return false;
        apic::arm_timer(deadline - now);
        x86::enable_interrupts_and_halt();
        x86::disable_interrupts();
    }
    apic::stop_timer();
    return true;
}

[[noreturn]] void idle() {
    PerCpu* cpu = this_cpu();
    for (;;) {
        // Checked with interrupts off, then halted with sti;hlt: a wake-up IPI that arrives in
        // between still ends the halt.
        x86::disable_interrupts();
        if (cpu->work_state.load(MemoryOrder::Acquire) == static_cast<u32>(WorkState::Pending)) {
            cpu->work_state.store(static_cast<u32>(WorkState::Running));
            x86::enable_interrupts();
            cpu->work(cpu->work_argument);
            cpu->work_state.store(static_cast<u32>(WorkState::Done), MemoryOrder::Release);
            continue;
        }
        x86::enable_interrupts_and_halt();
    }
}

}  // namespace

PerCpu& boot_cpu() { return cpus[0]; }
PerCpu* cpu(u32 index) { return index < kMaxCpus && cpus[index].self ? &cpus[index] : nullptr; }
u32 online_count() { return cpus_online.load(); }

void init_cpu_descriptors(PerCpu& cpu) {
    u64 ist_tops[x86::kIstCount];
    for (u64& top : ist_tops) {
        top = memory::allocate_stack(kIstStackPages);
        if (!top) panic("no memory for the IST stacks of cpu{}", cpu.index);
    }
    x86::load_descriptors(cpu.descriptors, ist_tops);
}

}  // namespace lamina::smp

// The first C++ code an AP runs, on its own stack, with the hypervisor's page tables.
extern "C" [[noreturn]] void ap_entry(lamina::PerCpu* cpu) {
    using namespace lamina;
    install_percpu(*cpu);
    x86::load_idt();
    smp::init_cpu_descriptors(*cpu);
    x86::enable_cpu_features();
    apic::init_this_cpu();
    cpu->apic_id = apic::this_cpu_id();
    bool virt_on = virt::enable_on_this_cpu();
    log::info("online: apic id {}, {} {}", cpu->apic_id, virt::vendor_name(virt::summary().vendor),
              virt_on ? "on" : "OFF");
    smp::cpus_online.fetch_add(1);
    smp::ap_started.store(1);
    apic::send_ipi(smp::boot_cpu().apic_id, x86::vector::kWakeup);
    smp::idle();
}

namespace lamina::smp {

void start_application_processors(const u32* apic_ids, u32 count, u32 max_cpus) {
    x86::set_interrupt_handler(x86::vector::kCallFunction, call_function_interrupt);
    x86::set_interrupt_handler(x86::vector::kWakeup, wakeup_interrupt);
    u32 boot_apic_id = boot_cpu().apic_id;
    if (count <= 1 || max_cpus <= 1) return;

    // The trampoline runs in real mode, so it must live below 1 MiB.
    u64 trampoline = memory::allocate_frames(1, 1, 1 * MiB);
    if (!trampoline) {
        log::error("smp: no page below 1 MiB for the start-up code; running on one CPU");
        return;
    }
    usize size = static_cast<usize>(ap_trampoline_end - ap_trampoline_start);
    u8* page = static_cast<u8*>(memory::phys_to_virt(trampoline));
    str::copy_bytes(page, ap_trampoline_start, size);
    patch<u32>(page, ap_offset_gdt_pointer + 2, static_cast<u32>(trampoline + ap_offset_gdt));
    patch<u32>(page, ap_offset_far_jump32, static_cast<u32>(trampoline + ap_offset_protected_mode));
    patch<u32>(page, ap_offset_far_jump64, static_cast<u32>(trampoline + ap_offset_long_mode));
    patch<u64>(page, ap_offset_cr3, x86::read_cr3());
    patch<u64>(page, ap_offset_entry, reinterpret_cast<u64>(&ap_entry));
    if (!memory::map_identity_executable(trampoline)) {
        log::error("smp: cannot map the start-up code; running on one CPU");
        memory::free_frames(trampoline);
        return;
    }

    // The 10 ms after INIT is for external-APIC-era CPUs; integrated APICs (Intel family 6 and
    // up, AMD family 0Fh and up) need none, as Linux also concluded (smp_quirk_init_udelay).
    const x86::CpuFeatures& features = x86::cpu_features();
    bool modern = (features.vendor == x86::CpuVendor::Intel && features.family >= 6) ||
                  (features.vendor == x86::CpuVendor::Amd && features.family >= 0xf);
    u64 init_delay_us = modern ? 0 : 10000;

    u32 next_index = 1;
    for (u32 i = 0; i < count && next_index < max_cpus && next_index < kMaxCpus; ++i) {
        u32 apic_id = apic_ids[i];
        if (apic_id == boot_apic_id) continue;
        PerCpu& cpu = cpus[next_index];
        cpu.index = next_index;
        cpu.apic_id = apic_id;
        cpu.stack_top = memory::allocate_stack(kStackPages);
        if (!cpu.stack_top) {
            log::error("smp: no memory for the stack of apic id {}", apic_id);
            break;
        }
        patch<u64>(page, ap_offset_stack_top, cpu.stack_top);
        patch<u64>(page, ap_offset_percpu, reinterpret_cast<u64>(&cpu));
        ap_started.store(0);

        // INIT, 10 ms, SIPI, 200 us, SIPI if it has not started (SDM Vol. 3A 9.4.4.1).
        apic::send_init(apic_id);
        time::spin_delay_us(init_delay_us);
        u8 vector = static_cast<u8>(trampoline >> 12);
        apic::send_startup(apic_id, vector);
        if (!wait_for_start(kSecondStartupAfterUs)) apic::send_startup(apic_id, vector);
        if (!wait_for_start(kStartTimeoutUs)) {
            log::error("smp: apic id {} did not start", apic_id);
            cpu.stack_top = 0;
            continue;  // its stack stays reserved: the CPU might still wake up and use it
        }
        ++next_index;
    }
    memory::unmap_identity(trampoline);
    // Every AP walked the identity mapping: drop it from their TLBs before the page is reused.
    run_on_others([] { x86::write_cr3(x86::read_cr3()); });
    memory::free_frames(trampoline);
}

bool start_on(u32 cpu_index, void (*fn)(void*), void* argument) {
    PerCpu* target = cpu(cpu_index);
    if (!target || !target->stack_top || cpu_index == this_cpu_index()) return false;
    u32 state = target->work_state.load(MemoryOrder::Acquire);
    if (state == static_cast<u32>(WorkState::Pending) || state == static_cast<u32>(WorkState::Running))
        return false;
    target->work = fn;
    target->work_argument = argument;
    target->work_state.store(static_cast<u32>(WorkState::Pending), MemoryOrder::Release);
    apic::send_ipi(target->apic_id, x86::vector::kWakeup);
    return true;
}

bool wait_for_work(u32 cpu_index, u64 timeout_us) {
    PerCpu* target = cpu(cpu_index);
    if (!target) return false;
    u64 deadline = time::now_ns() + timeout_us * 1000;
    while (target->work_state.load(MemoryOrder::Acquire) != static_cast<u32>(WorkState::Done)) {
        if (time::now_ns() >= deadline) return false;
        x86::pause();
    }
    return true;
}

bool run_on_others(void (*fn)(), u64 timeout_us) {
    LockGuard<SpinLock> guard(call_lock);
    u32 self = this_cpu_index();
    u32 others = online_count() - 1;
    if (others == 0) return true;
    call_function = fn;
    call_pending.store(others);
    for (u32 i = 0; i < kMaxCpus; ++i) {
        if (i != self && cpus[i].self && cpus[i].stack_top)
            apic::send_ipi(cpus[i].apic_id, x86::vector::kCallFunction);
    }
    for (u64 waited = 0; call_pending.load() != 0; waited += 10) {
        if (waited >= timeout_us) return false;
        time::spin_delay_us(10);
    }
    return true;
}

}  // namespace lamina::smp
