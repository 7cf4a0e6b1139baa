// 16550-compatible UART (the PC's COM ports), polled. The hypervisor owns the physical UART:
// its log goes here, and later Dom0's console through a hypercall.
#pragma once

#include <lamina/types.h>

namespace lamina {

class Uart16550 {
public:
    // Probes the port (scratch register round trip) and programs it for baud, 8N1, FIFOs on.
    // Returns false when no UART answers there; the object then stays silent.
    bool init(u16 port, u32 baud);
    bool present() const { return port_ != 0; }
    void write(const char* text, usize length);
    // Waits (bounded) until every byte has left the transmitter: before the machine stops.
    void drain();
    // Returns -1 when no byte is waiting.
    int read_byte();
    // Raises the port's interrupt when a byte arrives (IER bit 0; MCR OUT2 is set by init()).
    void enable_receive_interrupt();
    // The ISA IRQ the PC wires this port to (COM1/COM3: 4, COM2/COM4: 3).
    u8 isa_irq() const { return (port_ == 0x3f8 || port_ == 0x3e8) ? 4 : 3; }

private:
    void put(char c);
    u16 port_ = 0;
};

}  // namespace lamina
