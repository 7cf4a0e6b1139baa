// Dom0's kernel: finds Lamina, installs the hypercall page, greets, and runs the shell on the
// console until poweroff.
#include <dom0/kernel/commands.h>
#include <dom0/kernel/console.h>
#include <dom0/kernel/domains.h>
#include <dom0/kernel/events.h>
#include <dom0/shell/shell.h>
#include <lamina/abi/hypercall.h>
#include <lamina/pvh.h>
#include <lamina/string.h>

LAMINA_HYPERCALL_PAGE_DEFINE();

namespace lamina::dom0 {
namespace {

// Before the hypercall page works there is no console; the debug port (Bochs' and QEMU's
// -debugcon port 0xE9) is the last chance to say why Dom0 stops.
[[noreturn]] void stop_early(const char* why) {
    for (const char* c = why; *c; ++c) asm volatile("outb %0, $0xe9" : : "a"(*c));
    for (;;) asm volatile("cli; hlt");
}

// Ends Dom0 as crashed, after the line that says why: the hypervisor then handles it as any
// domain's crash.
template <typename... Args>
[[noreturn]] void crash(const char* fmt, const Args&... args) {
    format(console(), fmt, args...);
    console().flush();
    lamina_hc_shutdown(LAMINA_SHUTDOWN_CRASH);
    for (;;) asm volatile("cli; hlt");
}

constexpr usize kCommandLineMax = 1024;

void greet(u64 abi_version) {
    format(console(), "\nLamina Dom0, hypercall ABI {}.{}\n", LAMINA_ABI_VERSION_MAJOR_OF(abi_version),
           LAMINA_ABI_VERSION_MINOR_OF(abi_version));
}

// The start info the hypervisor wrote, copied; false (having said why) when there is none.
bool read_start_info(u64 start_info_gpa, pvh::StartInfo* start) {
    const u8* bytes = kOwnMemory.find(start_info_gpa, sizeof(*start));
    if (bytes) str::copy_bytes(start, bytes, sizeof(*start));
    if (!bytes || start->magic != pvh::kStartInfoMagic) {
        format(console(), "dom0: no PVH start info at {:#x}\n", start_info_gpa);
        return false;
    }
    return true;
}

void show_command_line(const pvh::StartInfo& start) {
    if (!start.command_line) return;
    const u8* text = kOwnMemory.find(start.command_line, kCommandLineMax);
    if (!text) {
        format(console(), "dom0: the command line at {:#x} is beyond the first 4 GiB\n", start.command_line);
        return;
    }
    const char* command_line = reinterpret_cast<const char*>(text);
    format(console(), "command line: ");
    console().write(command_line, str::length_bounded(command_line, kCommandLineMax));
    format(console(), "\n");
}

[[noreturn]] void run_shell() {
    const CommandTable table = command_table();
    static shell::Shell shell(console(), table.commands, table.count, domain_directory());
    format(console(), "Type help for the commands.\n");
    // For `scripts/lamina bench`: the TSC at the first prompt (under QEMU -icount, instructions
    // since the machine started; the hypervisor's entry_tsc says where it began).
    u32 tsc_low, tsc_high;
    asm volatile("rdtsc" : "=a"(tsc_low), "=d"(tsc_high));
    format(console(), "LAMINA STAT dom0_prompt_tsc={}\n", (u64{tsc_high} << 32) | tsc_low);
    shell.start();
    for (;;) {
        // What happened to domains meanwhile goes above the line being typed.
        static char notices[1024];
        BufferSink sink(notices, sizeof(notices));
        service_domains(sink);
        if (sink.needed()) shell.interject(notices, min(sink.needed(), sizeof(notices) - 1));
        console().flush();
        u8 byte;
        if (console_input().next(&byte)) shell.input(byte);
        else wait_for_input();
    }
}

}  // namespace

}  // namespace lamina::dom0

namespace lamina {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line) {
    dom0::crash("\ndom0: assertion failed: {} ({}:{})\n", expr, file, line);
}
}  // namespace lamina

extern "C" {

// -fstack-protector-strong: a smashed stack in Dom0 is a crash of Dom0.
lamina::u64 __stack_chk_guard = 0x6c616d696e613030;
[[noreturn]] void __stack_chk_fail() { lamina::dom0::crash("\ndom0: stack smashing detected\n"); }

[[noreturn]] void dom0_main(lamina::u64 start_info_gpa) {
    using namespace lamina::dom0;
    const lamina::i64 abi_version = lamina_detect();
    if (abi_version == -LAMINA_ERANGE) stop_early("dom0: the hypervisor's ABI major is not Dom0's\n");
    if (abi_version < 0) stop_early("dom0: not running on Lamina\n");
    lamina::u32 eax, flags, ecx, edx;
    lamina_cpuid(LAMINA_CPUID_LEAF_VERSION, &eax, &flags, &ecx, &edx);
    if (!(flags & LAMINA_CPUID_DOMAIN_CONTROL)) stop_early("dom0: this is not the control domain\n");
    lamina_hypercall_page_install(gpa(lamina_hypercall_page));
    greet(static_cast<lamina::u64>(abi_version));
    lamina::pvh::StartInfo start;
    if (read_start_info(start_info_gpa, &start)) {
        show_command_line(start);
        boot_images().load(start, kOwnMemory, console());
    }
    start_events(console());
    run_shell();
}

}  // extern "C"
