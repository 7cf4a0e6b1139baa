// The physical console's input. The hypervisor owns the UART; bytes typed there are Dom0's
// (console_read) unless Ctrl-A pressed three times switched the input to the hypervisor's own
// console, as in Xen; three more switch back. The hypervisor's console answers a few keys
// (h lists them). Input arrives by the UART's receive interrupt, routed through the I/O APIC to
// the boot CPU, into a ring, which also takes what a poll finds when Dom0 reads or waits.
#pragma once

#include <drivers/uart/uart16550.h>
#include <lamina/types.h>

namespace lamina::console {

// Boot CPU, after the APIC and before Dom0 starts.
void start_input(Uart16550& uart);

// Copies up to `size` bytes of Dom0's input; returns how many.
usize read(char* out, usize size);

// Whether input for Dom0 arrived since the last call (the VIRQ_CONSOLE event).
bool take_arrival();

}  // namespace lamina::console
