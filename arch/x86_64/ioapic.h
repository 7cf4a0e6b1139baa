// The I/O APICs (Intel 82093AA datasheet; ACPI MADT types 1 and 2): the hypervisor owns them and
// routes the few device interrupts it takes itself (the UART's) to a CPU; every other pin stays
// masked until a domain is given the device.
#pragma once

#include <drivers/acpi/acpi.h>
#include <lamina/types.h>

namespace lamina::ioapic {

// Maps every I/O APIC the MADT lists and masks all of their pins. False without any.
bool init(const acpi::Platform& platform);

// Routes ISA IRQ `irq` (through the MADT's interrupt source overrides: its GSI, polarity and
// trigger; ISA's default is edge, active high) to `vector` on the CPU with APIC id `apic_id`.
// False when no I/O APIC serves its GSI.
bool route_isa_irq(u8 irq, u8 vector, u32 apic_id);

}  // namespace lamina::ioapic
