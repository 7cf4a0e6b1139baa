// The local APIC, in x2APIC mode (MSRs) when the CPU has it, else xAPIC (MMIO): IPIs,
// INIT-SIPI-SIPI, end of interrupt, and the per-CPU timer (TSC-deadline when available,
// otherwise one-shot with a count calibrated against the TSC).
#pragma once

#include <lamina/types.h>

namespace lamina::apic {

enum class Mode : u8 { XApic, X2Apic };

// Boot CPU: chooses the mode (prefer_x2apic false forces xAPIC), masks the legacy PICs.
void init_boot_cpu(bool prefer_x2apic);
// Every CPU (the boot CPU included): enables its APIC in the chosen mode, sets up the timer.
void init_this_cpu();

Mode mode();
u32 this_cpu_id();
void end_of_interrupt();

void send_ipi(u32 apic_id, u8 vector);
void send_nmi_to_all_others();
void send_init(u32 apic_id);
void send_startup(u32 apic_id, u8 page_vector);

// Arms this CPU's one-shot timer to fire `vector` after `ns` nanoseconds.
void arm_timer(u64 ns);
void stop_timer();

}  // namespace lamina::apic
