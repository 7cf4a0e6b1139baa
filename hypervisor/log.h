// The hypervisor's log: leveled, timestamped lines on the console (the physical UART) and in a
// ring kept for later reading (dmesg). Protocol lines for the test harness use print(), which
// adds no prefix and ignores the level.
#pragma once

#include <lamina/format.h>

namespace lamina {
class Uart16550;
}

namespace lamina::log {

enum class Level : u8 { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void set_level(Level level);
Level level();
void attach_console(Uart16550* uart);

void vlog(Level level, const char* fmt, const FormatArg* args, usize count);
void vprint(const char* fmt, const FormatArg* args, usize count);

// Waits until the console has sent everything: before the machine or emulator stops.
void drain_console();
// Text for the physical console only, not the log (the control domain's console output).
void write_console(const char* text, usize length);

// Raw text straight to the console, without the lock: for the panic path only.
void emergency_write(const char* text);
// Lets a panicking CPU own the console even if another CPU died holding its lock.
void break_console_lock();

template <typename... A>
void print(const char* fmt, const A&... args) {
    const FormatArg list[] = {FormatArg(args)..., FormatArg(0)};
    vprint(fmt, list, sizeof...(A));
}

#define LAMINA_LOG_LEVEL_FUNCTION(name, lvl)                              \
    template <typename... A>                                              \
    void name(const char* fmt, const A&... args) {                        \
        if (static_cast<u8>(lvl) > static_cast<u8>(level())) return;      \
        const FormatArg list[] = {FormatArg(args)..., FormatArg(0)};      \
        vlog(lvl, fmt, list, sizeof...(A));                               \
    }
LAMINA_LOG_LEVEL_FUNCTION(error, Level::Error)
LAMINA_LOG_LEVEL_FUNCTION(warn, Level::Warn)
LAMINA_LOG_LEVEL_FUNCTION(info, Level::Info)
LAMINA_LOG_LEVEL_FUNCTION(debug, Level::Debug)
#undef LAMINA_LOG_LEVEL_FUNCTION

// Log text from stream offset *position (bytes ever logged), up to `size` bytes; what the ring
// no longer holds is skipped. Returns the bytes copied and moves *position past them.
usize read_from(u64* position, char* out, usize size);


}  // namespace lamina::log
