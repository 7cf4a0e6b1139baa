// Domain configuration files in xl's syntax (xl.cfg(5)), for Dom0's toolstack, and the shell's
// `create <config|image> [key=value...]` overrides.
//
// Syntax, as libxlu reads it: `key = value` statements separated by newlines or `;`; `#` starts a
// comment; keys are [a-z][a-z0-9_]*; a value is a string in single or double quotes (escapes
// \" \' \\ \a \b \f \n \r \t \v \xHH), a number (decimal, 0x hex, or octal with a leading 0), or
// a list `[ value, value, ... ]` (nested, spanning lines, trailing comma allowed). Quoted and bare
// numbers are the same thing to a key, as in xl: memory = "256" is 256. `key += "string"`
// appends to a string. CRLF line ends, blank lines and trailing whitespace are fine.
//
// Decisions where xl leaves room:
//   - A key set twice: the last value wins, as in xl, with a warning naming both lines.
//   - An unknown key (disk, vif, ... not supported yet): ignored with a warning, its value still
//     checked for syntax. A list given to a known key is an error (all known keys are scalar).
//   - The first error ends the parse; it names its line (`line 3: memory: not a number: "12x"`).
//   - NUL bytes, control characters and non-ASCII bytes outside strings are errors.
//   - Names are 1-63 of [A-Za-z0-9_.-] and not all digits (the shell takes a number as an id).
//   - type is "pvh" (the default: Lamina has no PV guests) or "hvm"; "pv" is refused.
//   - cpus takes xl's CPU list ("all", "0-3,5", "all,^7"); NUMA "node:" terms and per-vCPU lists
//     are refused.
//
// Defaults are xl's (libxl's): memory 32 MiB, vcpus 1, maxvcpus = vcpus, maxmem = memory,
// cpu_weight 256, cap 0 (none), no pinning, on_poweroff destroy, on_reboot restart, on_watchdog
// destroy, on_crash destroy, on_soft_reset soft-reset.
#pragma once

#include <dom0/toolstack/message.h>
#include <lamina/abi/host.h>
#include <lamina/abi/vcpu.h>
#include <lamina/assert.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::toolstack {

enum class DomainType : u8 { Pvh, Hvm };

// What happens when the domain powers off, reboots, crashes... (xl.cfg(5) "Event Actions").
enum class Action : u8 { Destroy, Restart, RenameRestart, Preserve, CoredumpDestroy, CoredumpRestart, SoftReset };

// A set of host CPUs (hard affinity). Bit c of words[c / 64] is CPU c, as in the ABI's affinity
// bitmaps (lamina_sched_affinity).
struct CpuSet {
    static constexpr u32 kMaxCpus = 256;
    static constexpr u32 kWords = kMaxCpus / 64;
    u64 words[kWords] = {};

    void add(u32 cpu) {
        LAMINA_ASSERT(cpu < kMaxCpus);
        words[cpu / 64] |= u64{1} << (cpu % 64);
    }
    void remove(u32 cpu) {
        LAMINA_ASSERT(cpu < kMaxCpus);
        words[cpu / 64] &= ~(u64{1} << (cpu % 64));
    }
    bool contains(u32 cpu) const { return cpu < kMaxCpus && ((words[cpu / 64] >> (cpu % 64)) & 1); }
    bool empty() const;
    // Whether it holds each of CPUs 0 to count - 1: every CPU of a host with `count`.
    bool covers(u32 count) const;
};

// xl's CPU list, as the cpus key and vcpu-pin take it: terms separated by commas and applied in
// order, "all", "N" or "N-M" adds, a leading '^' removes ("0-3,5", "all,^7"); blanks around a
// term are fine. Every CPU must be below `host_cpus` (1 to CpuSet::kMaxCpus) and the list must
// select one at least; NUMA "node:" terms are refused. `cpus` is replaced. False with a one-line
// `error` that names neither the key nor the command: the caller puts that in front.
bool parse_cpu_list(const char* text, u32 host_cpus, CpuSet& cpus, Message& error);

// Writes `cpus` as xl writes CPU lists, ranges joined by commas ("0-3,5"); an empty set as nothing.
void format_cpu_list(Sink& sink, const CpuSet& cpus);

struct DomainConfig {
    static constexpr usize kNameCapacity = 64;          // 63 characters and the NUL
    static constexpr usize kPathCapacity = 128;
    static constexpr usize kCommandLineCapacity = 1024;

    char name[kNameCapacity] = {};
    DomainType type = DomainType::Pvh;
    u64 memory_mib = 32;
    u64 max_memory_mib = 0;      // maxmem; finish_config() makes 0 = memory
    u32 vcpus = 1;
    u32 max_vcpus = 0;           // maxvcpus; finish_config() makes 0 = vcpus
    u32 cpu_weight = 256;
    u32 cap = 0;                 // percent of one CPU; 0 = no cap
    bool cpus_pinned = false;    // false: every host CPU
    CpuSet cpus;
    char kernel[kPathCapacity] = {};
    char ramdisk[kPathCapacity] = {};
    // What the file says; finish_config() puts the kernel's command line together from them.
    char cmdline[kCommandLineCapacity] = {};
    char root[kPathCapacity] = {};
    char extra[kCommandLineCapacity] = {};
    char command_line[kCommandLineCapacity] = {};  // cmdline, or "root=ROOT EXTRA", as xl does
    Action on_poweroff = Action::Destroy;
    Action on_reboot = Action::Restart;
    Action on_watchdog = Action::Destroy;
    Action on_crash = Action::Destroy;
    Action on_soft_reset = Action::SoftReset;
};

// What the machine allows; from the caller (free memory, the hypervisor's vCPU limit, the CPUs).
struct Limits {
    u64 max_memory_mib;   // >= 1
    u32 max_vcpus;        // >= 1
    u32 host_cpus;        // 1..CpuSet::kMaxCpus
};

// The limits of a host as host_info describes it: its free memory, its vCPU limit (at most
// LAMINA_MAX_VCPUS), its CPUs (at most CpuSet::kMaxCpus), each at least 1.
Limits limits_of(const lamina_host_info& host);

struct Diagnostic {
    u32 line;        // 0 when it is about no line (an override, a missing key)
    char text[200];  // the whole one-line message, "line N: " included
};

struct Diagnostics {
    static constexpr usize kMaxWarnings = 8;
    Diagnostic error{};                  // set when a function returns false
    Diagnostic warnings[kMaxWarnings]{};
    usize warning_count = 0;
    usize warnings_dropped = 0;          // past kMaxWarnings
};

// Parses a whole file into `config` (first reset to the defaults) and checks every value as it
// comes. `diagnostics` is reset. False on the first error.
bool parse_config(const char* text, usize length, const Limits& limits, DomainConfig& config, Diagnostics& diagnostics);

// Applies one `key=value` from the shell's command line, checked as a file's would be. The value
// may also be bare text: name=web1, cmdline=console=hvc0. False (and diagnostics.error) on error.
bool apply_override(const char* assignment, const Limits& limits, DomainConfig& config, Diagnostics& diagnostics);

// Checks what involves several keys once the file and the overrides are in: a name and a kernel,
// maxvcpus >= vcpus, maxmem >= memory (and within the limit), the cap; fills in maxvcpus, maxmem
// and command_line. False (and diagnostics.error) on error.
bool finish_config(const Limits& limits, DomainConfig& config, Diagnostics& diagnostics);

// Writes a config back in xl syntax, one key per line (for `list -l`); parse_config reads it back
// to the same config.
void format_config(Sink& sink, const DomainConfig& config);

const char* action_name(Action action);
const char* domain_type_name(DomainType type);

}  // namespace lamina::toolstack
