// What the firmware says about the machine (ACPI), kept for the rest of the hypervisor.
#pragma once

#include <drivers/acpi/acpi.h>

namespace lamina::mb2 {
struct BootInfo;
}

namespace lamina::platform {

// Phase 1 (loader memory still identity-mapped): finds and parses the ACPI tables.
void discover_acpi(const mb2::BootInfo& boot_info);
const acpi::Platform& acpi();

// Physical ranges of every ACPI table found, which the frame allocator must never hand out.
usize firmware_table_ranges(u64* bases, u64* lengths, usize capacity);

// CPUs the MADT lists as usable (enabled or online capable), and their APIC ids.
u32 present_cpu_count();
u32 usable_apic_ids(u32* out, u32 capacity);

// Logs what was found (tables, CPUs, IOAPICs, HPET, MCFG).
void report();

}  // namespace lamina::platform
