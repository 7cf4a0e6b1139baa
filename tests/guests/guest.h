// What every test guest has: port I/O, CPUID, and TAP-style results on the debug console (port
// 0xE9, which the hypervisor turns into the domain's console). The hypervisor relays the lines and
// counts them; the guest ends with HLT and interrupts off.
#pragma once

#include <lamina/format.h>
#include <lamina/string.h>

namespace guest {

using namespace lamina;

inline void outb(u16 port, u8 v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
inline u8 inb(u16 port) {
    u8 v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u16 inw(u16 port) {
    u16 v;
    asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
inline u32 inl(u16 port) {
    u32 v;
    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

struct Cpuid {
    u32 eax, ebx, ecx, edx;
};
inline Cpuid cpuid(u32 leaf, u32 subleaf = 0) {
    Cpuid r;
    asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
    return r;
}

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64{hi} << 32) | lo;
}

class Console final : public Sink {
public:
    void write(const char* text, usize length) override {
        for (usize i = 0; i < length; ++i) outb(0xe9, static_cast<u8>(text[i]));
    }
};

// Numbers checks, prints ok/not ok lines and the plan.
class Checks {
public:
    template <typename... A>
    void expect(bool condition, const char* name, const char* fmt = "", const A&... args) {
        ++number_;
        if (condition) {
            format(console_, "ok {} - {}\n", number_, name);
            return;
        }
        ++failed_;
        format(console_, "not ok {} - {} # ", number_, name);
        format(console_, fmt, args...);
        console_.write("\n", 1);
    }
    void finish() { format(console_, "1..{}\n", number_); }

private:
    Console console_;
    u32 number_ = 0;
    u32 failed_ = 0;
};

}  // namespace guest
