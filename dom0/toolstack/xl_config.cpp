#include <dom0/toolstack/xl_config.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::toolstack {

bool CpuSet::empty() const {
    for (u64 word : words)
        if (word) return false;
    return true;
}

bool CpuSet::covers(u32 count) const {
    for (u32 cpu = 0; cpu < count; ++cpu)
        if (!contains(cpu)) return false;
    return true;
}

namespace {

constexpr const char* kActionNames[] = {"destroy",          "restart",          "rename-restart", "preserve",
                                        "coredump-destroy", "coredump-restart", "soft-reset"};
constexpr const char* kTypeNames[] = {"pvh", "hvm"};
constexpr usize kMaxKeyLength = 63;
constexpr u32 kMaxListDepth = 8;
constexpr u64 kMaxWeight = 65535;  // xl.cfg(5): cpu_weight 1 to 65535
constexpr u64 kMaxCap = 65535;     // Xen's credit schedulers keep the cap in 16 bits

enum class Key : u8 {
    Name, Type, Memory, MaxMem, Vcpus, MaxVcpus, Cpus, CpuWeight, Cap, Kernel, Ramdisk, Cmdline, Root, Extra,
    OnPoweroff, OnReboot, OnWatchdog, OnCrash, OnSoftReset, Count
};
enum class Kind : u8 { String, Number, Action, Type, Cpus };

struct KeyInfo {
    const char* name;
    Key key;
    Kind kind;
};

constexpr KeyInfo kKeys[] = {
    {"name", Key::Name, Kind::String},           {"type", Key::Type, Kind::Type},
    {"memory", Key::Memory, Kind::Number},       {"maxmem", Key::MaxMem, Kind::Number},
    {"vcpus", Key::Vcpus, Kind::Number},         {"maxvcpus", Key::MaxVcpus, Kind::Number},
    {"cpus", Key::Cpus, Kind::Cpus},             {"cpu_weight", Key::CpuWeight, Kind::Number},
    {"cap", Key::Cap, Kind::Number},             {"kernel", Key::Kernel, Kind::String},
    {"ramdisk", Key::Ramdisk, Kind::String},     {"cmdline", Key::Cmdline, Kind::String},
    {"root", Key::Root, Kind::String},           {"extra", Key::Extra, Kind::String},
    {"on_poweroff", Key::OnPoweroff, Kind::Action}, {"on_reboot", Key::OnReboot, Kind::Action},
    {"on_watchdog", Key::OnWatchdog, Kind::Action}, {"on_crash", Key::OnCrash, Kind::Action},
    {"on_soft_reset", Key::OnSoftReset, Kind::Action},
};
static_assert(array_size(kKeys) == static_cast<usize>(Key::Count));

struct NumberRange {
    u64 min, max;
    const char* unit;  // printed after the number: "", " MiB" or "%"
};

NumberRange number_range(Key key, const Limits& limits) {
    switch (key) {
        case Key::Memory:
        case Key::MaxMem: return {1, limits.max_memory_mib, " MiB"};
        case Key::Vcpus:
        case Key::MaxVcpus: return {1, limits.max_vcpus, ""};
        case Key::CpuWeight: return {1, kMaxWeight, ""};
        default: return {0, kMaxCap, "%"};
    }
}

void set_number(Key key, DomainConfig& config, u64 value) {
    // Every u32 field's range (number_range) is below 2^32.
    switch (key) {
        case Key::Memory: config.memory_mib = value; break;
        case Key::MaxMem: config.max_memory_mib = value; break;
        case Key::Vcpus: config.vcpus = static_cast<u32>(value); break;
        case Key::MaxVcpus: config.max_vcpus = static_cast<u32>(value); break;
        case Key::CpuWeight: config.cpu_weight = static_cast<u32>(value); break;
        default: config.cap = static_cast<u32>(value); break;
    }
}

struct StringField {
    char* text;
    usize capacity;
};

StringField string_field(Key key, DomainConfig& config) {
    switch (key) {
        case Key::Name: return {config.name, sizeof(config.name)};
        case Key::Kernel: return {config.kernel, sizeof(config.kernel)};
        case Key::Ramdisk: return {config.ramdisk, sizeof(config.ramdisk)};
        case Key::Cmdline: return {config.cmdline, sizeof(config.cmdline)};
        case Key::Root: return {config.root, sizeof(config.root)};
        default: return {config.extra, sizeof(config.extra)};
    }
}

Action& action_field(Key key, DomainConfig& config) {
    switch (key) {
        case Key::OnPoweroff: return config.on_poweroff;
        case Key::OnReboot: return config.on_reboot;
        case Key::OnWatchdog: return config.on_watchdog;
        case Key::OnCrash: return config.on_crash;
        default: return config.on_soft_reset;
    }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_key_start(char c) { return c >= 'a' && c <= 'z'; }
bool is_key_char(char c) { return is_key_start(c) || is_digit(c) || c == '_'; }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
bool is_name_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
}
int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool equal_text(const char* text, usize length, const char* word) {
    return str::length(word) == length && str::compare_bytes(text, word, length) == 0;
}

enum class NumberStatus : u8 { Ok, NotNumber, TooLarge };

// xl reads numbers with strtol(..., 0): decimal, 0x hex, or octal after a leading 0.
NumberStatus parse_number(const char* text, usize length, u64* out) {
    u64 base = 10;
    usize i = 0;
    if (length > 1 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (length > 1 && text[0] == '0') {
        base = 8;
        i = 1;
    }
    if (i == length) return NumberStatus::NotNumber;
    u64 value = 0;
    bool too_large = false;
    for (; i < length; ++i) {
        int digit = hex_value(text[i]);
        if (digit < 0 || static_cast<u64>(digit) >= base) return NumberStatus::NotNumber;
        too_large = too_large || mul_overflows(value, base, &value) ||
                    add_overflows(value, static_cast<u64>(digit), &value);
    }
    if (too_large) return NumberStatus::TooLarge;
    *out = value;
    return NumberStatus::Ok;
}

// A value as a message shows it: quoted, escaped, cut short.
struct Shown {
    char text[56];

    Shown(const char* value, usize length) {
        constexpr usize kRoom = 44;
        usize used = 0;
        text[used++] = '"';
        usize i = 0;
        for (; i < length && used + 4 <= kRoom; ++i) {
            u8 c = static_cast<u8>(value[i]);
            if (c == '"' || c == '\\') {
                text[used++] = '\\';
                text[used++] = static_cast<char>(c);
            } else if (c < 0x20 || c == 0x7f) {
                used += format_to(text + used, 5, "\\x{:02x}", c);
            } else {
                text[used++] = static_cast<char>(c);
            }
        }
        if (i < length) {
            str::copy_bytes(text + used, "...", 3);
            used += 3;
        }
        text[used++] = '"';
        text[used] = '\0';
    }
};

// A CPU number in a list: 1 to 9 decimal digits, as xl reads them (more could not be a CPU).
bool cpu_number(const char* text, const char* end, u32* out) {
    if (end == text || end - text > 9) return false;
    u32 value = 0;
    for (const char* p = text; p < end; ++p) {
        if (!is_digit(*p)) return false;
        value = value * 10 + static_cast<u32>(*p - '0');
    }
    *out = value;
    return true;
}

// One term of the CPU list `list`, [term, end), applied to `set`.
bool apply_cpu_term(const char* list, const char* term, const char* end, u32 host_cpus, CpuSet& set,
                    Message& error) {
    while (term < end && *term == ' ') ++term;
    while (end > term && end[-1] == ' ') --end;
    const bool remove = term < end && *term == '^';
    if (remove) ++term;
    u32 first = 0, last = host_cpus - 1;
    if (!equal_text(term, static_cast<usize>(end - term), "all")) {
        if (end - term >= 4 && str::compare_bytes(term, "node", 4) == 0) {
            error.set("NUMA node terms are not supported");
            return false;
        }
        const char* dash = term;
        while (dash < end && *dash != '-') ++dash;
        if (!cpu_number(term, dash, &first) || (dash < end && !cpu_number(dash + 1, end, &last))) {
            error.set("{} is not a CPU list like \"0-3,5\" or \"all,^7\"", Shown(list, str::length(list)).text);
            return false;
        }
        if (dash == end) last = first;
        if (last < first) {
            error.set("the range {}-{} runs backwards", first, last);
            return false;
        }
        if (last >= host_cpus) {
            if (host_cpus == 1) error.set("CPU {} does not exist (the host has only CPU 0)", last);
            else error.set("CPU {} does not exist (the host has CPUs 0 to {})", last, host_cpus - 1);
            return false;
        }
    }
    for (u32 cpu = first; cpu <= last; ++cpu) {
        if (remove) set.remove(cpu);
        else set.add(cpu);
    }
    return true;
}

template <typename... Args>
void report(Diagnostic& diagnostic, u32 line, const char* fmt, const Args&... args) {
    diagnostic.line = line;
    BufferSink sink(diagnostic.text, sizeof(diagnostic.text));
    if (line) format(sink, "line {}: ", line);
    format(sink, fmt, args...);
}

template <typename... Args>
bool fail_at(Diagnostics& diagnostics, u32 line, const char* fmt, const Args&... args) {
    report(diagnostics.error, line, fmt, args...);
    return false;
}

template <typename... Args>
void warn(Diagnostics& diagnostics, u32 line, const char* fmt, const Args&... args) {
    if (diagnostics.warning_count == Diagnostics::kMaxWarnings) ++diagnostics.warnings_dropped;
    else report(diagnostics.warnings[diagnostics.warning_count++], line, fmt, args...);
}

class Parser {
public:
    Parser(const char* text, usize length, bool override, const Limits& limits, DomainConfig& config,
           Diagnostics& diagnostics)
        : text_(text), length_(length), override_(override), line_(override ? 0 : 1), limits_(limits),
          config_(config), diagnostics_(diagnostics) {}

    bool parse_file() {
        if (!check_for_nul()) return false;
        for (skip_blanks(); !at_end(); skip_blanks()) {
            char c = peek();
            if (c == '\n') next_line();
            else if (c == ';') ++position_;
            else if (c == '#') skip_comment();
            else if (is_key_start(c)) {
                if (!parse_assignment()) return false;
            } else {
                return unexpected("expected a key");
            }
        }
        return true;
    }

    bool parse_override() {
        skip_blanks();
        if (at_end() || !is_key_start(peek())) return fail("expected key=value");
        return parse_assignment();
    }

private:
    bool at_end() const { return position_ >= length_; }
    char peek(usize ahead = 0) const { return position_ + ahead < length_ ? text_[position_ + ahead] : '\0'; }
    void skip_blanks() {
        while (!at_end() && is_blank(peek())) ++position_;
    }
    void next_line() {
        ++position_;
        ++line_;
    }
    void skip_comment() {
        while (!at_end() && peek() != '\n') ++position_;
    }
    // Inside a list: blanks, line ends and comments.
    void skip_space() {
        for (;;) {
            skip_blanks();
            if (peek() == '#') skip_comment();
            else if (!at_end() && peek() == '\n') next_line();
            else return;
        }
    }

    template <typename... Args>
    bool fail_at(u32 line, const char* fmt, const Args&... args) {
        return toolstack::fail_at(diagnostics_, line, fmt, args...);
    }
    template <typename... Args>
    bool fail(const char* fmt, const Args&... args) {
        return fail_at(line_, fmt, args...);
    }
    // Names the statement's key, once there is one.
    bool unexpected(const char* what) {
        u8 c = static_cast<u8>(peek());
        const char* key = key_;
        const char* separator = key_[0] ? ": " : "";
        if (at_end() || c == '\n') return fail("{}{}{}, not the end of the line", key, separator, what);
        if (c > 0x20 && c < 0x7f) return fail("{}{}{}, not '{}'", key, separator, what, static_cast<char>(c));
        return fail("{}{}{}, not the byte {:#04x}", key, separator, what, c);
    }

    // Before anything else, so no later step meets a NUL that ends a string early.
    bool check_for_nul() {
        u32 line = 1;
        for (usize i = 0; i < length_; ++i) {
            if (text_[i] == '\n') ++line;
            else if (text_[i] == '\0') return fail_at(line, "a NUL byte in the configuration");
        }
        return true;
    }

    bool parse_assignment() {
        usize start = position_;
        while (!at_end() && is_key_char(peek())) ++position_;
        usize key_length = position_ - start;
        if (key_length > kMaxKeyLength) return fail("a key longer than {} characters", kMaxKeyLength);
        str::copy_bytes(key_, text_ + start, key_length);
        key_[key_length] = '\0';
        skip_blanks();
        bool append = peek() == '+' && peek(1) == '=';
        if (!append && peek() != '=') return unexpected("expected '='");
        position_ += append ? 2 : 1;
        skip_blanks();
        u32 key_line = line_;
        is_list_ = false;
        if (!parse_value(0)) return false;
        skip_blanks();
        bool statement_ends = at_end() || (!override_ && (peek() == '\n' || peek() == ';' || peek() == '#'));
        if (!statement_ends) return unexpected("expected the end of the statement after the value");
        bool applied = apply(key_line, append);
        key_[0] = '\0';
        return applied;
    }

    // A value; at depth 0 it lands in value_ (an atom) or sets is_list_. Atoms inside lists are
    // read for their syntax and dropped.
    bool parse_value(u32 depth) {
        char c = peek();
        value_length_ = 0;
        if (c == '"' || c == '\'') return parse_string(c);
        if (c == '[') return parse_list(depth);
        if (override_ && depth == 0 && !at_end()) return take_rest();
        if (is_digit(c)) {
            while (!at_end() && (is_key_char(peek()) || (peek() >= 'A' && peek() <= 'Z'))) store(text_[position_++]);
            return true;
        }
        if (depth == 0 && (at_end() || c == '\n' || c == ';' || c == '#')) return fail("{}: no value after '='", key_);
        return unexpected("expected a value (a quoted string, a number or a list)");
    }

    void store(char c) {
        if (value_length_ < sizeof(value_) - 1) value_[value_length_] = c;
        ++value_length_;
    }
    void terminate_value() { value_[min(value_length_, sizeof(value_) - 1)] = '\0'; }

    bool parse_string(char quote) {
        ++position_;
        for (;;) {
            if (at_end() || peek() == '\n') return fail("{}: a string without its closing quote", key_);
            char c = text_[position_++];
            if (c == quote) break;
            if (static_cast<u8>(c) < 0x20 && c != '\t')
                return fail("{}: a control character (byte {:#04x}) in a string; write it as an escape", key_,
                            static_cast<u8>(c));
            if (c != '\\') {
                store(c);
                continue;
            }
            if (!escape()) return false;
        }
        terminate_value();
        return true;
    }

    // After a backslash: the escapes libxlu knows, less its octal form.
    bool escape() {
        char c = peek();
        if (at_end() || c == '\n') return fail("{}: a string without its closing quote", key_);
        ++position_;
        switch (c) {
            case '"': case '\'': case '\\': store(c); return true;
            case 'a': store('\a'); return true;
            case 'b': store('\b'); return true;
            case 'f': store('\f'); return true;
            case 'n': store('\n'); return true;
            case 'r': store('\r'); return true;
            case 't': store('\t'); return true;
            case 'v': store('\v'); return true;
            case 'x': {
                int high = hex_value(peek()), low = hex_value(peek(1));
                if (high < 0 || low < 0) return fail("{}: \\x needs two hex digits", key_);
                if (high == 0 && low == 0) return fail("{}: \\x00 (NUL) in a string", key_);
                position_ += 2;
                store(static_cast<char>(high * 16 + low));
                return true;
            }
            default: return fail("{}: an unknown escape after '\\' in a string", key_);
        }
    }

    bool parse_list(u32 depth) {
        if (depth == kMaxListDepth) return fail("{}: lists nested more than {} deep", key_, kMaxListDepth);
        u32 opened = line_;
        ++position_;
        for (;;) {
            skip_space();
            if (at_end()) return fail_at(opened, "{}: a list without its closing ']'", key_);
            if (peek() == ']') break;
            if (!parse_value(depth + 1)) return false;
            skip_space();
            if (peek() == ',') ++position_;
            else if (peek() != ']' && !at_end()) return unexpected("expected ',' or ']' in the list");
        }
        ++position_;
        if (depth == 0) is_list_ = true;
        return true;
    }

    // An override's bare value: the rest of the text, less trailing blanks.
    bool take_rest() {
        usize end = length_;
        while (end > position_ && is_blank(text_[end - 1])) --end;
        while (position_ < end) store(text_[position_++]);
        position_ = length_;
        terminate_value();
        return true;
    }

    bool apply(u32 line, bool append) {
        terminate_value();
        const KeyInfo* info = nullptr;
        for (const KeyInfo& k : kKeys)
            if (str::equal(k.name, key_)) info = &k;
        if (!info) {
            warn(diagnostics_, line, "unknown key \"{}\" ignored", key_);
            return true;
        }
        if (is_list_ && info->kind == Kind::Cpus)
            return fail_at(line, "cpus: per-vCPU lists are not supported; give one CPU list like \"0-3,5\"");
        if (is_list_) return fail_at(line, "{}: expected a single value, not a list", key_);
        if (value_length_ >= sizeof(value_) && info->kind != Kind::String)
            return fail_at(line, "{}: a value longer than {} characters", key_, sizeof(value_) - 1);
        if (append && info->kind != Kind::String) return fail_at(line, "{}: '+=' works only on strings", key_);
        u32& first = first_lines_[static_cast<usize>(info->key)];
        if (!override_ && !append && first)
            warn(diagnostics_, line, "{} set again (first on line {}); the last value wins", key_, first);
        if (!first) first = line;

        switch (info->kind) {
            case Kind::String: return apply_string(line, info->key, append);
            case Kind::Number: return apply_number(line, info->key);
            case Kind::Action: return apply_action(line, info->key);
            case Kind::Type: return apply_type(line);
            case Kind::Cpus: return apply_cpus(line);
        }
        return true;
    }

    bool apply_string(u32 line, Key key, bool append) {
        StringField field = string_field(key, config_);
        usize kept = append ? str::length(field.text) : 0;
        if (kept + value_length_ > field.capacity - 1)
            return fail_at(line, "{}: longer than {} characters", key_, field.capacity - 1);
        // The whole new value in value_ first, so it is checked before it replaces the old one.
        str::move_bytes(value_ + kept, value_, value_length_ + 1);
        str::copy_bytes(value_, field.text, kept);
        value_length_ += kept;
        if (key == Key::Name && !valid_name(line)) return false;
        if (key == Key::Kernel && value_length_ == 0) return fail_at(line, "kernel: an empty path");
        str::copy_bytes(field.text, value_, value_length_ + 1);
        return true;
    }

    bool valid_name(u32 line) {
        if (value_length_ == 0) return fail_at(line, "name: empty");
        bool all_digits = true;
        for (usize i = 0; i < value_length_; ++i) {
            if (!is_name_char(value_[i]))
                return fail_at(line, "name: {} has a character other than letters, digits, '-', '_' and '.'",
                               Shown(value_, value_length_).text);
            all_digits = all_digits && is_digit(value_[i]);
        }
        if (all_digits)
            return fail_at(line, "name: {} is a number, which the shell would take for a domain id",
                           Shown(value_, value_length_).text);
        return true;
    }

    bool apply_number(u32 line, Key key) {
        u64 value = 0;
        NumberStatus status = parse_number(value_, value_length_, &value);
        if (status == NumberStatus::NotNumber)
            return fail_at(line, "{}: not a number: {}", key_, Shown(value_, value_length_).text);
        if (status == NumberStatus::TooLarge)
            return fail_at(line, "{}: number too large: {}", key_, Shown(value_, value_length_).text);
        NumberRange range = number_range(key, limits_);
        if (value < range.min || value > range.max)
            return fail_at(line, "{}: {}{} is out of range ({} to {}{})", key_, value, range.unit, range.min, range.max,
                           range.unit);
        set_number(key, config_, value);
        return true;
    }

    bool apply_action(u32 line, Key key) {
        for (usize i = 0; i < array_size(kActionNames); ++i) {
            if (str::equal(value_, kActionNames[i])) {
                action_field(key, config_) = static_cast<Action>(i);
                return true;
            }
        }
        return fail_at(line,
                       "{}: unknown action {} (destroy, restart, rename-restart, preserve, coredump-destroy, "
                       "coredump-restart or soft-reset)",
                       key_, Shown(value_, value_length_).text);
    }

    bool apply_type(u32 line) {
        for (usize i = 0; i < array_size(kTypeNames); ++i) {
            if (str::equal(value_, kTypeNames[i])) {
                config_.type = static_cast<DomainType>(i);
                return true;
            }
        }
        if (str::equal(value_, "pv")) return fail_at(line, "type: PV guests are not supported (\"pvh\" or \"hvm\")");
        return fail_at(line, "type: unknown type {} (\"pvh\" or \"hvm\")", Shown(value_, value_length_).text);
    }

    bool apply_cpus(u32 line) {
        Message error;
        if (!parse_cpu_list(value_, limits_.host_cpus, config_.cpus, error))
            return fail_at(line, "cpus: {}", error.text());
        config_.cpus_pinned = true;
        return true;
    }

    const char* text_;
    usize length_;
    usize position_ = 0;
    bool override_;
    u32 line_;
    const Limits& limits_;
    DomainConfig& config_;
    Diagnostics& diagnostics_;
    char key_[kMaxKeyLength + 1] = {};
    // The current value; value_length_ counts what did not fit too, so "too long" is seen.
    char value_[DomainConfig::kCommandLineCapacity] = {};
    usize value_length_ = 0;
    bool is_list_ = false;
    u32 first_lines_[static_cast<usize>(Key::Count)] = {};
};

void check_limits(const Limits& limits) {
    LAMINA_ASSERT(limits.max_memory_mib >= 1 && limits.max_vcpus >= 1);
    LAMINA_ASSERT(limits.host_cpus >= 1 && limits.host_cpus <= CpuSet::kMaxCpus);
}

// xl: cmdline wins; otherwise "root=ROOT EXTRA", either part alone, or nothing.
bool compose_command_line(DomainConfig& config, Diagnostics& diagnostics) {
    if (config.cmdline[0]) {
        if (config.root[0] || config.extra[0]) warn(diagnostics, 0, "root and extra are ignored: cmdline is set");
        str::copy_bounded(config.command_line, config.cmdline, sizeof(config.command_line));
        return true;
    }
    usize needed;
    if (config.root[0])
        needed = format_to(config.command_line, sizeof(config.command_line), "root={}{}{}", config.root,
                           config.extra[0] ? " " : "", config.extra);
    else
        needed = str::copy_bounded(config.command_line, config.extra, sizeof(config.command_line));
    if (needed >= sizeof(config.command_line))
        return fail_at(diagnostics, 0, "root and extra make a command line longer than {} characters",
                             sizeof(config.command_line) - 1);
    return true;
}

void write_string(Sink& sink, const char* key, const char* value) {
    if (!value[0]) return;
    format(sink, "{} = \"", key);
    for (const char* p = value; *p; ++p) {
        u8 c = static_cast<u8>(*p);
        if (c == '"' || c == '\\') format(sink, "\\{}", *p);
        else if (c < 0x20 || c == 0x7f) format(sink, "\\x{:02x}", c);
        else sink.write(p, 1);
    }
    format(sink, "\"\n");
}

}  // namespace

bool parse_config(const char* text, usize length, const Limits& limits, DomainConfig& config,
                  Diagnostics& diagnostics) {
    check_limits(limits);
    config = DomainConfig{};
    diagnostics = Diagnostics{};
    Parser parser(text, length, false, limits, config, diagnostics);
    return parser.parse_file();
}

bool apply_override(const char* assignment, const Limits& limits, DomainConfig& config, Diagnostics& diagnostics) {
    check_limits(limits);
    Parser parser(assignment, str::length(assignment), true, limits, config, diagnostics);
    return parser.parse_override();
}

Limits limits_of(const lamina_host_info& host) {
    constexpr u64 kPagesPerMiB = MiB / 4096;
    return {max<u64>(host.free_pages / kPagesPerMiB, 1), min(max(host.max_vcpus, 1u), LAMINA_MAX_VCPUS),
            min(max(host.cpus, 1u), CpuSet::kMaxCpus)};
}

bool finish_config(const Limits& limits, DomainConfig& config, Diagnostics& diagnostics) {
    check_limits(limits);
    if (!config.name[0]) return fail_at(diagnostics, 0, "name: missing; every domain needs one");
    if (!config.kernel[0]) return fail_at(diagnostics, 0, "kernel: missing; a domain boots from one");
    if (config.memory_mib > limits.max_memory_mib)
        return fail_at(diagnostics, 0, "memory: {} MiB is more than the {} MiB available", config.memory_mib,
                             limits.max_memory_mib);
    if (config.vcpus > limits.max_vcpus)
        return fail_at(diagnostics, 0, "vcpus: {} is more than the {} allowed", config.vcpus, limits.max_vcpus);
    if (!config.max_vcpus) config.max_vcpus = config.vcpus;
    if (config.max_vcpus < config.vcpus)
        return fail_at(diagnostics, 0, "maxvcpus: {} is less than vcpus ({})", config.max_vcpus, config.vcpus);
    if (!config.max_memory_mib) config.max_memory_mib = config.memory_mib;
    if (config.max_memory_mib < config.memory_mib)
        return fail_at(diagnostics, 0, "maxmem: {} MiB is less than memory ({} MiB)", config.max_memory_mib,
                             config.memory_mib);
    if (config.cap > 100 * u64{config.max_vcpus})
        return fail_at(diagnostics, 0, "cap: {}% is more than {} vCPUs can use ({}%)", config.cap, config.max_vcpus,
                             100 * u64{config.max_vcpus});
    return compose_command_line(config, diagnostics);
}

void format_config(Sink& sink, const DomainConfig& config) {
    write_string(sink, "name", config.name);
    format(sink, "type = \"{}\"\nmemory = {}\n", domain_type_name(config.type), config.memory_mib);
    if (config.max_memory_mib) format(sink, "maxmem = {}\n", config.max_memory_mib);
    format(sink, "vcpus = {}\n", config.vcpus);
    if (config.max_vcpus) format(sink, "maxvcpus = {}\n", config.max_vcpus);
    if (config.cpus_pinned) {
        format(sink, "cpus = \"");
        format_cpu_list(sink, config.cpus);
        format(sink, "\"\n");
    }
    format(sink, "cpu_weight = {}\ncap = {}\n", config.cpu_weight, config.cap);
    write_string(sink, "kernel", config.kernel);
    write_string(sink, "ramdisk", config.ramdisk);
    write_string(sink, "cmdline", config.cmdline);
    write_string(sink, "root", config.root);
    write_string(sink, "extra", config.extra);
    format(sink, "on_poweroff = \"{}\"\non_reboot = \"{}\"\n", action_name(config.on_poweroff),
           action_name(config.on_reboot));
    format(sink, "on_watchdog = \"{}\"\non_crash = \"{}\"\non_soft_reset = \"{}\"\n", action_name(config.on_watchdog),
           action_name(config.on_crash), action_name(config.on_soft_reset));
}

bool parse_cpu_list(const char* text, u32 host_cpus, CpuSet& cpus, Message& error) {
    LAMINA_ASSERT(host_cpus >= 1 && host_cpus <= CpuSet::kMaxCpus);
    CpuSet set;
    const char* term = text;
    for (;;) {
        const char* end = term;
        while (*end && *end != ',') ++end;
        if (!apply_cpu_term(text, term, end, host_cpus, set, error)) return false;
        if (!*end) break;
        term = end + 1;
    }
    if (set.empty()) {
        error.set("{} selects no CPU", Shown(text, str::length(text)).text);
        return false;
    }
    cpus = set;
    return true;
}

void format_cpu_list(Sink& sink, const CpuSet& cpus) {
    const char* separator = "";
    for (u32 cpu = 0; cpu < CpuSet::kMaxCpus; ++cpu) {
        if (!cpus.contains(cpu)) continue;
        u32 last = cpu;
        while (cpus.contains(last + 1)) ++last;
        if (last == cpu) format(sink, "{}{}", separator, cpu);
        else format(sink, "{}{}-{}", separator, cpu, last);
        separator = ",";
        cpu = last;
    }
}

const char* action_name(Action action) { return kActionNames[static_cast<usize>(action)]; }
const char* domain_type_name(DomainType type) { return kTypeNames[static_cast<usize>(type)]; }

}  // namespace lamina::toolstack
