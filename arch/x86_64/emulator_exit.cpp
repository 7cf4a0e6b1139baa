#include <arch/x86_64/emulator_exit.h>

#include <arch/x86_64/cpu.h>
#include <hypervisor/log.h>

namespace lamina::x86 {

void end_emulator(bool success) {
    log::drain_console();  // the last line must reach the harness
    constexpr u16 kQemuDebugExitPort = 0xf4;
    constexpr u16 kBochsShutdownPort = 0x8900;
    outl(kQemuDebugExitPort, success ? 0 : 1);
    for (const char* c = "Shutdown"; *c; ++c) outb(kBochsShutdownPort, static_cast<u8>(*c));
    halt_forever();
}

}  // namespace lamina::x86
