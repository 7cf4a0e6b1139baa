// The 64-bit IDT gate descriptor (SDM Vol. 3A 6.14.1) and the GDTR/IDTR image, shared by the
// hypervisor, Dom0 and the test guests: each builds its own IDT from these.
#pragma once

#include <lamina/types.h>

namespace lamina {

struct [[gnu::packed]] InterruptGate {
    static constexpr u8 kInterruptGate = 0x8e;  // present, DPL 0, type 0xE (IF cleared on entry)

    u16 offset_low;
    u16 selector;
    u8 ist;
    u8 type_attributes;
    u16 offset_middle;
    u32 offset_high;
    u32 reserved;

    static constexpr InterruptGate to(u64 handler, u16 code_selector, u8 ist = 0) {
        return {static_cast<u16>(handler), code_selector, ist, kInterruptGate, static_cast<u16>(handler >> 16),
                static_cast<u32>(handler >> 32), 0};
    }
};
static_assert(sizeof(InterruptGate) == 16);

// What LGDT/LIDT load and SGDT/SIDT store.
struct [[gnu::packed]] DescriptorPointer {
    u16 limit;
    u64 base;
};

}  // namespace lamina
