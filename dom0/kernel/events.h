// How Dom0 waits for console input without spinning.
//
// The hypervisor signals console input with LAMINA_VIRQ_CONSOLE and the vCPU's one-shot timer
// with LAMINA_VIRQ_TIMER, both event channels. Dom0 registers its event page, binds the two VIRQs
// to vCPU 0 and asks for an upcall vector; waiting is then STI; HLT, which the upcall ends (input)
// or the timer's upcall does (a backstop, and the pace for periodic work later). Should any step be
// refused, Dom0 polls with vcpu_yield instead and says so at boot.
#pragma once

#include <lamina/format.h>

namespace lamina::dom0 {

// Sets up event delivery; reports on `log` which way Dom0 will wait.
void start_events(Sink& log);

// Returns when console input may be waiting: at an event, after a time-out, or at once (polling).
// Called with interrupts off; returns with them off.
void wait_for_input();

}  // namespace lamina::dom0
