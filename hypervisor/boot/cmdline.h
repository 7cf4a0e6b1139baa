// The hypervisor command line (Multiboot2 tag 1), in the manner of Xen's: space-separated tokens,
// each `name=value`, a bare `flag` (true) or `no-flag` (false). A value, or a whole token, may be
// double-quoted to hold spaces: `name="a b"`, `"name=a b"`. In option names '-' and '_' are the
// same, so `emu-exit` sets `emu_exit`. When an option repeats, the last one wins.
//
// Options are table-driven: each row names an option, its kind and range, a help text and the
// field the value goes to. A bad token (unknown name, bad value) is reported as one line on a Sink
// and leaves the field as it was (its default, unless set earlier on the line): a typo never stops
// the boot.
#pragma once

#include <hypervisor/log.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina {

enum class OptionKind : u8 {
    Bool,      // flag, no-flag, flag=on|off|yes|no|true|false|enable|disable|1|0
    Unsigned,  // decimal or 0x hex, optionally with a K/M/G suffix, within [min, max]
    Choice,    // one of a list of names; the field receives the name's index
    String,    // copied into a fixed buffer, NUL-terminated
};

struct Option {
    const char* name;
    const char* help;
    OptionKind kind;
    void* target;
    // Bool, Unsigned and Choice fields of any integer or enum type are reached through these.
    void (*store)(void* target, u64 value);
    u64 (*load)(const void* target);
    u64 min;                     // Unsigned
    u64 max;                     // Unsigned
    bool size_suffix;            // Unsigned: accepts K, M, G
    const char* const* choices;  // Choice: names, index = value
    usize choice_count;          // Choice
    usize capacity;              // String: buffer size, including the NUL

    static Option flag(const char* name, bool* target, const char* help) {
        return {name, help, OptionKind::Bool, target, store_as<bool>, load_as<bool>, 0, 1,
                false, nullptr, 0, 0};
    }
    // max is capped at what T can hold.
    template <typename T>
    static Option number(const char* name, T* target, u64 min, u64 max, const char* help) {
        return {name, help, OptionKind::Unsigned, target, store_as<T>, load_as<T>, min,
                lamina::min<u64>(max, static_cast<T>(~T{0})), false, nullptr, 0, 0};
    }
    // A number of bytes: like number(), and 512M, 4G, 64K are accepted.
    template <typename T>
    static Option size(const char* name, T* target, u64 min, u64 max, const char* help) {
        Option option = number(name, target, min, max, help);
        option.size_suffix = true;
        return option;
    }
    // The enum's values must be 0, 1, 2... in the order of `names`.
    template <typename E, usize N>
    static Option choice(const char* name, E* target, const char* const (&names)[N],
                         const char* help) {
        return {name, help, OptionKind::Choice, target, store_as<E>, load_as<E>, 0, N - 1,
                false, names, N, 0};
    }
    static Option text(const char* name, char* buffer, usize capacity, const char* help) {
        return {name, help, OptionKind::String, buffer, nullptr, nullptr, 0, 0, false, nullptr,
                0, capacity};
    }

private:
    template <typename T>
    static void store_as(void* target, u64 value) {
        *static_cast<T*>(target) = static_cast<T>(value);
    }
    template <typename T>
    static u64 load_as(const void* target) {
        return static_cast<u64>(*static_cast<const T*>(target));
    }
};

struct OptionTable {
    const Option* options;
    usize count;

    template <usize N>
    OptionTable(const Option (&rows)[N]) : options(rows), count(N) {}
    OptionTable(const Option* rows, usize row_count) : options(rows), count(row_count) {}
    const Option* begin() const { return options; }
    const Option* end() const { return options + count; }
};

// Applies every token of `text` (may be null or empty) to the table's fields and reports each
// problem on `diagnostics` as one line, "cmdline: <token>: <problem>\n". Returns the number of
// problems reported.
usize parse_command_line(const char* text, OptionTable table, Sink& diagnostics);

// One line per option: its syntax, help text and current value (call it before parsing to show
// the defaults).
void print_option_help(OptionTable table, Sink& out);

// What the hypervisor itself takes from its command line.
struct HypervisorOptions {
    enum class Console : u8 { Com1, Com2, None };
    enum class Apic : u8 { Auto, XApic, X2Apic };
    // A deliberate failure after READY, so tests can prove the diagnosis path works.
    enum class Crash : u8 { None, Panic, PageFault, StackOverflow };

    Console console = Console::Com1;  // console=com1|com2|none
    u32 baud = 115200;                // baud=50..115200
    log::Level log_level = log::Level::Info;  // loglvl=error|warn|info|debug
    u32 max_cpus = 256;               // smp=1..256: CPUs to bring up (256: all of them)
    bool selftest = false;            // selftest: run the built-in self-tests
    bool emu_exit = false;            // emu_exit: the image may end the emulator it runs in
    Apic apic = Apic::Auto;           // apic=auto|xapic|x2apic
    Crash crash = Crash::None;        // crash=none|panic|page-fault|stack-overflow
    bool bench = false;               // bench: run the exit-cost guest after READY
    u64 dom0_mem = 0;                 // dom0_mem=<size>: Dom0's memory, 0 = decided at boot
};

// Parses the hypervisor command line over `options` (fields it does not mention stay as they
// are). Returns the number of problems reported on `diagnostics`.
usize parse_hypervisor_command_line(const char* text, HypervisorOptions& options,
                                    Sink& diagnostics);
// The hypervisor's options with their defaults, one per line.
void print_hypervisor_options_help(Sink& out);

}  // namespace lamina
