// Hypervisor time: the TSC (invariant on every CPU we support) converted to nanoseconds.
#pragma once

#include <lamina/types.h>

namespace lamina::time {

// Called once the TSC frequency is known; until then now_ns() reads 0.
void set_tsc_frequency(u64 hz);
u64 tsc_frequency();
u64 now_ns();
u64 tsc_to_ns(u64 ticks);
// Busy-waits; for bring-up sequences (INIT-SIPI-SIPI delays) only.
void spin_delay_us(u64 microseconds);

}  // namespace lamina::time
