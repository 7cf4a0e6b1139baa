#include <arch/x86_64/cpu_features.h>

#include <arch/x86_64/cpu.h>
#include <lamina/string.h>

namespace lamina::x86 {
namespace {
CpuFeatures features;

void copy_registers(char* out, u32 a, u32 b, u32 c, u32 d) {
    const u32 regs[4] = {a, b, c, d};
    str::copy_bytes(out, regs, sizeof(regs));
}
}  // namespace

const CpuFeatures& cpu_features() { return features; }

void enable_cpu_features() {
    if (features.xsave) write_cr4(read_cr4() | kCr4Osxsave);
}

void detect_cpu_features() {
    CpuFeatures& f = features;
    CpuidResult leaf0 = cpuid(0);
    f.max_leaf = leaf0.eax;
    copy_registers(f.vendor_string, leaf0.ebx, leaf0.edx, leaf0.ecx, 0);
    f.vendor_string[12] = '\0';
    if (str::equal(f.vendor_string, "GenuineIntel")) f.vendor = CpuVendor::Intel;
    else if (str::equal(f.vendor_string, "AuthenticAMD")) f.vendor = CpuVendor::Amd;

    CpuidResult leaf1 = cpuid(1);
    u32 base_family = (leaf1.eax >> 8) & 0xf;
    f.family = base_family == 0xf ? base_family + ((leaf1.eax >> 20) & 0xff) : base_family;
    f.model = (leaf1.eax >> 4) & 0xf;
    if (base_family == 0x6 || base_family == 0xf) f.model |= ((leaf1.eax >> 16) & 0xf) << 4;
    f.stepping = leaf1.eax & 0xf;
    f.vmx = leaf1.ecx & (1u << 5);
    f.x2apic = leaf1.ecx & (1u << 21);
    f.tsc_deadline = leaf1.ecx & (1u << 24);
    f.xsave = leaf1.ecx & (1u << 26);
    f.running_under_hypervisor = leaf1.ecx & (1u << 31);

    if (f.max_leaf >= 0x15) {
        CpuidResult tsc = cpuid(0x15);  // TSC/crystal ratio EBX/EAX, crystal Hz in ECX
        if (tsc.eax && tsc.ebx && tsc.ecx) f.tsc_hz_from_cpuid = u64{tsc.ecx} * tsc.ebx / tsc.eax;
    }
    if (f.max_leaf >= 0x16) f.base_hz_from_cpuid = u64{cpuid(0x16).eax & 0xffff} * 1000000;

    f.max_extended_leaf = cpuid(0x80000000).eax;
    if (f.max_extended_leaf >= 0x80000001) {
        CpuidResult ext = cpuid(0x80000001);
        f.svm = ext.ecx & (1u << 2);
        f.pages_1g = ext.edx & (1u << 26);
    }
    if (f.max_extended_leaf >= 0x80000004) {
        for (u32 i = 0; i < 3; ++i) {
            CpuidResult r = cpuid(0x80000002 + i);
            copy_registers(f.brand + 16 * i, r.eax, r.ebx, r.ecx, r.edx);
        }
        f.brand[48] = '\0';
    }
    if (f.max_extended_leaf >= 0x80000007) f.invariant_tsc = cpuid(0x80000007).edx & (1u << 8);
    if (f.max_extended_leaf >= 0x80000008) {
        CpuidResult sizes = cpuid(0x80000008);
        f.physical_address_bits = static_cast<u8>(sizes.eax & 0xff);
        f.linear_address_bits = static_cast<u8>((sizes.eax >> 8) & 0xff);
    }
}

}  // namespace lamina::x86
