// Dom0's console: the physical one, which the hypervisor owns; Dom0 writes and reads it through
// the console_write and console_read hypercalls, as Xen's Dom0 does with CONSOLEIO.
#pragma once

#include <dom0/kernel/memory.h>
#include <lamina/abi/console.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::dom0 {

// Collects output and hands it to console_write in batches (each call is a VM exit): at a full
// buffer, and at flush(), which the input loop calls before it waits.
class Console final : public Sink {
public:
    void write(const char* text, usize length) override;
    void flush();

private:
    static constexpr usize kBufferSize = 1024;
    static_assert(kBufferSize <= LAMINA_CONSOLE_IO_MAX, "one console_write takes the whole buffer");

    char buffer_[kBufferSize];
    usize used_ = 0;
};

Console& console();

// Dom0's console input, one byte at a time: what console_read returned is kept until taken, so
// that a command that reads input itself (console) leaves what follows for the shell.
class ConsoleInput {
public:
    // The next byte typed, if there is one now.
    bool next(u8* byte);
    // The same byte, left for the next call.
    bool peek(u8* byte);

private:
    bool fill();

    u8 buffer_[256];
    usize taken_ = 0;
    usize count_ = 0;
    bool read_failed_ = false;
};

ConsoleInput& console_input();

}  // namespace lamina::dom0
