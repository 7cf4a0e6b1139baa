#include <arch/x86_64/descriptors.h>

#include <lamina/string.h>

extern "C" char isr_stubs[];

namespace lamina::x86 {
namespace {

constexpr usize kStubSize = 16;

LAMINA_ALIGNED(16) InterruptGate idt[256];

IstSlot ist_for_vector(usize vector) {
    switch (vector) {
        case 2: return IstSlot::Nmi;
        case 8: return IstSlot::DoubleFault;
        case 18: return IstSlot::MachineCheck;
        default: return IstSlot::None;
    }
}

}  // namespace

void load_descriptors(CpuDescriptors& d, const u64 (&ist_tops)[kIstCount]) {
    str::fill_bytes(&d, 0, sizeof(d));
    d.gdt[0] = 0;
    d.gdt[1] = 0x00af9a000000ffff;  // 64-bit code, DPL 0
    d.gdt[2] = 0x00cf92000000ffff;  // data, DPL 0
    u64 base = reinterpret_cast<u64>(&d.tss);
    u64 limit = sizeof(Tss) - 1;
    // 64-bit available TSS descriptor (SDM Vol. 3A 8.2.3): 16 bytes, type 9, present.
    d.gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (u64{0x89} << 40) |
               (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    d.gdt[4] = base >> 32;
    for (usize i = 0; i < kIstCount; ++i) d.tss.ist[i] = ist_tops[i];
    d.tss.iomap_base = sizeof(Tss);  // no I/O permission bitmap

    DescriptorPointer gdtr{sizeof(d.gdt) - 1, reinterpret_cast<u64>(d.gdt)};
    asm volatile(
        "lgdt %0\n"
        "pushq %1\n"
        "leaq 1f(%%rip), %%rax\n"
        "pushq %%rax\n"
        "lretq\n"
        "1:\n"
        "movw %w2, %%ax\n"
        "movw %%ax, %%ds\n"
        "movw %%ax, %%es\n"
        "movw %%ax, %%ss\n"
        :
        : "m"(gdtr), "i"(kKernelCodeSelector), "i"(kKernelDataSelector)
        : "rax", "memory");
    asm volatile("ltr %w0" : : "r"(kTssSelector));
}

void init_idt() {
    for (usize v = 0; v < 256; ++v) {
        u64 handler = reinterpret_cast<u64>(isr_stubs) + v * kStubSize;
        idt[v] = InterruptGate::to(handler, kKernelCodeSelector, static_cast<u8>(ist_for_vector(v)));
    }
    load_idt();
}

void load_idt() {
    DescriptorPointer idtr{sizeof(idt) - 1, reinterpret_cast<u64>(idt)};
    asm volatile("lidt %0" : : "m"(idtr));
}

DescriptorPointer current_gdt() {
    DescriptorPointer p;
    asm volatile("sgdt %0" : "=m"(p));
    return p;
}

DescriptorPointer current_idt() {
    DescriptorPointer p;
    asm volatile("sidt %0" : "=m"(p));
    return p;
}

}  // namespace lamina::x86
