#include <hypervisor/boot/cmdline.h>

#include <lamina/string.h>

namespace lamina {
namespace {

// A piece of the command line; the text itself is never modified or copied whole.
struct Slice {
    const char* data;
    usize length;

    bool empty() const { return length == 0; }
    char front() const { return data[0]; }
    char back() const { return data[length - 1]; }
    Slice drop_front(usize n) const { return {data + n, length - n}; }
    Slice drop_back(usize n) const { return {data, length - n}; }
    bool equals(const char* text) const {
        return str::length_bounded(text, length + 1) == length &&
               str::compare_bytes(data, text, length) == 0;
    }
};

constexpr usize kMaxTokenEcho = 64;  // longer tokens are shortened in diagnostics
constexpr char kQuote = '"';

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The next whitespace-separated token; whitespace inside double quotes does not end it.
// Returns false when only whitespace is left.
bool next_token(const char*& cursor, Slice& token, bool& unterminated_quote) {
    while (is_space(*cursor)) ++cursor;
    if (*cursor == '\0') return false;
    const char* start = cursor;
    bool quoted = false;
    for (; *cursor != '\0' && (quoted || !is_space(*cursor)); ++cursor) {
        if (*cursor == kQuote) quoted = !quoted;
    }
    token = {start, static_cast<usize>(cursor - start)};
    unterminated_quote = quoted;
    return true;
}

// `"x"` -> `x`: quotes are stripped only around a whole token or a whole value (as Linux does).
Slice unquote(Slice s) {
    if (s.empty() || s.front() != kQuote) return s;
    s = s.drop_front(1);
    return !s.empty() && s.back() == kQuote ? s.drop_back(1) : s;
}

// Option names treat '-' and '_' alike, so both emu-exit and emu_exit work (as in Xen).
bool name_matches(Slice name, const char* option_name) {
    if (str::length_bounded(option_name, name.length + 1) != name.length) return false;
    for (usize i = 0; i < name.length; ++i) {
        char a = name.data[i] == '-' ? '_' : name.data[i];
        char b = option_name[i] == '-' ? '_' : option_name[i];
        if (a != b) return false;
    }
    return true;
}

const Option* find_option(OptionTable table, Slice name) {
    for (const Option& option : table) {
        if (name_matches(name, option.name)) return &option;
    }
    return nullptr;
}

// Writes a number, as a size with the largest exact K/M/G suffix where the option takes one.
void write_number(Sink& sink, u64 value, bool size_suffix) {
    constexpr struct {
        u64 unit;
        char suffix;
    } kUnits[] = {{GiB, 'G'}, {MiB, 'M'}, {KiB, 'K'}};
    if (size_suffix && value != 0) {
        for (const auto& unit : kUnits) {
            if (value % unit.unit == 0) {
                format(sink, "{}{}", value / unit.unit, unit.suffix);
                return;
            }
        }
    }
    format(sink, "{}", value);
}

void write_choices(Sink& sink, const Option& option) {
    for (usize i = 0; i < option.choice_count; ++i)
        format(sink, "{}{}", i == 0 ? "" : "|", option.choices[i]);
}

// What a valid value for the option looks like, for diagnostics.
void write_expectation(Sink& sink, const Option& option) {
    switch (option.kind) {
        case OptionKind::Bool:
            format(sink, "on/off, yes/no, true/false, enable/disable or 1/0");
            return;
        case OptionKind::Unsigned:
            write_number(sink, option.min, option.size_suffix);
            format(sink, "..");
            write_number(sink, option.max, option.size_suffix);
            return;
        case OptionKind::Choice: write_choices(sink, option); return;
        case OptionKind::String:
            format(sink, "at most {} characters", option.capacity - 1);
            return;
    }
}

// The token as written, except that a byte other than printable ASCII shows as '?': a quoted
// token may hold a newline or an escape sequence, and a report must stay one line of text.
void write_token(Sink& sink, Slice token) {
    const usize shown = min(token.length, kMaxTokenEcho);
    for (usize i = 0; i < shown; ++i) {
        const char c = token.data[i] >= ' ' && token.data[i] <= '~' ? token.data[i] : '?';
        sink.write(&c, 1);
    }
    if (token.length > kMaxTokenEcho) format(sink, "...");
}

// One diagnostic line: "cmdline: <token>: <problem> (expected <what the option takes>)".
void report(Sink& sink, Slice token, const char* problem, const Option* option = nullptr) {
    format(sink, "cmdline: ");
    write_token(sink, token);
    format(sink, ": {}", problem);
    if (option != nullptr) {
        format(sink, " (expected ");
        write_expectation(sink, *option);
        format(sink, ")");
    }
    format(sink, "\n");
}

// Xen's boolean words (docs/misc/xen-command-line.pandoc, "Boolean").
bool parse_bool(Slice value, bool* out) {
    constexpr const char* kTrue[] = {"1", "on", "yes", "true", "enable"};
    constexpr const char* kFalse[] = {"0", "off", "no", "false", "disable"};
    for (usize i = 0; i < array_size(kTrue); ++i) {
        if (value.equals(kTrue[i]) || value.equals(kFalse[i])) {
            *out = value.equals(kTrue[i]);
            return true;
        }
    }
    return false;
}

// Applies `value` (absent for a bare name) to one option; false, after reporting, when bad.
bool apply(const Option& option, Slice token, const Slice* value, Sink& sink) {
    if (value == nullptr && option.kind != OptionKind::Bool) {
        report(sink, token, "needs a value", &option);
        return false;
    }
    switch (option.kind) {
        case OptionKind::Bool: {
            bool on = true;
            if (value != nullptr && !parse_bool(*value, &on)) {
                report(sink, token, "not a boolean", &option);
                return false;
            }
            option.store(option.target, on);
            return true;
        }
        case OptionKind::Unsigned: {
            u64 number;
            if (!str::parse_u64(value->data, value->length, &number, option.size_suffix)) {
                report(sink, token, "not a number", &option);
                return false;
            }
            if (number < option.min || number > option.max) {
                report(sink, token, "out of range", &option);
                return false;
            }
            option.store(option.target, number);
            return true;
        }
        case OptionKind::Choice:
            for (usize i = 0; i < option.choice_count; ++i) {
                if (value->equals(option.choices[i])) {
                    option.store(option.target, i);
                    return true;
                }
            }
            report(sink, token, "not a valid choice", &option);
            return false;
        case OptionKind::String: {
            if (value->length >= option.capacity) {
                report(sink, token, "too long", &option);
                return false;
            }
            char* buffer = static_cast<char*>(option.target);
            str::copy_bytes(buffer, value->data, value->length);
            buffer[value->length] = '\0';
            return true;
        }
    }
    return false;
}

// Parses one token; false, after reporting, when it is bad.
bool apply_token(OptionTable table, Slice token, Sink& sink) {
    const Slice body = unquote(token);
    Slice name = body;
    Slice value{};
    bool has_value = false;
    for (usize i = 0; i < body.length; ++i) {
        if (body.data[i] == '=') {
            name = {body.data, i};
            value = unquote(body.drop_front(i + 1));
            has_value = true;
            break;
        }
    }
    if (const Option* option = find_option(table, name))
        return apply(*option, token, has_value ? &value : nullptr, sink);

    constexpr Slice kNegation{"no-", 3};
    const Option* negated = nullptr;
    if (name.length > kNegation.length &&
        str::compare_bytes(name.data, kNegation.data, kNegation.length) == 0)
        negated = find_option(table, name.drop_front(kNegation.length));
    if (negated == nullptr) {
        report(sink, token, "unknown option");
        return false;
    }
    if (negated->kind != OptionKind::Bool) {
        report(sink, token, "'no-' applies only to on/off options");
        return false;
    }
    if (has_value) {
        report(sink, token, "'no-' takes no value");
        return false;
    }
    negated->store(negated->target, 0);
    return true;
}

void write_current_value(Sink& sink, const Option& option) {
    switch (option.kind) {
        case OptionKind::Bool:
            format(sink, "{}", option.load(option.target) ? "on" : "off");
            return;
        case OptionKind::Unsigned:
            write_number(sink, option.load(option.target), option.size_suffix);
            return;
        case OptionKind::Choice: {
            const u64 index = option.load(option.target);
            format(sink, "{}", index < option.choice_count ? option.choices[index] : "?");
            return;
        }
        case OptionKind::String:
            format(sink, "\"{}\"", static_cast<const char*>(option.target));
            return;
    }
}

// How the option is written: "smp=1..256", "apic=auto|xapic|x2apic", "[no-]selftest".
void write_syntax(Sink& sink, const Option& option) {
    switch (option.kind) {
        case OptionKind::Bool: format(sink, "[no-]{}", option.name); return;
        case OptionKind::String: format(sink, "{}=<text>", option.name); return;
        case OptionKind::Unsigned:
        case OptionKind::Choice:
            format(sink, "{}=", option.name);
            write_expectation(sink, option);
            return;
    }
}

constexpr const char* kConsoleNames[] = {"com1", "com2", "none"};
constexpr const char* kLogLevelNames[] = {"error", "warn", "info", "debug"};
constexpr const char* kApicNames[] = {"auto", "xapic", "x2apic"};
constexpr const char* kCrashNames[] = {"none", "panic", "page-fault", "stack-overflow"};
static_assert(static_cast<usize>(log::Level::Error) == 0 &&
                  static_cast<usize>(log::Level::Debug) + 1 == array_size(kLogLevelNames),
              "loglvl names follow log::Level's values");

// 52 bits: the widest physical address x86-64 defines (Intel SDM Vol. 3A, 4.1.4).
constexpr u64 kMaxPhysicalMemory = u64{1} << 52;

// The hypervisor's options, bound to `o`. Adding an option is one row here and one field.
template <typename Use>
auto with_hypervisor_options(HypervisorOptions& o, Use use) {
    const Option rows[] = {
        Option::choice("console", &o.console, kConsoleNames, "serial port of the console"),
        Option::number("baud", &o.baud, 50, 115200, "console baud rate"),
        Option::choice("loglvl", &o.log_level, kLogLevelNames, "most verbose level logged"),
        Option::number("smp", &o.max_cpus, 1, 256, "most CPUs to bring up"),
        Option::flag("selftest", &o.selftest, "run the built-in self-tests"),
        Option::flag("emu_exit", &o.emu_exit, "let the image end the emulator it runs in"),
        Option::choice("apic", &o.apic, kApicNames, "local APIC mode"),
        Option::choice("crash", &o.crash, kCrashNames, "fail on purpose after READY (tests)"),
        Option::flag("bench", &o.bench, "run the exit-cost benchmark guest after READY"),
        Option::size("dom0_mem", &o.dom0_mem, 0, kMaxPhysicalMemory,
                     "Dom0 memory (0: decided at boot)"),
    };
    return use(OptionTable(rows));
}

}  // namespace

usize parse_command_line(const char* text, OptionTable table, Sink& diagnostics) {
    if (text == nullptr) return 0;
    usize problems = 0;
    const char* cursor = text;
    Slice token;
    bool unterminated_quote;
    while (next_token(cursor, token, unterminated_quote)) {
        if (unterminated_quote) {
            report(diagnostics, token, "unterminated quote");
            ++problems;
        } else if (!apply_token(table, token, diagnostics)) {
            ++problems;
        }
    }
    return problems;
}

void print_option_help(OptionTable table, Sink& out) {
    for (const Option& option : table) {
        char syntax[64];
        BufferSink syntax_sink(syntax, sizeof(syntax));
        write_syntax(syntax_sink, option);
        format(out, "  {:<32} {} (default ", syntax, option.help);
        write_current_value(out, option);
        format(out, ")\n");
    }
}

usize parse_hypervisor_command_line(const char* text, HypervisorOptions& options,
                                    Sink& diagnostics) {
    return with_hypervisor_options(options, [&](OptionTable table) {
        return parse_command_line(text, table, diagnostics);
    });
}

void print_hypervisor_options_help(Sink& out) {
    HypervisorOptions defaults;
    with_hypervisor_options(defaults, [&](OptionTable table) { print_option_help(table, out); });
}

}  // namespace lamina
