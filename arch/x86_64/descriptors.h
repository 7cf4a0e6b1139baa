// Per-CPU GDT and TSS, and the shared IDT. NMI, #DF and #MC run on their own IST stacks, so
// they work even when the interrupted stack is the one that overflowed into its guard page.
#pragma once

#include <lamina/interrupt_gate.h>
#include <lamina/types.h>

namespace lamina::x86 {

constexpr u16 kKernelCodeSelector = 0x08;
constexpr u16 kKernelDataSelector = 0x10;
constexpr u16 kTssSelector = 0x18;

enum class IstSlot : u8 { None = 0, Nmi = 1, DoubleFault = 2, MachineCheck = 3 };
constexpr usize kIstCount = 3;

struct LAMINA_PACKED Tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct CpuDescriptors {
    u64 gdt[5];  // null, code, data, TSS (two slots)
    Tss tss;
};

// Fills and loads this CPU's GDT and TSS; ist_tops are the tops of the NMI, #DF, #MC stacks.
void load_descriptors(CpuDescriptors& d, const u64 (&ist_tops)[kIstCount]);
// Builds the IDT once (BSP) and loads it on the calling CPU.
void init_idt();
void load_idt();

using lamina::DescriptorPointer;
// The GDT/IDT registers of the calling CPU (VMX host state needs them).
DescriptorPointer current_gdt();
DescriptorPointer current_idt();

}  // namespace lamina::x86
