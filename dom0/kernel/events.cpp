#include <dom0/kernel/events.h>

#include <dom0/kernel/console.h>
#include <lamina/abi/hypercall.h>
#include <lamina/interrupt_gate.h>

extern "C" char dom0_upcall_entry[];  // dom0/arch/upcall.S

namespace lamina::dom0 {
namespace {

// Linux's HYPERVISOR_CALLBACK_VECTOR: high, so that it outranks device vectors Dom0 uses later.
constexpr u8 kUpcallVector = 0xf3;
constexpr u32 kVcpu = 0;
// With console input as an event the timer is only a backstop; without it, the poll interval.
constexpr u64 kBackstopNs = 1'000'000'000;
constexpr u64 kPollIntervalNs = 10'000'000;
constexpr usize kPortWords = LAMINA_EVTCHN_PORTS / 64;

constexpr u16 kCodeSelector = 0x08;  // lib/src/pvh_entry.S

alignas(LAMINA_HYPERCALL_PAGE_SIZE) lamina_evtchn_shared event_page;
alignas(16) InterruptGate idt[256];
// The ports the upcall took off the pending bitmap, until take_event() asks about them.
u64 fired[kPortWords];

bool upcalls = false;
bool timer_bound = false;
bool console_bound = false;
i64 domain_died_port = -1;

void install_upcall_gate() {
    idt[kUpcallVector] = InterruptGate::to(reinterpret_cast<u64>(dom0_upcall_entry), kCodeSelector);
    const DescriptorPointer pointer{sizeof(idt) - 1, reinterpret_cast<u64>(idt)};
    asm volatile("lidt %0" : : "m"(pointer) : "memory");
}

}  // namespace

void start_events(Sink& log) {
    auto poll = [&](const char* step, i64 result) {
        format(log, "dom0: {}: {}; checking for input every {} ms (vcpu_set_timer, vcpu_block)\n", step,
               lamina_errno_name(result), kPollIntervalNs / 1'000'000);
    };
    i64 result = lamina_hc_evtchn_init(gpa(&event_page));
    if (result < 0) return poll("evtchn_init", result);
    const i64 timer_port = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, kVcpu);
    const i64 console_port = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_CONSOLE, kVcpu);
    if (timer_port < 0 && console_port < 0) return poll("evtchn_bind_virq", console_port);
    install_upcall_gate();
    result = lamina_hc_evtchn_set_upcall_vector(kVcpu, kUpcallVector);
    if (result < 0) return poll("evtchn_set_upcall_vector", result);
    upcalls = true;
    timer_bound = timer_port >= 0;
    console_bound = console_port >= 0;
    if (!console_bound)
        format(log, "dom0: evtchn_bind_virq(console): {}; checking for input every {} ms\n",
               lamina_errno_name(console_port), kPollIntervalNs / 1'000'000);
    domain_died_port = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_DOMAIN_DIED, kVcpu);
    if (domain_died_port < 0)
        format(log, "dom0: evtchn_bind_virq(domain died): {}; checking Dom0's domains at every wake\n",
               lamina_errno_name(domain_died_port));
}

void wait_for_input() { wait_for_event(console_bound ? kBackstopNs : kPollIntervalNs); }

void wait_for_event(u64 timeout) {
    if (!upcalls || !timer_bound) {
        // Without the timer's event the vCPU's timer still ends a vcpu_block: poll at its pace.
        lamina_hc_vcpu_set_timer(min(timeout, kPollIntervalNs));
        lamina_hc_vcpu_block();
        // A pending upcall is taken after the NOP (STI's shadow), before CLI.
        if (upcalls) asm volatile("sti; nop; cli" ::: "memory");
        return;
    }
    lamina_hc_vcpu_set_timer(timeout);
    // STI delays interrupts until after the next instruction (SDM Vol. 2B "STI"): an upcall raised
    // since the last check, held while IF was 0, arrives in the HLT and ends it. Nothing that
    // arrived before the HLT is left waiting for the timer.
    asm volatile("sti; hlt; cli" ::: "memory");
}

bool take_event(u32 port) {
    if (!upcalls) return true;
    if (port >= LAMINA_EVTCHN_PORTS) return false;
    const u64 bit = u64{1} << (port % 64);
    return __atomic_fetch_and(&fired[port / 64], ~bit, __ATOMIC_SEQ_CST) & bit;
}

bool take_domain_died() { return domain_died_port < 0 || take_event(static_cast<u32>(domain_died_port)); }

}  // namespace lamina::dom0

// The upcall: acknowledge every pending event, remembering which (the loops that wait find out
// what each means), in the order event_channel.h gives: upcall_pending, then the pending words,
// then each word's unmasked bits, all with locked instructions as the hypervisor sets them.
extern "C" void dom0_upcall() {
    using lamina::dom0::event_page;
    using lamina::dom0::fired;
    auto& vcpu = event_page.vcpu[lamina::dom0::kVcpu];
    __atomic_store_n(&vcpu.upcall_pending, 0, __ATOMIC_SEQ_CST);
    lamina::u64 words = __atomic_exchange_n(&vcpu.pending_words, 0, __ATOMIC_SEQ_CST);
    while (words) {
        const unsigned word = static_cast<unsigned>(__builtin_ctzll(words));
        words &= words - 1;
        const lamina::u64 mask = __atomic_load_n(&event_page.mask[word], __ATOMIC_RELAXED);
        const lamina::u64 taken = __atomic_fetch_and(&event_page.pending[word], mask, __ATOMIC_SEQ_CST) & ~mask;
        __atomic_fetch_or(&fired[word], taken, __ATOMIC_SEQ_CST);
    }
}
