#include <lamina/format.h>
#include <lamina/string.h>

namespace lamina {
namespace {

struct Spec {
    char type = 0;      // 0, 'x', 'X', 'b', 'o', 'd', 'c', 's', 'p'
    char align = 0;     // 0 (type default), '<', '>'
    bool alternate = false;
    bool zero_pad = false;
    usize width = 0;
};

// Parses the text between "{:" and "}". Unknown characters are ignored.
Spec parse_spec(const char* begin, const char* end) {
    Spec spec;
    const char* p = begin;
    if (p < end && (*p == '<' || *p == '>')) spec.align = *p++;
    if (p < end && *p == '#') { spec.alternate = true; ++p; }
    if (p < end && *p == '0') { spec.zero_pad = true; ++p; }
    while (p < end && *p >= '0' && *p <= '9') {
        if (spec.width < 1000) spec.width = spec.width * 10 + static_cast<usize>(*p - '0');
        ++p;
    }
    if (p < end) spec.type = *p;
    return spec;
}

void pad(Sink& sink, char fill, usize count) {
    char chunk[16];
    for (char& ch : chunk) ch = fill;
    while (count > 0) {
        usize n = min<usize>(count, sizeof(chunk));
        sink.write(chunk, n);
        count -= n;
    }
}

// Writes body with the spec's width and alignment; numbers align right by default.
void emit(Sink& sink, const Spec& spec, const char* prefix, const char* body, usize body_len,
          bool numeric) {
    usize prefix_len = str::length(prefix);
    usize total = prefix_len + body_len;
    usize fill = spec.width > total ? spec.width - total : 0;
    bool right = spec.align ? spec.align == '>' : numeric;
    if (numeric && spec.zero_pad && spec.align == 0) {
        sink.write(prefix, prefix_len);
        pad(sink, '0', fill);
        sink.write(body, body_len);
        return;
    }
    if (right) pad(sink, ' ', fill);
    sink.write(prefix, prefix_len);
    sink.write(body, body_len);
    if (!right) pad(sink, ' ', fill);
}

void emit_unsigned(Sink& sink, const Spec& spec, u64 value, bool negative) {
    unsigned base = 10;
    const char* digits = "0123456789abcdef";
    const char* prefix = negative ? "-" : "";
    switch (spec.type) {
        case 'x': base = 16; if (spec.alternate) prefix = "0x"; break;
        case 'X': base = 16; digits = "0123456789ABCDEF"; if (spec.alternate) prefix = "0x"; break;
        case 'b': base = 2; if (spec.alternate) prefix = "0b"; break;
        case 'o': base = 8; if (spec.alternate) prefix = "0o"; break;
        default: break;
    }
    char buffer[64];
    usize pos = sizeof(buffer);
    do {
        buffer[--pos] = digits[value % base];
        value /= base;
    } while (value != 0);
    emit(sink, spec, prefix, buffer + pos, sizeof(buffer) - pos, true);
}

void emit_arg(Sink& sink, const Spec& spec, const FormatArg& arg) {
    switch (arg.kind) {
        case FormatArg::Kind::Signed:
            if (spec.type == 'x' || spec.type == 'X' || spec.type == 'b' || spec.type == 'o')
                emit_unsigned(sink, spec, static_cast<u64>(arg.s), false);
            else if (arg.s < 0)
                emit_unsigned(sink, spec, 0 - static_cast<u64>(arg.s), true);
            else
                emit_unsigned(sink, spec, static_cast<u64>(arg.s), false);
            return;
        case FormatArg::Kind::Unsigned:
            emit_unsigned(sink, spec, arg.u, false);
            return;
        case FormatArg::Kind::Pointer: {
            Spec hex = spec;
            hex.type = 'x';
            hex.alternate = true;
            emit_unsigned(sink, hex, reinterpret_cast<uptr>(arg.p), false);
            return;
        }
        case FormatArg::Kind::String: {
            const char* s = arg.str ? arg.str : "(null)";
            emit(sink, spec, "", s, str::length(s), false);
            return;
        }
        case FormatArg::Kind::Char:
            if (spec.type == 'x' || spec.type == 'X' || spec.type == 'd')
                emit_unsigned(sink, spec, static_cast<u8>(arg.c), false);
            else
                emit(sink, spec, "", &arg.c, 1, false);
            return;
        case FormatArg::Kind::Bool: {
            const char* s = arg.b ? "true" : "false";
            emit(sink, spec, "", s, str::length(s), false);
            return;
        }
    }
}

}  // namespace

void vformat(Sink& sink, const char* fmt, const FormatArg* args, usize count) {
    usize next = 0;
    const char* run = fmt;
    const char* p = fmt;
    while (*p) {
        if (*p == '{' && p[1] == '{') {
            sink.write(run, static_cast<usize>(p - run) + 1);
            p += 2;
            run = p;
            continue;
        }
        if (*p == '}' && p[1] == '}') {
            sink.write(run, static_cast<usize>(p - run) + 1);
            p += 2;
            run = p;
            continue;
        }
        if (*p != '{') {
            ++p;
            continue;
        }
        const char* close = p + 1;
        while (*close && *close != '}') ++close;
        if (!*close) break;  // unterminated placeholder: emit the rest verbatim
        sink.write(run, static_cast<usize>(p - run));
        Spec spec;
        if (p[1] == ':') spec = parse_spec(p + 2, close);
        if (next < count)
            emit_arg(sink, spec, args[next]);
        else
            sink.write("{?}", 3);
        ++next;
        p = close + 1;
        run = p;
    }
    sink.write(run, str::length(run));
}

void BufferSink::write(const char* text, usize length) {
    needed_ += length;
    if (size_ == 0) return;
    usize room = size_ - 1 - used_;
    usize n = min(room, length);
    str::copy_bytes(buffer_ + used_, text, n);
    used_ += n;
    terminate();
}

void BufferSink::terminate() {
    if (size_ > 0) buffer_[used_] = '\0';
}

}  // namespace lamina
