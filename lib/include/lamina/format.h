// Type-safe formatted output: "{}" placeholders, arguments captured by type, never by a
// printf-style conversion character that can disagree with the argument.
//
//   {}      default rendering          {:x} {:X} {:b} {:o}  hex, HEX, binary, octal
//   {:#x}   with 0x prefix             {:08x} {:>8} {:<8}    zero pad, right/left align to width
//
// A placeholder without an argument renders as "{?}", a surplus argument is ignored: a bad
// format string degrades the message, never the system.
#pragma once

#include <lamina/types.h>

namespace lamina {

// Where formatted characters go. Implementations: a fixed buffer, the console, a ring log.
class Sink {
public:
    virtual void write(const char* text, usize length) = 0;

protected:
    ~Sink() = default;
};

struct FormatArg {
    enum class Kind : u8 { Signed, Unsigned, Pointer, String, Char, Bool };
    Kind kind;
    union {
        i64 s;
        u64 u;
        const void* p;
        const char* str;
        char c;
        bool b;
    };

    constexpr FormatArg(signed char v) : kind(Kind::Signed), s(v) {}
    constexpr FormatArg(short v) : kind(Kind::Signed), s(v) {}
    constexpr FormatArg(int v) : kind(Kind::Signed), s(v) {}
    constexpr FormatArg(long v) : kind(Kind::Signed), s(v) {}
    constexpr FormatArg(long long v) : kind(Kind::Signed), s(v) {}
    constexpr FormatArg(unsigned char v) : kind(Kind::Unsigned), u(v) {}
    constexpr FormatArg(unsigned short v) : kind(Kind::Unsigned), u(v) {}
    constexpr FormatArg(unsigned v) : kind(Kind::Unsigned), u(v) {}
    constexpr FormatArg(unsigned long v) : kind(Kind::Unsigned), u(v) {}
    constexpr FormatArg(unsigned long long v) : kind(Kind::Unsigned), u(v) {}
    constexpr FormatArg(char v) : kind(Kind::Char), c(v) {}
    constexpr FormatArg(bool v) : kind(Kind::Bool), b(v) {}
    constexpr FormatArg(const char* v) : kind(Kind::String), str(v) {}
    constexpr FormatArg(char* v) : kind(Kind::String), str(v) {}
    constexpr FormatArg(const void* v) : kind(Kind::Pointer), p(v) {}
    constexpr FormatArg(void* v) : kind(Kind::Pointer), p(v) {}
    template <typename E>
        requires __is_enum(E)
    constexpr FormatArg(E v) : FormatArg(static_cast<__underlying_type(E)>(v)) {}
};

void vformat(Sink& sink, const char* fmt, const FormatArg* args, usize count);

template <typename... Args>
void format(Sink& sink, const char* fmt, const Args&... args) {
    if constexpr (sizeof...(Args) == 0) {
        vformat(sink, fmt, nullptr, 0);
    } else {
        const FormatArg list[] = {FormatArg(args)...};
        vformat(sink, fmt, list, sizeof...(Args));
    }
}

// Formats into a fixed buffer, truncating; always NUL-terminates when size > 0.
class BufferSink final : public Sink {
public:
    BufferSink(char* buffer, usize size) : buffer_(buffer), size_(size) { terminate(); }
    void write(const char* text, usize length) override;
    // Characters the output needed, even those truncated away.
    usize needed() const { return needed_; }
    const char* str() const { return buffer_; }

private:
    void terminate();
    char* buffer_;
    usize size_;
    usize used_ = 0;
    usize needed_ = 0;
};

template <typename... Args>
usize format_to(char* buffer, usize size, const char* fmt, const Args&... args) {
    BufferSink sink(buffer, size);
    format(sink, fmt, args...);
    return sink.needed();
}

}  // namespace lamina
