#include <dom0/kernel/console.h>

#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {

void Console::write(const char* text, usize length) {
    while (length > 0) {
        if (used_ == sizeof(buffer_)) flush();
        const usize take = min(length, sizeof(buffer_) - used_);
        str::copy_bytes(buffer_ + used_, text, take);
        used_ += take;
        text += take;
        length -= take;
    }
}

void Console::flush() {
    // A failure has nowhere to be reported but this console: the output is dropped.
    if (used_ > 0) lamina_hc_console_write(gpa(buffer_), used_);
    used_ = 0;
}

Console& console() {
    static Console instance;
    return instance;
}

}  // namespace lamina::dom0
