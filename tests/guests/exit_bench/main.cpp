// Exit-cost benchmark: guest TSC ticks per round trip through the hypervisor for the exits every
// guest takes. Under QEMU -icount (and in Bochs) a tick is one instruction, so the figures are
// deterministic. Results go out as "stat <key>=<value>" lines, which the hypervisor turns into
// LAMINA STAT lines for scripts/bench.py.
#include <tests/guests/guest.h>

using namespace guest;

namespace {

constexpr u32 kRounds = 1000;

inline u64 rdtsc() {
    u32 lo, hi;
    asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi));
    return (u64{hi} << 32) | lo;
}

template <typename Op>
u64 ticks_per_round(Op op) {
    op();  // warm up: the first exit may populate caches and TLBs
    u64 start = rdtsc();
    for (u32 i = 0; i < kRounds; ++i) op();
    u64 total = rdtsc() - start;
    // The loop itself costs a few instructions a round; measure it and take it out.
    u64 empty_start = rdtsc();
    for (u32 i = 0; i < kRounds; ++i) asm volatile("" ::: "memory");
    u64 empty = rdtsc() - empty_start;
    return (total > empty ? total - empty : 0) / kRounds;
}

bool is_intel() { return cpuid(0).ebx == 0x756e6547; }  // "Genu"

}  // namespace

extern "C" void guest_main(u64) {
    Console console;
    u64 cpuid_ticks = ticks_per_round([] { cpuid(0); });
    u64 io_ticks = ticks_per_round([] { (void)inb(0x1234); });
    u64 msr_ticks = ticks_per_round([] {
        u32 lo, hi;
        asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080));
    });
    bool intel = is_intel();
    u64 hypercall_ticks = ticks_per_round([intel] {
        u64 rax = 0;  // hypercall 0; answered at once
        if (intel) asm volatile("vmcall" : "+a"(rax) : : "memory");
        else asm volatile("vmmcall" : "+a"(rax) : : "memory");
    });
    format(console, "stat exit_cpuid={} exit_io={} exit_msr={} exit_hypercall={}\n", cpuid_ticks, io_ticks,
           msr_ticks, hypercall_ticks);
}
