// Finding the TSC frequency: measured against the HPET (when ACPI lists one) or the PIT, and
// CPUID's stated frequency used instead when it agrees with the measurement.
#pragma once

#include <lamina/types.h>

namespace lamina::tsc {

enum class Source : u8 { Cpuid, Hpet, Pit };

struct Calibration {
    u64 hz;
    Source source;
};

// hpet_base: physical address of the HPET registers, 0 if there is none.
Calibration calibrate(u64 hpet_base);
const char* source_name(Source source);

}  // namespace lamina::tsc
