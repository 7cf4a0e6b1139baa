#include <arch/x86_64/ioapic.h>

#include <hypervisor/log.h>
#include <hypervisor/memory.h>

namespace lamina::ioapic {
namespace {

// Indirect registers: select at +0x00, data at +0x10 (82093AA 3.0).
constexpr usize kSelect = 0x00 / 4;
constexpr usize kWindow = 0x10 / 4;
constexpr u32 kRegVersion = 0x01;
constexpr u32 kRegRedirection = 0x10;  // entry n: 0x10 + 2n (low), 0x11 + 2n (high)

// Redirection entry, low word (82093AA 3.2.4): fixed delivery, physical destination.
constexpr u32 kActiveLow = 1u << 13;
constexpr u32 kLevelTriggered = 1u << 15;
constexpr u32 kMasked = 1u << 16;
constexpr unsigned kDestinationShift = 56 - 32;  // in the high word

struct Chip {
    volatile u32* registers = nullptr;
    u32 gsi_base = 0;
    u32 pins = 0;
};

acpi::FixedList<Chip, acpi::kMaxIoApics> chips;
const acpi::Platform* firmware = nullptr;

u32 read(const Chip& chip, u32 reg) {
    chip.registers[kSelect] = reg;
    return chip.registers[kWindow];
}

void write(const Chip& chip, u32 reg, u32 value) {
    chip.registers[kSelect] = reg;
    chip.registers[kWindow] = value;
}

const Chip* chip_for(u32 gsi) {
    for (const Chip& chip : chips) {
        if (gsi >= chip.gsi_base && gsi - chip.gsi_base < chip.pins) return &chip;
    }
    return nullptr;
}

}  // namespace

bool init(const acpi::Platform& platform) {
    firmware = &platform;
    for (const acpi::IoApic& found : platform.madt.io_apics) {
        Chip chip{static_cast<volatile u32*>(memory::map_device(found.address, 4096)), found.gsi_base, 0};
        if (!chip.registers) continue;
        // Version register bits 23:16: the highest redirection entry.
        chip.pins = ((read(chip, kRegVersion) >> 16) & 0xff) + 1;
        for (u32 pin = 0; pin < chip.pins; ++pin) write(chip, kRegRedirection + 2 * pin, kMasked);
        log::debug("ioapic: id {} at {:#x}, GSIs {}-{}", found.id, found.address, chip.gsi_base,
                   chip.gsi_base + chip.pins - 1);
        chips.push(chip);
    }
    return chips.count != 0;
}

bool route_isa_irq(u8 irq, u8 vector, u32 apic_id) {
    u32 gsi = irq;
    acpi::Polarity polarity = acpi::Polarity::BusDefault;
    acpi::Trigger trigger = acpi::Trigger::BusDefault;
    if (firmware) {
        for (const acpi::InterruptOverride& o : firmware->madt.overrides) {
            if (o.bus == 0 && o.source == irq) {
                gsi = o.gsi;
                polarity = o.polarity;
                trigger = o.trigger;
            }
        }
    }
    const Chip* chip = chip_for(gsi);
    if (!chip) return false;
    const u32 pin = gsi - chip->gsi_base;
    const u32 low = vector | (polarity == acpi::Polarity::ActiveLow ? kActiveLow : 0) |
                    (trigger == acpi::Trigger::Level ? kLevelTriggered : 0);
    write(*chip, kRegRedirection + 2 * pin + 1, apic_id << kDestinationShift);
    write(*chip, kRegRedirection + 2 * pin, low);
    log::debug("ioapic: ISA IRQ {} -> GSI {} (pin {}), vector {:#x}", irq, gsi, pin, vector);
    return true;
}

}  // namespace lamina::ioapic
