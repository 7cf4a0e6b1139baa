// Thin wrappers over privileged x86-64 instructions. Everything hardware-facing in the image
// goes through these, so portable code never contains inline assembly.
#pragma once

#include <arch/x86_64/registers.h>
#include <lamina/types.h>

namespace lamina::x86 {

inline u8 inb(u16 port) {
    u8 v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline u16 inw(u16 port) {
    u16 v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outw(u16 port, u16 v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
inline u32 inl(u16 port) {
    u32 v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline void outl(u16 port, u32 v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

inline u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64{hi} << 32) | lo;
}
inline void wrmsr(u32 msr, u64 v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(v)), "d"(static_cast<u32>(v >> 32)));
}

struct CpuidResult {
    u32 eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
    CpuidResult r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64{hi} << 32) | lo;
}

#define LAMINA_CONTROL_REGISTER(n)                                      \
    inline u64 read_cr##n() {                                           \
        u64 v;                                                          \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v));                   \
        return v;                                                       \
    }                                                                   \
    inline void write_cr##n(u64 v) { asm volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); }
LAMINA_CONTROL_REGISTER(0)
LAMINA_CONTROL_REGISTER(2)
LAMINA_CONTROL_REGISTER(3)
LAMINA_CONTROL_REGISTER(4)
#undef LAMINA_CONTROL_REGISTER

inline u64 read_flags() {
    u64 f;
    asm volatile("pushfq; popq %0" : "=r"(f));
    return f;
}
inline void disable_interrupts() { asm volatile("cli" ::: "memory"); }
inline void enable_interrupts() { asm volatile("sti" ::: "memory"); }
inline bool interrupts_enabled() { return read_flags() & (1 << 9); }
inline void halt() { asm volatile("hlt" ::: "memory"); }
// sti takes effect after the next instruction, so no interrupt slips in between: the CPU
// cannot miss a wake-up that arrives just before it halts.
inline void enable_interrupts_and_halt() { asm volatile("sti; hlt" ::: "memory"); }
// Lets pending interrupts in, then masks them again. STI's shadow covers one instruction; the
// jump after it matters to QEMU's TCG, which looks for interrupts only where a translated block
// ends: with STI; PAUSE; CLI in one block it never delivered them, and a guest that exited for
// an interrupt re-entered and exited for it again, for ever.
inline void open_interrupt_window() { asm volatile("sti; nop; jmp 1f; 1: cli" ::: "memory"); }
// XCR0 and friends (SDM Vol. 1 13.3); needs CR4.OSXSAVE.
inline void xsetbv(u32 index, u64 value) {
    asm volatile("xsetbv" : : "c"(index), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}
inline u64 xgetbv(u32 index) {
    u32 lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
    return (u64{hi} << 32) | lo;
}
inline void invlpg(uptr va) { asm volatile("invlpg (%0)" : : "r"(va) : "memory"); }
inline void pause() { asm volatile("pause"); }

[[noreturn]] inline void halt_forever() {
    for (;;) {
        disable_interrupts();
        halt();
    }
}

namespace msr {
constexpr u32 kApicBase = 0x1b;
constexpr u32 kFeatureControl = 0x3a;
constexpr u32 kTscDeadline = 0x6e0;
constexpr u32 kPat = 0x277;
constexpr u32 kVmxBasic = 0x480;
constexpr u32 kVmxPinbasedCtls = 0x481;
constexpr u32 kVmxProcbasedCtls = 0x482;
constexpr u32 kVmxExitCtls = 0x483;
constexpr u32 kVmxEntryCtls = 0x484;
constexpr u32 kVmxMisc = 0x485;
constexpr u32 kVmxCr0Fixed0 = 0x486;
constexpr u32 kVmxCr0Fixed1 = 0x487;
constexpr u32 kVmxCr4Fixed0 = 0x488;
constexpr u32 kVmxCr4Fixed1 = 0x489;
constexpr u32 kVmxProcbasedCtls2 = 0x48b;
constexpr u32 kVmxEptVpidCap = 0x48c;
constexpr u32 kVmxTruePinbasedCtls = 0x48d;
constexpr u32 kVmxTrueProcbasedCtls = 0x48e;
constexpr u32 kVmxTrueExitCtls = 0x48f;
constexpr u32 kVmxTrueEntryCtls = 0x490;
constexpr u32 kVmxVmfunc = 0x491;
constexpr u32 kSysenterCs = 0x174;
constexpr u32 kSysenterEsp = 0x175;
constexpr u32 kSysenterEip = 0x176;
constexpr u32 kEfer = 0xc0000080;
constexpr u32 kStar = 0xc0000081;
constexpr u32 kLstar = 0xc0000082;
constexpr u32 kCstar = 0xc0000083;
constexpr u32 kSfmask = 0xc0000084;
constexpr u32 kFsBase = 0xc0000100;
constexpr u32 kGsBase = 0xc0000101;
constexpr u32 kKernelGsBase = 0xc0000102;
constexpr u32 kVmCr = 0xc0010114;
constexpr u32 kVmHsavePa = 0xc0010117;
}  // namespace msr

}  // namespace lamina::x86
