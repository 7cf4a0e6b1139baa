// A guest for Dom0's domain scenarios: it greets, then prints "tick N" every 100 ms on its
// console (port 0xE9, which the hypervisor appends to the console ring Dom0 reads), woken by its
// vCPU's timer through the event page. Its command line steers how it ends:
//   ticks=K   shut down (poweroff) after tick K
//   crash     shut down as crashed after the first tick
// Without either it ticks until it is destroyed.
#include <lamina/abi/event_channel.h>
#include <lamina/abi/hypercall.h>
#include <lamina/pvh.h>
#include <tests/guests/guest.h>

LAMINA_HYPERCALL_PAGE_DEFINE();

using namespace guest;

namespace {

constexpr u64 kTickNs = 100'000'000;
constexpr usize kCommandLineMax = 1024;

alignas(4096) lamina_evtchn_shared event_page;

struct Options {
    u64 ticks = 0;  // 0: tick forever
    bool crash = false;
};

// The words of the start info's command line that the ticker knows; others are ignored.
Options read_options(u64 start_info) {
    Options options;
    const auto* start = reinterpret_cast<const pvh::StartInfo*>(start_info);
    if (!start || start->magic != pvh::kStartInfoMagic || !start->command_line) return options;
    const char* line = reinterpret_cast<const char*>(start->command_line);
    const usize length = str::length_bounded(line, kCommandLineMax);
    for (usize at = 0; at < length;) {
        usize end = at;
        while (end < length && line[end] != ' ') ++end;
        const usize word = end - at;
        if (word == 5 && str::compare_bytes(line + at, "crash", 5) == 0) options.crash = true;
        if (word > 6 && str::compare_bytes(line + at, "ticks=", 6) == 0)
            str::parse_u64(line + at + 6, word - 6, &options.ticks);
        at = end + 1;
    }
    return options;
}

[[noreturn]] void stop() {
    for (;;) asm volatile("cli; hlt");
}

[[noreturn]] void shut_down(Console& out, u32 reason) {
    const i64 result = lamina_hc_shutdown(reason);
    format(out, "ticker: shutdown: {}\n", lamina_errno_name(result));
    stop();
}

// Sleeps until the timer's port is pending, then clears what the hypervisor set for it (the
// port's bit, the vCPU's word and upcall flag), so that the next vcpu_block sleeps again.
void sleep_one_tick(u32 port) {
    const u64 bit = u64{1} << (port % 64);
    lamina_hc_vcpu_set_timer(kTickNs);
    while (!(__atomic_load_n(&event_page.pending[port / 64], __ATOMIC_SEQ_CST) & bit)) lamina_hc_vcpu_block();
    __atomic_store_n(&event_page.vcpu[0].upcall_pending, 0, __ATOMIC_SEQ_CST);
    __atomic_exchange_n(&event_page.vcpu[0].pending_words, 0, __ATOMIC_SEQ_CST);
    __atomic_fetch_and(&event_page.pending[port / 64], ~bit, __ATOMIC_SEQ_CST);
}

}  // namespace

extern "C" void guest_main(u64 start_info) {
    Console out;
    if (lamina_detect() < 0) {
        format(out, "ticker: not running on Lamina\n");
        stop();
    }
    lamina_hypercall_page_install(reinterpret_cast<u64>(lamina_hypercall_page));
    const Options options = read_options(start_info);
    format(out, "ticker: hello from domain\n");
    const i64 initialised = lamina_hc_evtchn_init(reinterpret_cast<u64>(&event_page));
    const i64 port = initialised < 0 ? initialised : lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_TIMER, 0);
    if (port < 0) {
        format(out, "ticker: no timer event ({}: {})\n", initialised < 0 ? "evtchn_init" : "evtchn_bind_virq",
               lamina_errno_name(port));
        shut_down(out, LAMINA_SHUTDOWN_CRASH);
    }
    for (u64 tick = 1;; ++tick) {
        sleep_one_tick(static_cast<u32>(port));
        format(out, "tick {}\n", tick);
        if (options.crash) {
            format(out, "ticker: crashing, as the command line asks\n");
            shut_down(out, LAMINA_SHUTDOWN_CRASH);
        }
        if (tick == options.ticks) {
            format(out, "ticker: {} ticks, powering off\n", tick);
            shut_down(out, LAMINA_SHUTDOWN_POWEROFF);
        }
    }
}
