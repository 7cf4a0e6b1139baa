// Checks that the SSE registers and the guest-owned MSRs (arch/x86_64/guest_msrs.h: LSTAR and
// KERNEL_GS_BASE here, which VMX switches lazily) are the guest's own: clean at its start (no
// other guest's values), intact across its exits, and across the hypervisor running another
// guest on this CPU meanwhile (the self-test stops it half-way, runs a second copy, and lets it
// finish).
#include <tests/guests/guest.h>

using namespace guest;

namespace {

struct alignas(16) Xmm {
    u64 low, high;
};

Xmm read_xmm0() {
    Xmm v;
    asm volatile("movdqa %%xmm0, %0" : "=m"(v));
    return v;
}

void write_xmm0(const Xmm& v) { asm volatile("movdqa %0, %%xmm0" : : "m"(v) : "xmm0"); }

u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64{hi} << 32) | lo;
}
void wrmsr(u32 msr, u64 v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(v)), "d"(static_cast<u32>(v >> 32)));
}
constexpr u32 kLstar = 0xc0000082;
constexpr u32 kKernelGsBase = 0xc0000102;

u32 read_mxcsr() {
    u32 v;
    asm volatile("stmxcsr %0" : "=m"(v));
    return v;
}

}  // namespace

extern "C" void guest_main(u64 start_info) {
    Checks t;
    Xmm first = read_xmm0();
    t.expect(first.low == 0 && first.high == 0, "sse: XMM0 starts clean", "{:#x}:{:#x}", first.high, first.low);
    t.expect(read_mxcsr() == 0x1f80, "sse: MXCSR starts at its reset value", "{:#x}", read_mxcsr());
    t.expect(rdmsr(kLstar) == 0 && rdmsr(kKernelGsBase) == 0, "msr: LSTAR and KERNEL_GS_BASE start clean",
             "{:#x} {:#x}", rdmsr(kLstar), rdmsr(kKernelGsBase));
    // A marker of this run's own (the start info address differs per guest only by chance, so mix
    // in the TSC): what a second guest would see if the state leaked.
    const u64 tsc = rdtsc();
    const Xmm marker{u64{0x5a5a5a5a00000000} | (tsc & 0xffffffff), u64{0xa5a5a5a500000000} | (tsc >> 32) | start_info};
    write_xmm0(marker);
    // Canonical addresses of this run's own.
    const u64 msr_marker = 0xffff800000000000 | (marker.low & 0x7ffffffff000);
    wrmsr(kLstar, msr_marker);
    wrmsr(kKernelGsBase, msr_marker + 0x1000);
    Console console;
    format(console, "marker set, exiting a few times\n");  // one exit per byte
    (void)cpuid(0);
    Xmm after = read_xmm0();
    t.expect(after.low == marker.low && after.high == marker.high, "sse: XMM0 survives exits and other guests",
             "{:#x}:{:#x}", after.high, after.low);
    t.expect(rdmsr(kLstar) == msr_marker && rdmsr(kKernelGsBase) == msr_marker + 0x1000,
             "msr: LSTAR and KERNEL_GS_BASE survive exits and other guests", "{:#x} {:#x}, set {:#x}",
             rdmsr(kLstar), rdmsr(kKernelGsBase), msr_marker);
    t.finish();
}
