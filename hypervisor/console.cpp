#include <hypervisor/console.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/interrupts.h>
#include <arch/x86_64/ioapic.h>
#include <arch/x86_64/smp.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/platform.h>
#include <hypervisor/percpu.h>
#include <lamina/atomic.h>
#include <lamina/spinlock.h>

namespace lamina::console {
namespace {

constexpr u8 kSwitchKey = 0x01;  // Ctrl-A
constexpr u32 kSwitchPresses = 3;
constexpr usize kRingSize = 4096;

Uart16550* uart = nullptr;

// One producer at a time (the receive interrupt on the boot CPU, or a poll on whichever CPU
// asks: uart_lock) and one consumer (Dom0's console_read).
char ring[kRingSize];
Atomic<u64> produced{0};
Atomic<u64> consumed{0};
Atomic<bool> arrived{false};

bool to_hypervisor = false;
u32 switch_presses = 0;

void hypervisor_key(char key) {
    switch (key) {
        case 'h':
            log::print("\r\n(Lamina) keys: h this help, m memory, c CPUs; Ctrl-A x3 back to Dom0\r\n");
            break;
        case 'm': {
            const memory::Stats s = memory::stats();
            log::print("\r\n(Lamina) memory: {} MiB usable, {} MiB free, hypervisor {} KiB\r\n", s.usable_bytes / MiB,
                       s.free_bytes / MiB, s.hypervisor_bytes / KiB);
            break;
        }
        case 'c': log::print("\r\n(Lamina) CPUs online: {}\r\n", smp::online_count()); break;
        default: break;
    }
}

void deliver(char c) {
    if (to_hypervisor) {
        hypervisor_key(c);
        return;
    }
    const u64 head = produced.load(MemoryOrder::Relaxed);
    // A full ring drops what comes next, as the UART's own FIFO would.
    if (head - consumed.load(MemoryOrder::Acquire) == kRingSize) return;
    ring[head % kRingSize] = c;
    produced.store(head + 1, MemoryOrder::Release);
    arrived.store(true, MemoryOrder::Release);
}

void take_byte(char c) {
    if (static_cast<u8>(c) == kSwitchKey) {
        if (++switch_presses == kSwitchPresses) {
            switch_presses = 0;
            to_hypervisor = !to_hypervisor;
            log::print("\r\n(Lamina) console input to {} (Ctrl-A x3 switches)\r\n",
                       to_hypervisor ? "the hypervisor" : "Dom0");
        }
        return;
    }
    // Fewer than three Ctrl-A go through, held until the next key (a single one is the line
    // editor's Home).
    for (; switch_presses; --switch_presses) deliver(static_cast<char>(kSwitchKey));
    deliver(c);
}

// Taken with interrupts off (hypercalls, the scheduler's loop) or in the receive interrupt,
// so the interrupt never finds its own CPU holding it.
SpinLock uart_lock;

void drain_uart() {
    LockGuard guard(uart_lock);
    for (int c; uart && (c = uart->read_byte()) >= 0;) take_byte(static_cast<char>(c));
}

void receive_interrupt(x86::InterruptFrame&) {
    drain_uart();
    // The scheduler's loop on this CPU hands the input to the control domain.
    this_cpu()->reschedule_pending.store(true, MemoryOrder::Relaxed);
    apic::end_of_interrupt();
}

}  // namespace

void start_input(Uart16550& console_uart) {
    if (!console_uart.present()) return;
    uart = &console_uart;
    if (!ioapic::init(platform::acpi())) {
        log::info("console: no I/O APIC; input is polled");
        return;
    }
    x86::set_interrupt_handler(x86::vector::kConsoleInput, receive_interrupt);
    if (!ioapic::route_isa_irq(uart->isa_irq(), x86::vector::kConsoleInput, apic::this_cpu_id())) {
        log::info("console: no I/O APIC pin for IRQ {}; input is polled", uart->isa_irq());
        return;
    }
    uart->enable_receive_interrupt();
    // Bytes already waiting hold the UART's line up: take them, so the next one is an edge.
    drain_uart();
}

usize read(char* out, usize size) {
    // Polled as well: under QEMU 7.2 (TCG, nested SVM, q35) the UART's IRQ reaches the I/O APIC
    // (its trace shows pin 4 raised) but never the CPU; Bochs delivers it.
    drain_uart();
    usize count = 0;
    u64 tail = consumed.load(MemoryOrder::Relaxed);
    const u64 head = produced.load(MemoryOrder::Acquire);
    for (; count < size && tail != head; ++count, ++tail) out[count] = ring[tail % kRingSize];
    consumed.store(tail, MemoryOrder::Release);
    return count;
}

bool take_arrival() {
    drain_uart();
    return arrived.exchange(false, MemoryOrder::AcqRel);
}

}  // namespace lamina::console
