// MMIO emulation from the guest's side: the self-test gives this guest a device region of 64
// plain registers at kDevice (not RAM: every access faults in stage 2 and the hypervisor
// decodes and emulates the instruction). The accesses are those device drivers make: loads and
// stores of every width, zero- and sign-extending loads, immediates, read-modify-write ALU
// instructions with their flags, XCHG and a high-byte register.
#include <tests/guests/guest.h>

using namespace guest;

namespace {

constexpr u64 kDevice = 0x10000000;  // must match hypervisor/guest/guest_selftests.cpp

template <typename T>
volatile T& reg(u32 offset) {
    return *reinterpret_cast<volatile T*>(kDevice + offset);
}

}  // namespace

extern "C" void guest_main(u64) {
    Checks t;
    reg<u32>(0) = 0x12345678;
    t.expect(reg<u32>(0) == 0x12345678, "mmio: 32-bit store and load", "{:#x}", reg<u32>(0));
    reg<u64>(8) = 0x0123456789abcdef;
    t.expect(reg<u64>(8) == 0x0123456789abcdef, "mmio: 64-bit store and load", "{:#x}", reg<u64>(8));
    reg<u16>(16) = 0xbeef;
    reg<u8>(18) = 0x80;
    t.expect(reg<u16>(16) == 0xbeef && reg<u8>(18) == 0x80, "mmio: 16 and 8-bit stores and loads");
    const int32_t sign_extended = reg<int8_t>(18);
    t.expect(sign_extended == -128, "mmio: a sign-extending byte load (MOVSX)", "{}", sign_extended);
    u64 wide = 0xffffffffffffffff;
    asm volatile("movl (%1), %k0" : "+r"(wide) : "r"(kDevice) : "memory");
    t.expect(wide == 0x12345678, "mmio: a 32-bit load zero-extends into the register", "{:#x}", wide);
    asm volatile("movl $0xdeadbeef, (%0)" : : "r"(kDevice + 24) : "memory");
    t.expect(reg<u32>(24) == 0xdeadbeef, "mmio: a store of an immediate", "{:#x}", reg<u32>(24));

    asm volatile("orl $0x100, (%0)" : : "r"(kDevice) : "memory");
    asm volatile("andl $0xffff0fff, (%0)" : : "r"(kDevice) : "memory");
    t.expect(reg<u32>(0) == 0x12340778, "mmio: OR and AND on a register", "{:#x}", reg<u32>(0));
    u8 zero = 0, carry = 0;
    asm volatile("cmpl $0x12340778, (%2); sete %0; setc %1" : "=r"(zero), "=r"(carry) : "r"(kDevice) : "memory", "cc");
    t.expect(zero == 1 && carry == 0, "mmio: CMP sets ZF for an equal value");
    asm volatile("cmpl $0x12340779, (%2); sete %0; setc %1" : "=r"(zero), "=r"(carry) : "r"(kDevice) : "memory", "cc");
    t.expect(zero == 0 && carry == 1, "mmio: CMP sets CF for a smaller register");
    asm volatile("testl $0x80000000, (%1); setz %0" : "=r"(zero) : "r"(kDevice + 24) : "memory", "cc");
    t.expect(zero == 0, "mmio: TEST sees the top bit");

    u32 swapped = 0x55aa55aa;
    asm volatile("xchgl %0, (%1)" : "+r"(swapped) : "r"(kDevice + 24) : "memory");
    t.expect(swapped == 0xdeadbeef && reg<u32>(24) == 0x55aa55aa, "mmio: XCHG swaps register and device");

    u64 rax = 0xab00;
    asm volatile("movb %%ah, (%1)" : "+a"(rax) : "r"(kDevice + 32) : "memory");
    t.expect(reg<u8>(32) == 0xab, "mmio: a store from AH (high-byte register)", "{:#x}", reg<u8>(32));
    t.finish();
}
