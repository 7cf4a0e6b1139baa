// How Dom0 learns that something happened without spinning.
//
// The hypervisor signals console input with LAMINA_VIRQ_CONSOLE, the vCPU's one-shot timer with
// LAMINA_VIRQ_TIMER, a domain ending with LAMINA_VIRQ_DOMAIN_DIED, and output on a domain's
// console on the port Dom0 allocated for it: all event channels. Dom0 registers its event page,
// binds the VIRQs to vCPU 0 and asks for an upcall vector; waiting is then STI; HLT, which any
// port's upcall ends (the timer's too: a backstop, or the pace a command asked for). The upcall
// remembers which ports fired. Should a step be refused, Dom0 polls with vcpu_block and its timer
// instead and says so at boot.
#pragma once

#include <lamina/format.h>

namespace lamina::dom0 {

// Sets up event delivery; reports on `log` which way Dom0 will wait.
void start_events(Sink& log);

// Returns when console input may be waiting: at an event, after a time-out, or at once (polling).
// Called with interrupts off; returns with them off.
void wait_for_input();
// As wait_for_input, but returns after `timeout_ns` at the latest.
void wait_for_event(u64 timeout_ns);

// Whether `port` fired since the last call that asked about it. Always true while Dom0 polls,
// so that a caller then checks whatever the port stands for.
bool take_event(u32 port);
// Whether a domain may have ended since the last call (LAMINA_VIRQ_DOMAIN_DIED, or always when
// that VIRQ could not be bound).
bool take_domain_died();

}  // namespace lamina::dom0
