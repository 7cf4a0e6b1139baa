// An unprivileged domain's own vCPUs (Dom0 gives every test domain two): vcpu_up starts the
// second one in real mode and in 32-bit protected mode with the registers its context names and
// refuses what the table and vcpu.h rule out; vcpu_down stops it from vCPU 0 and from itself and
// never the last one up; vcpu_yield lets it run; vcpu_block sleeps until an event is pending for
// the calling vCPU and no longer; vcpu_set_timer fires the calling vCPU's LAMINA_VIRQ_TIMER,
// replaces the last timer and cancels. Each case leaves the second vCPU down and no port bound.
// The second vCPU's entries are in vcpu_entry.S.
#include <tests/conformance/framework/conformance.h>

#include <lamina/atomic.h>
#include <tests/guests/guest.h>
#include <lamina/string.h>
#include <tests/guests/traps.h>

CONFORMANCE_KERNEL("vcpu", Functional);

using namespace conformance;
using guest::rdtsc;

// What an entry of vcpu_entry.S records: how many times it ran, then EAX..EDI as it found them.
struct EntryRecord {
    u32 arrivals;
    u32 registers[8];
};

extern "C" {
extern const char real_mode_blob[], real_mode_blob_end[], real_mode_record[];
extern const char protected_entry[];
u32 secondary_cr3;  // vCPU 0's page tables, for protected_entry's switch to long mode
EntryRecord protected_record;
[[noreturn]] void secondary_main();
}

namespace {

constexpr u32 kSecond = 1;                // the vCPU these cases start and stop
constexpr u64 kRealModeBase = 0x8000;     // RAM below 1 MiB, above the PVH boot information
constexpr u64 kRealModeStack = 0x7ff0;
constexpr u32 kRegisterPattern = 0xc0de0000;  // | the register's number: what a context asks for
constexpr u64 kMs = 1'000'000;
// Timers the guest compares by TSC ticks (it knows no TSC frequency): far enough apart that
// vCPU 0's wait for its turn on a CPU after a wake-up (Dom0 prints meanwhile) cannot blur them.
constexpr u64 kShortNs = 5 * kMs;
constexpr u64 kLongNs = 50 * kMs;

alignas(16) u8 secondary_stack[16384];
alignas(4096) lamina_evtchn_shared event_page;
alignas(4096) u8 context_pages[2][4096];  // contexts at awkward addresses

// The second vCPU's state, as it reports it.
Atomic<u32> long_mode_arrivals{0};
Atomic<u32> finished{0};       // its job done: it halts next
Atomic<u32> release{0};        // vCPU 0 ends the hold and spin jobs
Atomic<u64> spins{0};
Atomic<u32> yields{0};
Atomic<i64> yield_result{0};
Atomic<u32> going_down{0};     // it is about to call vcpu_down on itself
Atomic<u32> came_back{0};      // vcpu_down on itself returned
Atomic<u32> woke{0};           // its vcpu_block returned
void (*volatile job)() = nullptr;

// ---- The second vCPU's jobs (secondary_main runs the one set) ---------------------------------

// Stays up, yielding, until vCPU 0 releases it.
void hold_job() {
    while (!release.load()) {
        yield_result.store(lamina_hc_vcpu_yield());
        yields.fetch_add(1);
    }
}

// Computes without an exit of its own until released. Interrupts on: Bochs holds host
// interrupts back while the guest's IF is 0 (tests/guests/spinner), and no guest interrupt
// comes (no upcall vector is set).
void spin_job() {
    guest::enable_interrupts();
    while (!release.load()) spins.fetch_add(1);
    guest::disable_interrupts();
}

void down_itself_job() {
    going_down.store(1);
    lamina_hc_vcpu_down(kSecond);
    came_back.store(1);
}

// Sleeps on a timer of its own.
void timer_job() {
    lamina_hc_vcpu_set_timer(kMs);
    lamina_hc_vcpu_block();
    woke.store(1);
}

// ---- vCPU 0's side ------------------------------------------------------------------------------

u32 arrivals(const EntryRecord& record) { return __atomic_load_n(&record.arrivals, __ATOMIC_SEQ_CST); }
EntryRecord& real_mode_copy() {
    return *reinterpret_cast<EntryRecord*>(kRealModeBase + static_cast<u64>(real_mode_record - real_mode_blob));
}

lamina_vcpu_context context(u32 mode, u64 rip, u64 rsp) {
    lamina_vcpu_context c{};
    c.mode = mode;
    u64* regs = &c.regs.rax;  // the encoding order, as EntryRecord's
    for (u32 i = 0; i < 8; ++i) regs[i] = kRegisterPattern | i;
    c.regs.rsp = rsp;
    c.regs.rip = rip;
    c.regs.rflags = 2;
    return c;
}
lamina_vcpu_context real_mode_context() { return context(LAMINA_VCPU_MODE_REAL, kRealModeBase, kRealModeStack); }
lamina_vcpu_context protected_context() {
    return context(LAMINA_VCPU_MODE_PROTECTED32, reinterpret_cast<u64>(protected_entry),
                   reinterpret_cast<u64>(secondary_stack + sizeof(secondary_stack)));
}

// The real-mode entry below 1 MiB, and vCPU 0's page tables for the protected-mode one.
bool prepare(Test& t) {
    static bool prepared = false;
    if (prepared) return true;
    u64 cr3;
    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    if (cr3 >> 32) {
        t.error("vCPU 0's page tables lie above 4 GiB ({:#x}): a 32-bit entry cannot load them", cr3);
        return false;
    }
    secondary_cr3 = static_cast<u32>(cr3);
    str::copy_bytes(reinterpret_cast<void*>(kRealModeBase), real_mode_blob,
                    static_cast<usize>(real_mode_blob_end - real_mode_blob));
    return prepared = true;
}

// Starts the second vCPU with the context at `gpa` and `next` as its job; whether `arrived`
// came true afterwards (it ran).
template <typename Arrived>
bool start(Test& t, u64 gpa, void (*next)(), Arrived arrived, const char* what) {
    job = next;
    const i64 result = lamina_hc_vcpu_up(kSecond, gpa);
    return t.returns(result, 0, what) && t.check(yield_until(arrived), "the second vCPU ran", "it never arrived");
}

bool take_down(Test& t, const char* what) { return t.returns(lamina_hc_vcpu_down(kSecond), 0, what); }

// Ends the hold or spin job the second vCPU runs, and takes it down once it halted.
void release_and_take_down(Test& t) {
    const u32 done = finished.load();
    release.store(1);
    t.check(yield_until([&] { return finished.load() != done; }), "the released second vCPU finished its job");
    release.store(0);
    take_down(t, "vcpu_down: the second vCPU, halted, goes down");
}

// Whether the entry saw the context's registers: every one vcpu.h names.
void check_registers(Test& t, const EntryRecord& seen, const lamina_vcpu_context& c, const char* mode) {
    const u64* regs = &c.regs.rax;
    u32 differ = 0;
    for (u32 i = 0; i < 8; ++i) differ += seen.registers[i] != static_cast<u32>(regs[i]);
    char what[96];
    format_to(what, sizeof(what), "vcpu_up: the {} entry starts with every register of the context", mode);
    t.check(differ == 0, what, "{} differ (EAX {:#x}, EBX {:#x}, ESP {:#x}, ESI {:#x})", differ, seen.registers[0],
            seen.registers[3], seen.registers[4], seen.registers[6]);
}

// The end of every case: the second vCPU is down (vcpu_down is EINVAL, where it would take a
// vCPU that is up down).
void check_second_down(Test& t, const char* call) {
    char what[96];
    format_to(what, sizeof(what), "{}: afterwards the second vCPU is down (vcpu_down is EINVAL)", call);
    t.returns(lamina_hc_vcpu_down(kSecond), kEinval, what);
}

void check_bad_indices(Test& t, const char* call, u64 number, u64 second_argument) {
    const u64 indices[] = {2, LAMINA_MAX_VCPUS, 0xffffffff};
    for (u64 index : indices) {
        char what[96];
        format_to(what, sizeof(what), "{}: vCPU {:#x}, which the domain lacks, is EINVAL", call, index);
        t.returns(raw_hypercall(number, index, second_argument), kEinval, what);
    }
    char what[96];
    format_to(what, sizeof(what), "{}: a vCPU index wider than 32 bits is EINVAL", call);
    t.returns(raw_hypercall(number, (u64{1} << 32) | kSecond, second_argument), kEinval, what);
}

// ---- Timers and their ports -------------------------------------------------------------------

struct TimerPorts {
    u32 first = 0, second = 0;  // LAMINA_VIRQ_TIMER of vCPU 0 and of the second vCPU
};

bool pending(u32 port) {
    return (__atomic_load_n(&event_page.pending[port / 64], __ATOMIC_SEQ_CST) >> (port % 64)) & 1;
}

// The guest's half of the event protocol (event_channel.h) for one port of `vcpu`.
void acknowledge(u32 port, u32 vcpu) {
    __atomic_store_n(&event_page.vcpu[vcpu].upcall_pending, 0, __ATOMIC_SEQ_CST);
    __atomic_exchange_n(&event_page.vcpu[vcpu].pending_words, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&event_page.pending[port / 64], ~(u64{1} << (port % 64)), __ATOMIC_SEQ_CST);
}

bool open_timer_ports(Test& t, TimerPorts* ports) {
    static bool initialised = false;
    if (!initialised) initialised = lamina_hc_evtchn_init(gpa_of(&event_page)) == 0;
    const i64 first = initialised ? lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0) : -1;
    const i64 second = initialised ? lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, kSecond) : -1;
    if (first <= 0 || second <= 0) {
        t.error("set-up: the timers' ports (evtchn_init, evtchn_bind_virq): {}, {}", first, second);
        return false;
    }
    *ports = {static_cast<u32>(first), static_cast<u32>(second)};
    return true;
}

void close_timer_ports(Test& t, const TimerPorts& ports, const char* call) {
    char what[96];
    format_to(what, sizeof(what), "{}: afterwards both timer ports close", call);
    t.check(lamina_hc_evtchn_close(ports.first) == 0 && lamina_hc_evtchn_close(ports.second) == 0, what);
}

// TSC ticks from arming the timer for `ns` to vcpu_block's return; whether both calls said 0.
u64 sleep_ticks(u64 ns, bool* ok) {
    const u64 start = rdtsc();
    *ok = lamina_hc_vcpu_set_timer(ns) == 0 && lamina_hc_vcpu_block() == 0;
    return rdtsc() - start;
}

// Sleeps until Dom0 has printed what this kernel wrote so far: while it prints, a vCPU of this
// domain may wait for its CPU well past its timer (on Bochs up to a time slice), which would blur
// the sleeps measured next.
void let_output_drain() {
    lamina_hc_vcpu_set_timer(4 * kLongNs);
    lamina_hc_vcpu_block();
}

// Runs `ticks` TSC ticks without blocking; interrupts on, so that Bochs lets the host's timer
// interrupt out (spin_job says why).
void spin_ticks(u64 ticks) {
    guest::enable_interrupts();
    for (const u64 start = rdtsc(); rdtsc() - start < ticks;) asm volatile("pause");
    guest::disable_interrupts();
}

}  // namespace

extern "C" void secondary_main() {
    guest::install_traps();
    long_mode_arrivals.fetch_add(1);
    if (void (*run)() = job) run();
    finished.fetch_add(1);
    for (;;) asm volatile("cli; hlt");
}

HYPERCALL_TEST(vcpu_up) {
    if (!prepare(t)) return;
    // Refusals first, while the second vCPU is down: none may start it.
    const lamina_vcpu_context valid = protected_context();
    check_bad_indices(t, "vcpu_up", LAMINA_HYPERCALL_vcpu_up, gpa_of(&valid));
    t.returns(lamina_hc_vcpu_up(0, gpa_of(&valid)), kEbusy, "vcpu_up: the calling vCPU is up: EBUSY");
    struct BadContext {
        const char* what;
        void (*spoil)(lamina_vcpu_context&);
    };
    const BadContext bad[] = {
        {"vcpu_up: a context with flags set is EINVAL", [](lamina_vcpu_context& c) { c.flags = 1; }},
        {"vcpu_up: an unknown mode is EINVAL", [](lamina_vcpu_context& c) { c.mode = LAMINA_VCPU_MODE_LONG64 + 1; }},
        {"vcpu_up: mode 0xffffffff is EINVAL", [](lamina_vcpu_context& c) { c.mode = 0xffffffff; }},
        {"vcpu_up: a 32-bit RIP above 4 GiB is EINVAL", [](lamina_vcpu_context& c) { c.regs.rip = u64{1} << 32; }},
        {"vcpu_up: a 32-bit RSP above 4 GiB is EINVAL", [](lamina_vcpu_context& c) { c.regs.rsp |= u64{1} << 32; }},
        {"vcpu_up: a 32-bit RBX above 4 GiB is EINVAL", [](lamina_vcpu_context& c) { c.regs.rbx |= u64{1} << 32; }},
        {"vcpu_up: a real-mode RIP at 1 MiB is EINVAL",
         [](lamina_vcpu_context& c) {
             c = real_mode_context();
             c.regs.rip = 0x100000;
         }},
    };
    for (const BadContext& b : bad) {
        lamina_vcpu_context c = valid;
        b.spoil(c);
        t.returns(lamina_hc_vcpu_up(kSecond, gpa_of(&c)), kEinval, b.what);
    }
    check_bad_buffers(t, "vcpu_up", sizeof(lamina_vcpu_context),
                      [](u64 gpa) { return lamina_hc_vcpu_up(kSecond, gpa); });
    t.check(arrivals(protected_record) == 0 && arrivals(real_mode_copy()) == 0,
            "vcpu_up: no refused call started the second vCPU");

    // 32-bit protected mode, held up (yielding) until released: meanwhile it is up.
    const u32 before = long_mode_arrivals.load();
    if (start(t, gpa_of(&valid), hold_job, [&] { return long_mode_arrivals.load() != before; },
              "vcpu_up: starts the second vCPU in 32-bit protected mode")) {
        check_registers(t, protected_record, valid, "protected-mode");
        t.returns(lamina_hc_vcpu_up(kSecond, gpa_of(&valid)), kEbusy, "vcpu_up: a vCPU that is up is EBUSY");
        release_and_take_down(t);
    }

    // Real mode, from the copy below 1 MiB: it halts with interrupts off, and is still up then.
    const lamina_vcpu_context real = real_mode_context();
    EntryRecord& copy = real_mode_copy();
    const u32 real_before = arrivals(copy);
    if (start(t, gpa_of(&real), nullptr, [&] { return arrivals(copy) != real_before; },
              "vcpu_up: starts the second vCPU in real mode at CS:IP = RIP >> 4 : RIP & 0xf")) {
        check_registers(t, copy, real, "real-mode");
        t.returns(lamina_hc_vcpu_up(kSecond, gpa_of(&real)), kEbusy,
                  "vcpu_up: a vCPU halted with interrupts off is still up: EBUSY");
        take_down(t, "vcpu_down: the second vCPU, halted in real mode, goes down");
    }

    // The context may lie anywhere in RAM: across a page boundary, at an odd address.
    const u64 awkward[] = {gpa_of(context_pages[1]) - sizeof(lamina_vcpu_context) / 2, gpa_of(context_pages[0]) + 1};
    const char* places[] = {"vcpu_up: a context across a page boundary works",
                            "vcpu_up: a context at an odd address works"};
    for (u32 i = 0; i < 2; ++i) {
        str::copy_bytes(reinterpret_cast<void*>(awkward[i]), &real, sizeof(real));
        const u32 seen = arrivals(copy);
        if (start(t, awkward[i], nullptr, [&] { return arrivals(copy) != seen; }, places[i]))
            take_down(t, "vcpu_down: the second vCPU goes down again");
    }

    // 64-bit mode, on vCPU 0's page tables, with the CR4 bits a LONG64 context may carry.
    lamina_vcpu_context long64 = long64_vcpu_context(secondary_main, secondary_stack + sizeof(secondary_stack));
    const u32 long_before = long_mode_arrivals.load();
    job = nullptr;
    if (t.returns(lamina_hc_vcpu_up(kSecond, gpa_of(&long64)), 0, "vcpu_up: takes a LONG64 context")) {
        t.check(yield_until([&] { return long_mode_arrivals.load() != long_before; }),
                "vcpu_up: starts the second vCPU in 64-bit mode");
        take_down(t, "vcpu_down: the second vCPU, halted in 64-bit mode, goes down");
    }
    check_second_down(t, "vcpu_up");
}

HYPERCALL_TEST(vcpu_down) {
    if (!prepare(t)) return;
    check_bad_indices(t, "vcpu_down", LAMINA_HYPERCALL_vcpu_down, 0);
    t.returns(lamina_hc_vcpu_down(kSecond), kEinval, "vcpu_down: a vCPU that is down is EINVAL");
    t.returns(lamina_hc_vcpu_down(0), kEbusy, "vcpu_down: the last vCPU up is EBUSY (use shutdown)");

    const lamina_vcpu_context c = protected_context();
    // A running vCPU, taken down from vCPU 0, runs no more.
    const u64 spun = spins.load();
    if (start(t, gpa_of(&c), spin_job, [&] { return spins.load() != spun; },
              "vcpu_up: starts the second vCPU to spin")) {
        take_down(t, "vcpu_down: stops the spinning second vCPU");
        // On another CPU it may take a moment to stop: it must, and stay stopped.
        u64 last = spins.load();
        const bool stopped = yield_until([&] {
            for (u32 i = 0; i < 20; ++i) lamina_hc_vcpu_yield();
            const u64 before = last;
            last = spins.load();
            return last == before;
        });
        t.check(stopped, "vcpu_down: the vCPU taken down runs no more", "it spun on to {}", spins.load());
    }
    // The calling vCPU itself: vcpu_down does not return to it, and vcpu_up can start it again
    // (EBUSY until it is down).
    const u32 went = going_down.load();
    if (start(t, gpa_of(&c), down_itself_job, [&] { return going_down.load() != went; },
              "vcpu_up: starts the second vCPU to take itself down")) {
        const lamina_vcpu_context real = real_mode_context();
        const u32 parked = arrivals(real_mode_copy());
        i64 again = kEbusy;
        yield_until([&] { return came_back.load() || (again = lamina_hc_vcpu_up(kSecond, gpa_of(&real))) != kEbusy; });
        t.check(again == 0 && !came_back.load(), "vcpu_down: the calling vCPU takes itself down",
                "vcpu_up answered {}, vcpu_down {} to it", lamina_errno_name(again),
                came_back.load() ? "returned" : "did not return");
        if (again == 0 && t.check(yield_until([&] { return arrivals(real_mode_copy()) != parked; }),
                                  "vcpu_up: the second vCPU starts again after taking itself down"))
            take_down(t, "vcpu_down: the second vCPU, halted in real mode, goes down");
    }
    t.returns(lamina_hc_vcpu_down(0), kEbusy, "vcpu_down: vCPU 0, alone again, is still the last one up");
    check_second_down(t, "vcpu_down");
}

HYPERCALL_TEST(vcpu_yield) {
    if (!prepare(t)) return;
    t.returns(lamina_hc_vcpu_yield(), 0, "vcpu_yield: with no other vCPU of the domain up it returns 0");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_vcpu_yield, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull), 0,
              "vcpu_yield: ignores the argument registers");

    // The second vCPU computes; while vCPU 0 yields it gets the CPU (on one CPU it could not
    // otherwise before vCPU 0's time slice ends).
    const lamina_vcpu_context c = protected_context();
    const u64 spun = spins.load();
    if (start(t, gpa_of(&c), spin_job, [&] { return spins.load() != spun; },
              "vcpu_up: starts the second vCPU to spin")) {
        const u64 before = spins.load();
        t.check(yield_until([&] { return spins.load() != before; }),
                "vcpu_yield: the other vCPU runs while this one yields");
        release_and_take_down(t);
    }

    // The second vCPU yields too, until released.
    const u32 held = yields.load();
    if (start(t, gpa_of(&c), hold_job, [&] { return yields.load() != held; },
              "vcpu_up: starts the second vCPU to yield")) {
        release_and_take_down(t);
        t.returns(yield_result.load(), 0, "vcpu_yield: returns 0 on the second vCPU");
    }
    check_second_down(t, "vcpu_yield");
}

HYPERCALL_TEST(vcpu_block) {
    TimerPorts ports;
    if (!prepare(t) || !open_timer_ports(t, &ports)) return;
    // Interrupts stay off: no upcall vector is set, so events only set bits and wake.
    let_output_drain();
    acknowledge(ports.first, 0);
    bool short_ok = false, long_ok = false;
    const u64 short_sleep = sleep_ticks(kShortNs, &short_ok);
    acknowledge(ports.first, 0);
    const u64 long_sleep = sleep_ticks(kLongNs, &long_ok);
    t.check(short_ok && long_ok, "vcpu_block: returns 0 once the vCPU's timer has fired");
    t.check(long_sleep > 3 * short_sleep, "vcpu_block: the vCPU sleeps until its timer fires",
            "50 ms took {} ticks, 5 ms {}", long_sleep, short_sleep);

    // The timer's event is still pending (not acknowledged): the next block returns at once,
    // long before a timer a second away.
    t.check(event_page.vcpu[0].upcall_pending == 1, "vcpu_block: the timer's event is pending for vCPU 0");
    bool at_once_ok = false;
    const u64 at_once = sleep_ticks(1000 * kMs, &at_once_ok);
    t.check(at_once_ok && at_once < long_sleep, "vcpu_block: returns at once while an event is pending",
            "{} ticks (50 ms: {})", at_once, long_sleep);
    lamina_hc_vcpu_set_timer(0);
    acknowledge(ports.first, 0);

    // The second vCPU sleeps on its timer's port, masked: the event is pending but not for the
    // vCPU (no upcall), so it sleeps on; unmasking wakes it.
    __atomic_fetch_or(&event_page.mask[ports.second / 64], u64{1} << (ports.second % 64), __ATOMIC_SEQ_CST);
    woke.store(0);
    const lamina_vcpu_context c = protected_context();
    if (start(t, gpa_of(&c), timer_job, [&] { return pending(ports.second); },
              "vcpu_up: starts the second vCPU to sleep on its timer, masked")) {
        for (u32 i = 0; i < 100; ++i) lamina_hc_vcpu_yield();
        t.check(!woke.load(), "vcpu_block: a masked port's event does not wake the vCPU");
        t.returns(lamina_hc_evtchn_unmask(ports.second), 0, "evtchn_unmask: the second vCPU's timer port");
        t.check(yield_until([&] { return woke.load() != 0; }), "vcpu_block: the unmasked event wakes the vCPU");
        take_down(t, "vcpu_down: the second vCPU, halted, goes down");
    }
    acknowledge(ports.second, kSecond);
    close_timer_ports(t, ports, "vcpu_block");
    check_second_down(t, "vcpu_block");
}

HYPERCALL_TEST(vcpu_set_timer) {
    TimerPorts ports;
    if (!prepare(t) || !open_timer_ports(t, &ports)) return;
    // The sleep is also the yardstick for the timers below.
    let_output_drain();
    acknowledge(ports.first, 0);
    bool ok = false;
    const u64 long_sleep = sleep_ticks(kLongNs, &ok);
    t.check(ok && pending(ports.first), "vcpu_set_timer: the timer fires LAMINA_VIRQ_TIMER on the vCPU's port");
    t.check(!pending(ports.second), "vcpu_set_timer: the other vCPU's timer port stays quiet");
    acknowledge(ports.first, 0);

    // A new timer replaces the last: the earlier one never fires, the later one does. (Neither
    // is close: the host of an emulator may pause this vCPU between two calls.)
    const u64 start_ticks = rdtsc();
    const bool armed = lamina_hc_vcpu_set_timer(kShortNs) == 0 && lamina_hc_vcpu_set_timer(2 * kLongNs) == 0;
    const bool woke_up = lamina_hc_vcpu_block() == 0;
    const u64 replaced = rdtsc() - start_ticks;
    t.check(armed && woke_up && replaced > long_sleep, "vcpu_set_timer: a new timer replaces the last",
            "slept {} ticks (50 ms: {})", replaced, long_sleep);
    acknowledge(ports.first, 0);

    // 0 cancels; a far timer is set but does not fire now.
    t.returns(lamina_hc_vcpu_set_timer(kLongNs), 0, "vcpu_set_timer: a 50 ms timer");
    t.returns(lamina_hc_vcpu_set_timer(0), 0, "vcpu_set_timer: 0 cancels it");
    spin_ticks(2 * long_sleep);
    t.check(!pending(ports.first), "vcpu_set_timer: the cancelled timer does not fire");
    t.returns(lamina_hc_vcpu_set_timer(3600'000 * kMs), 0, "vcpu_set_timer: a timer an hour away");
    spin_ticks(long_sleep);
    t.check(!pending(ports.first), "vcpu_set_timer: the far timer does not fire now");
    t.returns(lamina_hc_vcpu_set_timer(0), 0, "vcpu_set_timer: 0 cancels the far timer");

    // The second vCPU's timer is its own: its port, not vCPU 0's, and it wakes that vCPU.
    acknowledge(ports.first, 0);
    woke.store(0);
    const lamina_vcpu_context c = protected_context();
    if (start(t, gpa_of(&c), timer_job, [] { return woke.load() != 0; },
              "vcpu_up: starts the second vCPU to sleep on its timer")) {
        t.check(pending(ports.second) && !pending(ports.first),
                "vcpu_set_timer: the second vCPU's timer fires on its own port");
        take_down(t, "vcpu_down: the second vCPU, halted, goes down");
    }
    acknowledge(ports.second, kSecond);
    close_timer_ports(t, ports, "vcpu_set_timer");
    check_second_down(t, "vcpu_set_timer");
}
