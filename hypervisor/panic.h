// Unrecoverable hypervisor states: print what happened (CPU, message, registers, a symbolized
// backtrace), stop every other CPU, and halt. A guest's fault never gets here.
#pragma once

#include <lamina/format.h>

namespace lamina {
namespace x86 {
struct InterruptFrame;
}

[[noreturn]] void vpanic(const x86::InterruptFrame* frame, const char* fmt, const FormatArg* args,
                         usize count);

template <typename... A>
[[noreturn]] void panic(const char* fmt, const A&... args) {
    const FormatArg list[] = {FormatArg(args)..., FormatArg(0)};
    vpanic(nullptr, fmt, list, sizeof...(A));
}

// Symbolizes a text address as "name+0xoff"; false if it is no known function.
bool symbolize(u64 address, const char** name, u64* offset);

// Hooks filled in as the machine comes up.
struct PanicHooks {
    void (*stop_other_cpus)() = nullptr;  // NMI to every other CPU
    void (*end_emulator)(bool success) = nullptr;  // only with the emu_exit option
};
extern PanicHooks panic_hooks;

// True once any CPU panicked: an NMI then means "stop here".
bool panic_in_progress();

}  // namespace lamina
