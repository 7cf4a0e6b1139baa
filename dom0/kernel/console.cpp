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

bool ConsoleInput::next(u8* byte) {
    if (!peek(byte)) return false;
    ++taken_;
    return true;
}

bool ConsoleInput::peek(u8* byte) {
    if (!fill()) return false;
    *byte = buffer_[taken_];
    return true;
}

// Whether a byte is kept, reading the console when none is.
bool ConsoleInput::fill() {
    if (taken_ < count_) return true;
    taken_ = count_ = 0;
    const i64 result = lamina_hc_console_read(gpa(buffer_), sizeof(buffer_));
    if (result < 0) {
        // Said once, not at every try: the loops that wait call this at each wake.
        if (!read_failed_) format(console(), "\ndom0: console_read: {}\n", lamina_errno_name(result));
        read_failed_ = true;
    }
    if (result <= 0) return false;
    read_failed_ = false;
    count_ = min(static_cast<usize>(result), sizeof(buffer_));
    return true;
}

ConsoleInput& console_input() {
    static ConsoleInput instance;
    return instance;
}

}  // namespace lamina::dom0
