// Feeds an xl config (up to the first two NULs) and `create` overrides (NUL-separated after them) to
// the config parser; checks values against the limits, that messages are terminated, and that
// format_config writes what parse_config reads back to the same config, before and after finish.
#include "fuzz_support.h"

#include <dom0/toolstack/xl_config.h>

#include <string>
#include <string_view>
#include <vector>

using namespace lamina;
using namespace lamina::toolstack;

namespace {

// A small host, so that the limits are reached.
constexpr Limits kLimits{4096, 16, 8};
// Ends the file; the overrides follow, one per NUL-terminated piece.
constexpr std::string_view kOverridesFollow{"\0\0", 2};

class StringSink final : public Sink {
public:
    void write(const char* bytes, usize length) override { text.append(bytes, length); }
    std::string text;
};

void check_diagnostics(const Diagnostics& diagnostics) {
    FUZZ_CHECK(fuzz::terminated(diagnostics.error.text));
    FUZZ_CHECK(diagnostics.warning_count <= Diagnostics::kMaxWarnings);
    for (usize i = 0; i < diagnostics.warning_count; ++i) FUZZ_CHECK(fuzz::terminated(diagnostics.warnings[i].text));
}

bool same_text(const char* a, const char* b) { return std::strcmp(a, b) == 0; }

bool same_config(const DomainConfig& a, const DomainConfig& b) {
    return same_text(a.name, b.name) && a.type == b.type && a.memory_mib == b.memory_mib &&
           a.max_memory_mib == b.max_memory_mib && a.vcpus == b.vcpus && a.max_vcpus == b.max_vcpus &&
           a.cpu_weight == b.cpu_weight && a.cap == b.cap && a.cpus_pinned == b.cpus_pinned &&
           std::memcmp(a.cpus.words, b.cpus.words, sizeof(a.cpus.words)) == 0 && same_text(a.kernel, b.kernel) &&
           same_text(a.ramdisk, b.ramdisk) && same_text(a.cmdline, b.cmdline) && same_text(a.root, b.root) &&
           same_text(a.extra, b.extra) && same_text(a.command_line, b.command_line) &&
           a.on_poweroff == b.on_poweroff && a.on_reboot == b.on_reboot && a.on_watchdog == b.on_watchdog &&
           a.on_crash == b.on_crash && a.on_soft_reset == b.on_soft_reset;
}

void check_values(const DomainConfig& config) {
    FUZZ_CHECK(fuzz::terminated(config.name) && fuzz::terminated(config.kernel) && fuzz::terminated(config.ramdisk));
    FUZZ_CHECK(fuzz::terminated(config.cmdline) && fuzz::terminated(config.root) && fuzz::terminated(config.extra));
    FUZZ_CHECK(fuzz::terminated(config.command_line));
    FUZZ_CHECK(config.memory_mib >= 1 && config.memory_mib <= kLimits.max_memory_mib);
    FUZZ_CHECK(config.max_memory_mib <= kLimits.max_memory_mib);
    FUZZ_CHECK(config.vcpus >= 1 && config.vcpus <= kLimits.max_vcpus && config.max_vcpus <= kLimits.max_vcpus);
    FUZZ_CHECK(config.cpu_weight >= 1 && config.cpu_weight <= 65535);
    if (config.cpus_pinned) {
        FUZZ_CHECK(!config.cpus.empty());
        for (u32 cpu = kLimits.host_cpus; cpu < CpuSet::kMaxCpus; ++cpu) FUZZ_CHECK(!config.cpus.contains(cpu));
    }
}

// What format_config writes, parse_config must read back to the same config.
void check_round_trip(const DomainConfig& config, bool finished) {
    StringSink written;
    format_config(written, config);
    DomainConfig reread;
    Diagnostics diagnostics;
    const bool parsed = parse_config(written.text.data(), written.text.size(), kLimits, reread, diagnostics);
    if (!parsed) std::fprintf(stderr, "%s\n%s\n", written.text.c_str(), diagnostics.error.text);
    FUZZ_CHECK(parsed);
    FUZZ_CHECK(diagnostics.warning_count == 0);
    if (finished) FUZZ_CHECK(finish_config(kLimits, reread, diagnostics));
    FUZZ_CHECK(same_config(config, reread));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    const std::string_view input(text, size);
    const usize file_length = min(input.find(kOverridesFollow), size);
    // An exact-size copy: ASan flags a read past the file's length.
    const std::vector<char> file(text, text + file_length);
    static DomainConfig config;  // a few KiB
    Diagnostics diagnostics;
    const bool parsed = parse_config(file.data(), file.size(), kLimits, config, diagnostics);
    check_diagnostics(diagnostics);
    if (!parsed) return 0;
    check_values(config);

    // Each override is a NUL-terminated copy, as the shell's words are.
    for (usize at = file_length + kOverridesFollow.size(); at < size;) {
        const usize length = strnlen(text + at, size - at);
        const std::string assignment(text + at, length);
        if (!apply_override(assignment.c_str(), kLimits, config, diagnostics)) {
            check_diagnostics(diagnostics);
            return 0;
        }
        at += length + 1;
    }
    check_values(config);
    check_round_trip(config, false);

    if (!finish_config(kLimits, config, diagnostics)) {
        check_diagnostics(diagnostics);
        return 0;
    }
    check_values(config);
    FUZZ_CHECK(config.name[0] && config.kernel[0]);
    FUZZ_CHECK(config.max_vcpus >= config.vcpus && config.max_memory_mib >= config.memory_mib);
    check_round_trip(config, true);
    return 0;
}
