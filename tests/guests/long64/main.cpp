// The 64-bit long-mode test guest: entered through PVH in 32-bit mode, it switched to long mode
// itself (CR4.PAE, EFER.LME, CR0.PG), and now checks what the hypervisor shows it.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64 start_info) {
    Checks t;

    Cpuid signature = cpuid(0x40000000);
    char vendor[13] = {};
    str::copy_bytes(vendor + 0, &signature.ebx, 4);
    str::copy_bytes(vendor + 4, &signature.ecx, 4);
    str::copy_bytes(vendor + 8, &signature.edx, 4);
    t.expect(str::equal(vendor, "LaminaLamina"), "cpuid: hypervisor signature at 0x40000000",
             "got \"{}\"", vendor);
    t.expect(signature.eax >= 0x40000001, "cpuid: hypervisor leaves go to at least 0x40000001",
             "max {:#x}", signature.eax);

    Cpuid basic = cpuid(1);
    t.expect((basic.ecx & (1u << 31)) != 0, "cpuid: the hypervisor-present bit is set");
    t.expect((basic.ecx & (1u << 5)) == 0, "cpuid: VMX is hidden");
    t.expect((cpuid(0x80000001).ecx & (1u << 2)) == 0, "cpuid: SVM is hidden");

    t.expect(inb(0x1234) == 0xff, "io: an unclaimed port reads all ones (byte)");
    t.expect(inw(0x1234) == 0xffff, "io: an unclaimed port reads all ones (word)");
    t.expect(inl(0x1234) == 0xffffffff, "io: an unclaimed port reads all ones (dword)");
    outb(0x1234, 0x55);  // dropped
    t.expect(inb(0xe9) == 0xe9, "io: the debug console at port 0xE9 answers 0xE9");
    t.expect(start_info != 0, "pvh: EBX held the start info address");

    u64 efer_lo, efer_hi;
    asm volatile("rdmsr" : "=a"(efer_lo), "=d"(efer_hi) : "c"(0xc0000080));
    t.expect((efer_lo & (1u << 10)) != 0, "long mode: EFER.LMA is set", "efer {:#x}", efer_lo);
    // INVLPG on a mapped page, then the page is still there (stage 2 keeps guest TLB flushes
    // the guest's business: no exit, nothing lost).
    static volatile u64 probe = 0x1234;
    asm volatile("invlpg (%0)" : : "r"(&probe) : "memory");
    t.expect(probe == 0x1234, "paging: INVLPG of a mapped page keeps it readable");
    t.finish();
}
