// The 64-bit long-mode test guest: entered through PVH in 32-bit mode, it switched to long mode
// itself (CR4.PAE, EFER.LME, CR0.PG), and now checks what the hypervisor shows it.
#include <lamina/abi/errno.h>
#include <lamina/abi/event_channel.h>
#include <lamina/abi/host.h>
#include <lamina/abi/hypercall.h>
#include <tests/guests/traps.h>

LAMINA_HYPERCALL_PAGE_DEFINE();

using namespace guest;

namespace {

constexpr u32 kPat = 0x277;
constexpr u32 kMtrrCap = 0xfe;
constexpr u32 kMtrrDefType = 0x2ff;
constexpr u32 kApicBase = 0x1b;
constexpr u32 kFsBase = 0xc0000100;
constexpr u32 kGsBase = 0xc0000101;
constexpr u32 kKernelGsBase = 0xc0000102;
constexpr u32 kAmdHwcr = 0xc0010015;  // not emulated: #GP
constexpr int kGeneralProtection = 13;

// The MSRs the allow-list answers, those the guest owns outright, and #GP for the rest.
void check_msrs(Checks& t) {
    u64 value = 0;
    t.expect(rdmsr_checked(kPat, &value) < 0 && value == 0x0007040600070406, "msr: PAT reads its power-on value",
             "{:#x}", value);
    t.expect(wrmsr_checked(kPat, 0x0007010600070106) < 0 && rdmsr_checked(kPat, &value) < 0 &&
                 value == 0x0007010600070106,
             "msr: PAT takes WC entries", "{:#x}", value);
    t.expect(wrmsr_checked(kPat, 0x0000000000000002) == kGeneralProtection && rdmsr_checked(kPat, &value) < 0 &&
                 value == 0x0007010600070106,
             "msr: a reserved PAT type is #GP and changes nothing", "{:#x}", value);
    t.expect(rdmsr_checked(kMtrrCap, &value) < 0 && value == 0, "msr: MTRRCAP offers no ranges", "{:#x}", value);
    t.expect(wrmsr_checked(kMtrrDefType, 0x806) < 0 && rdmsr_checked(kMtrrDefType, &value) < 0 && value == 0x806,
             "msr: MTRR default type write-back, enabled", "{:#x}", value);
    t.expect(rdmsr_checked(kApicBase, &value) < 0 && (value & ~0xfffull) == 0xfee00000 && (value & (1u << 11)),
             "msr: the APIC base is the reset one, enabled", "{:#x}", value);
    t.expect(rdmsr_checked(kAmdHwcr, &value) == kGeneralProtection, "msr: an MSR nobody emulates is #GP");

    // Guest-owned: written and read without the hypervisor, switched with the vCPU.
    static volatile u64 fs_target = 0x5eed;
    t.expect(wrmsr_checked(kFsBase, reinterpret_cast<u64>(&fs_target)) < 0, "msr: FS base is writable");
    u64 through_fs = 0;
    asm volatile("movq %%fs:0, %0" : "=r"(through_fs));
    t.expect(through_fs == 0x5eed, "msr: FS base moves FS", "read {:#x}", through_fs);
    const u64 kernel_gs = 0xffff800012345000;
    t.expect(wrmsr_checked(kKernelGsBase, kernel_gs) < 0, "msr: KERNEL_GS_BASE is writable");
    asm volatile("swapgs" ::: "memory");
    u64 gs_after_swap = 0;
    rdmsr_checked(kGsBase, &gs_after_swap);
    asm volatile("swapgs" ::: "memory");
    t.expect(gs_after_swap == kernel_gs, "msr: SWAPGS exchanges GS base and KERNEL_GS_BASE", "{:#x}", gs_after_swap);
}

// The hypercall ABI as an unprivileged domain sees it: discovery, the page, the answers it may
// get and those it may not.
void check_hypercalls(Checks& t) {
    const int64_t detected = lamina_detect();
    t.expect(detected == LAMINA_ABI_VERSION, "abi: CPUID names Lamina and this ABI version", "{}", detected);
    lamina_hypercall_page_install(reinterpret_cast<u64>(lamina_hypercall_page));
    t.expect(lamina_hc_version() == LAMINA_ABI_VERSION, "abi: the version hypercall through the page");
    t.expect(lamina_hc_features(LAMINA_FEATURES_WORD0) == 0, "abi: no control-domain feature for a guest");
    static lamina_host_info info;
    const int64_t refused = lamina_hc_host_info(reinterpret_cast<u64>(&info));
    t.expect(refused == -LAMINA_EPERM, "abi: a control-domain call is EPERM", "{}", refused);
    t.expect(lamina_hypercall0(0x7f) == -LAMINA_ENOSYS, "abi: an unused number is ENOSYS");
    u64 value = 0;
    t.expect(rdmsr_checked(LAMINA_HYPERCALL_PAGE_MSR, &value) == kGeneralProtection,
             "abi: the hypercall-page MSR is write-only");
    // The vCPU's timer wakes it from vcpu_block, not before (interrupts off: no upcall needed).
    // The guest knows no TSC frequency, so one sleep measures another: 20 ms must take several
    // times as long as 2 ms (the calls themselves cost about 0.4 ms under QEMU's TCG). A busy
    // host can only lengthen a sleep (an emulator thread descheduled), so the shortest of a few
    // 2 ms sleeps is the one to compare.
    bool all_ok = true;
    const auto sleep_ticks = [&all_ok](u64 ns) {
        const u64 start = rdtsc();
        all_ok = lamina_hc_vcpu_set_timer(ns) == 0 && lamina_hc_vcpu_block() == 0 && all_ok;
        return rdtsc() - start;
    };
    u64 short_sleep = ~u64{0};
    for (int i = 0; i < 3; ++i) short_sleep = min(short_sleep, sleep_ticks(2000000));
    const u64 long_sleep = sleep_ticks(20000000);
    t.expect(all_ok, "abi: vcpu_block returns once the vCPU's timer has fired");
    t.expect(long_sleep > 3 * short_sleep, "abi: the vCPU slept until its timer",
             "20 ms took {} ticks, 2 ms {}", long_sleep, short_sleep);
}

alignas(4096) lamina_evtchn_shared event_page;

// Event channels inside one domain: the timer's VIRQ and a channel to itself, each ending in
// the upcall vector, with the event page's bits as the ABI describes them.
void check_event_channels(Checks& t) {
    constexpr u8 kUpcall = 0x50;
    t.expect(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0) == -LAMINA_ENOENT,
             "evtchn: nothing binds before the event page is registered");
    t.expect(lamina_hc_evtchn_init(reinterpret_cast<u64>(&event_page)) == 0, "evtchn: the event page is registered");
    t.expect(lamina_hc_evtchn_init(reinterpret_cast<u64>(&event_page)) == -LAMINA_EEXIST, "evtchn: only once");
    const int64_t timer = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0);
    t.expect(timer > 0, "evtchn: the timer's VIRQ binds to a port", "{}", timer);
    t.expect(lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_CONSOLE, 0) == -LAMINA_EPERM,
             "evtchn: a global VIRQ is the control domain's");
    t.expect(lamina_hc_evtchn_set_upcall_vector(0, kUpcall) == 0, "evtchn: the upcall vector is set");

    const u32 before = interrupts_taken(kUpcall);
    lamina_hc_vcpu_set_timer(1000000);
    asm volatile("sti; hlt; cli" ::: "memory");
    const u64 word = u64{1} << (static_cast<u64>(timer) % 64);
    t.expect(interrupts_taken(kUpcall) == before + 1, "evtchn: the timer's event arrives as the upcall");
    t.expect(event_page.vcpu[0].upcall_pending == 1 && (event_page.pending[timer / 64] & word),
             "evtchn: upcall_pending and the port's pending bit are set");
    // The guest's side of the protocol: clear, take the words, clear the port.
    event_page.vcpu[0].upcall_pending = 0;
    __atomic_exchange_n(&event_page.vcpu[0].pending_words, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&event_page.pending[timer / 64], ~word, __ATOMIC_SEQ_CST);

    const int64_t unbound = lamina_hc_evtchn_alloc_unbound(1);  // offered to itself (domain 1)
    const int64_t bound = unbound > 0 ? lamina_hc_evtchn_bind_interdomain(1, static_cast<u64>(unbound)) : -1;
    t.expect(unbound > 0 && bound > 0, "evtchn: a channel to itself", "{} {}", unbound, bound);
    lamina_evtchn_status status{};
    t.expect(lamina_hc_evtchn_status(static_cast<u64>(bound), reinterpret_cast<u64>(&status)) == 0 &&
                 status.state == LAMINA_EVTCHN_INTERDOMAIN,
             "evtchn: its status says interdomain", "state {}", status.state);
    event_page.vcpu[0].upcall_pending = 0;
    const u32 before_send = interrupts_taken(kUpcall);
    enable_interrupts();
    t.expect(lamina_hc_evtchn_send(static_cast<u64>(unbound)) == 0, "evtchn: send");
    disable_interrupts();
    t.expect(interrupts_taken(kUpcall) > before_send, "evtchn: a send raises the other end's upcall");
    t.expect(lamina_hc_evtchn_close(static_cast<u64>(bound)) == 0 &&
                 lamina_hc_evtchn_close(static_cast<u64>(bound)) == -LAMINA_EINVAL,
             "evtchn: close, and a closed port cannot be closed again");
}

}  // namespace

extern "C" void guest_main(u64 start_info) {
    Checks t;
    install_traps();

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
    check_msrs(t);
    check_hypercalls(t);
    check_event_channels(t);
    t.finish();
}
