#include <hypervisor/log.h>

#include <arch/x86_64/interrupt_guard.h>
#include <drivers/uart/uart16550.h>
#include <hypervisor/time.h>
#include <hypervisor/percpu.h>
#include <lamina/string.h>

namespace lamina::log {
namespace {

constexpr usize kRingSize = 64 * KiB;

struct LogState {
    SpinLock lock;
    Uart16550* console = nullptr;
    Level level = Level::Info;
    u64 ring_written = 0;  // total bytes ever written; position = ring_written % kRingSize
};
LogState state;
char ring[kRingSize];  // apart from the initialized state, so it stays in .bss

// Writes to the console and the ring; the caller holds the lock.
class LockedSink final : public Sink {
public:
    void write(const char* text, usize length) override {
        if (state.console) state.console->write(text, length);
        for (usize i = 0; i < length; ++i) ring[(state.ring_written + i) % kRingSize] = text[i];
        state.ring_written += length;
    }
};

const char* level_tag(Level level) {
    switch (level) {
        case Level::Error: return "ERROR: ";
        case Level::Warn: return "WARN: ";
        default: return "";
    }
}

}  // namespace

void set_level(Level level) { state.level = level; }
Level level() { return state.level; }
void attach_console(Uart16550* uart) { state.console = uart; }

void vlog(Level level, const char* fmt, const FormatArg* args, usize count) {
    u64 ns = time::now_ns();
    x86::IrqSpinLockGuard guard(state.lock);
    LockedSink sink;
    format(sink, "[{:>5}.{:06}] cpu{} ", ns / 1000000000, (ns / 1000) % 1000000, this_cpu_index());
    sink.write(level_tag(level), str::length(level_tag(level)));
    vformat(sink, fmt, args, count);
    sink.write("\n", 1);
}

void vprint(const char* fmt, const FormatArg* args, usize count) {
    x86::IrqSpinLockGuard guard(state.lock);
    LockedSink sink;
    vformat(sink, fmt, args, count);
}

void write_console(const char* text, usize length) {
    x86::IrqSpinLockGuard guard(state.lock);
    if (state.console) state.console->write(text, length);
}

void drain_console() {
    if (state.console) state.console->drain();
}

void emergency_write(const char* text) {
    if (state.console) state.console->write(text, str::length(text));
}

void break_console_lock() {
    if (!state.lock.try_lock()) {
        // Another CPU stopped while holding it (it is halted now): take the lock over.
        state.lock.unlock();
        return;
    }
    state.lock.unlock();
}

usize read_from(u64* position, char* out, usize size) {
    x86::IrqSpinLockGuard guard(state.lock);
    // What the ring still holds starts here; anything older was overwritten and is skipped.
    const u64 oldest = state.ring_written > kRingSize ? state.ring_written - kRingSize : 0;
    u64 from = *position < oldest ? oldest : min(*position, state.ring_written);
    const usize n = static_cast<usize>(min<u64>(state.ring_written - from, size));
    for (usize i = 0; i < n; ++i) out[i] = ring[(from + i) % kRingSize];
    *position = from + n;
    return n;
}

}  // namespace lamina::log
