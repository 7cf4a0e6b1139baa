// Ending the emulator we run in, for automated tests (enabled by the emu_exit option only:
// on real hardware these ports may belong to something else).
#pragma once

namespace lamina::x86 {
// QEMU's isa-debug-exit device (status (value << 1) | 1) and Bochs' shutdown port 0x8900.
[[noreturn]] void end_emulator(bool success);
}  // namespace lamina::x86
