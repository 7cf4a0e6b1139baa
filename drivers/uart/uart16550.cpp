#include <drivers/uart/uart16550.h>

#include <arch/x86_64/cpu.h>

namespace lamina {
namespace {
// Register offsets (PC16550D data sheet).
constexpr u16 kData = 0, kInterruptEnable = 1, kFifoControl = 2, kLineControl = 3,
              kModemControl = 4, kLineStatus = 5, kScratch = 7;
constexpr u8 kLineControlDlab = 0x80;
constexpr u8 kLineControl8N1 = 0x03;
constexpr u8 kFifoEnableAndClear = 0x07;
constexpr u8 kModemDtrRtsOut2 = 0x0b;
constexpr u8 kStatusDataReady = 0x01;
constexpr u8 kInterruptOnReceive = 0x01;  // IER: received data available
constexpr u8 kStatusTransmitEmpty = 0x20;
constexpr u8 kStatusTransmitterIdle = 0x40;
constexpr u32 kUartClock = 115200;
}  // namespace

bool Uart16550::init(u16 port, u32 baud) {
    port_ = 0;
    x86::outb(port + kScratch, 0x55);
    if (x86::inb(port + kScratch) != 0x55) return false;
    x86::outb(port + kScratch, 0xaa);
    if (x86::inb(port + kScratch) != 0xaa) return false;

    u32 divisor = baud == 0 || baud > kUartClock ? 1 : kUartClock / baud;
    x86::outb(port + kInterruptEnable, 0);
    x86::outb(port + kLineControl, kLineControlDlab);
    x86::outb(port + kData, static_cast<u8>(divisor));
    x86::outb(port + kInterruptEnable, static_cast<u8>(divisor >> 8));
    // 8 data bits, no parity, 1 stop bit: Bochs' UART powers up with 5 data bits.
    x86::outb(port + kLineControl, kLineControl8N1);
    x86::outb(port + kFifoControl, kFifoEnableAndClear);
    x86::outb(port + kModemControl, kModemDtrRtsOut2);
    port_ = port;
    return true;
}

void Uart16550::put(char c) {
    // Bounded wait: a wedged UART must not hang the hypervisor's log forever.
    for (u32 spins = 0; spins < 100000; ++spins) {
        if (x86::inb(port_ + kLineStatus) & kStatusTransmitEmpty) break;
        x86::pause();
    }
    x86::outb(port_ + kData, static_cast<u8>(c));
}

void Uart16550::write(const char* text, usize length) {
    if (!port_) return;
    for (usize i = 0; i < length; ++i) {
        if (text[i] == '\n') put('\r');
        put(text[i]);
    }
}

void Uart16550::drain() {
    if (!port_) return;
    for (u32 spins = 0; spins < 1000000; ++spins) {
        if (x86::inb(port_ + kLineStatus) & kStatusTransmitterIdle) return;
        x86::pause();
    }
}

void Uart16550::enable_receive_interrupt() {
    if (port_) x86::outb(port_ + kInterruptEnable, kInterruptOnReceive);
}

int Uart16550::read_byte() {
    if (!port_ || !(x86::inb(port_ + kLineStatus) & kStatusDataReady)) return -1;
    return x86::inb(port_ + kData);
}

}  // namespace lamina
