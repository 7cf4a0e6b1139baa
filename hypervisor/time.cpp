#include <hypervisor/time.h>

#include <arch/x86_64/cpu.h>

namespace lamina::time {
namespace {
u64 hz = 0;
u64 base_tsc = 0;
// ns = (ticks * mult) >> 32: a 64x64->128 multiply, no division on the read path.
u64 ns_mult = 0;
}  // namespace

void set_tsc_frequency(u64 frequency) {
    hz = frequency;
    base_tsc = x86::rdtsc();
    // 10^9 << 32 still fits in 64 bits, so this needs no 128-bit division.
    ns_mult = (u64{1000000000} << 32) / frequency;
}

u64 tsc_frequency() { return hz; }

u64 tsc_to_ns(u64 ticks) {
    return static_cast<u64>((static_cast<unsigned __int128>(ticks) * ns_mult) >> 32);
}

u64 now_ns() { return hz ? tsc_to_ns(x86::rdtsc() - base_tsc) : 0; }

void spin_delay_us(u64 microseconds) {
    u64 start = x86::rdtsc();
    u64 ticks = hz ? hz / 1000000 * microseconds : microseconds * 3000;
    while (x86::rdtsc() - start < ticks) x86::pause();
}

}  // namespace lamina::time
