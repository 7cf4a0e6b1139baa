// Dom0's console: the physical one, which the hypervisor owns; Dom0 writes and reads it through
// the console_write and console_read hypercalls, as Xen's Dom0 does with CONSOLEIO.
#pragma once

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

// Dom0's RAM is mapped 1:1 and its page tables map it at the same addresses, so a pointer into
// Dom0 is the guest-physical address the hypercalls take.
inline u64 gpa(const void* pointer) { return reinterpret_cast<u64>(pointer); }

}  // namespace lamina::dom0
