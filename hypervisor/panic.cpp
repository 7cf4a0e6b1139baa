#include <hypervisor/panic.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/interrupts.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/percpu.h>
#include <lamina/assert.h>
#include <lamina/string.h>

struct KernelSymbol {
    lamina::u64 address;
    lamina::u64 name_offset;
};
extern "C" const lamina::u64 lamina_ksyms_count;
extern "C" const KernelSymbol lamina_ksyms[];
extern "C" const char lamina_ksyms_names[];
extern "C" char __text_start[], __text_end[];

namespace lamina {

PanicHooks panic_hooks;

namespace {

Atomic<u32> panicking{0};

class EmergencySink final : public Sink {
public:
    void write(const char* text, usize length) override {
        char chunk[128];
        while (length > 0) {
            usize n = min<usize>(length, sizeof(chunk) - 1);
            str::copy_bytes(chunk, text, n);
            chunk[n] = '\0';
            log::emergency_write(chunk);
            text += n;
            length -= n;
        }
    }
};

bool is_text_address(u64 address) {
    return address >= reinterpret_cast<u64>(__text_start) && address < reinterpret_cast<u64>(__text_end);
}

void print_frame_address(Sink& out, u64 address) {
    const char* name;
    u64 offset;
    if (symbolize(address, &name, &offset))
        format(out, "  {:#018x} {}+{:#x}\n", address, name, offset);
    else
        format(out, "  {:#018x} ?\n", address);
}

// Walks the frame-pointer chain (every image object keeps frame pointers), bounded so a
// corrupt chain cannot loop, and reading only mapped memory: a fault here would lose the report.
void print_backtrace(Sink& out, u64 rbp, u64 first_rip) {
    format(out, "backtrace:\n");
    if (first_rip) print_frame_address(out, first_rip);
    for (int depth = 0; depth < 32 && is_aligned(rbp, 8) && memory::is_mapped(rbp) &&
                        memory::is_mapped(rbp + 8);
         ++depth) {
        const u64* frame = reinterpret_cast<const u64*>(rbp);
        u64 return_address = frame[1];
        if (!is_text_address(return_address)) break;
        print_frame_address(out, return_address);
        if (frame[0] <= rbp) break;  // stacks grow down: the caller's frame is above
        rbp = frame[0];
    }
}

void print_registers(Sink& out, const x86::InterruptFrame& f) {
    format(out, "exception {} ({}) error code {:#x}\n", f.vector, x86::exception_name(f.vector),
           f.error_code);
    format(out, "rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}\n", f.rip, f.cs, f.rflags,
           f.rsp, f.ss);
    format(out, "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n", f.rax, f.rbx, f.rcx, f.rdx);
    format(out, "rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n", f.rsi, f.rdi, f.rbp, f.r8);
    format(out, "r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n", f.r9, f.r10, f.r11, f.r12);
    format(out, "r13 {:#018x} r14 {:#018x} r15 {:#018x}\n", f.r13, f.r14, f.r15);
}

}  // namespace

bool panic_in_progress() { return panicking.load(MemoryOrder::Relaxed) != 0; }

bool symbolize(u64 address, const char** name, u64* offset) {
    u64 count = lamina_ksyms_count;
    if (count == 0 || address < lamina_ksyms[0].address || !is_text_address(address)) return false;
    u64 lo = 0, hi = count;  // last symbol with address <= target
    while (hi - lo > 1) {
        u64 mid = lo + (hi - lo) / 2;
        if (lamina_ksyms[mid].address <= address) lo = mid;
        else hi = mid;
    }
    *name = lamina_ksyms_names + lamina_ksyms[lo].name_offset;
    *offset = address - lamina_ksyms[lo].address;
    return true;
}

void vpanic(const x86::InterruptFrame* frame, const char* fmt, const FormatArg* args, usize count) {
    x86::disable_interrupts();
    u32 earlier = panicking.fetch_add(1);
    if (earlier == 1) {
        // The panic path itself faulted: say so, briefly, and still end the run.
        log::emergency_write("\nLAMINA PANIC (nested: a fault while reporting a panic)\n");
        if (panic_hooks.end_emulator) panic_hooks.end_emulator(false);
    }
    if (earlier != 0) x86::halt_forever();  // one report is enough
    if (panic_hooks.stop_other_cpus) panic_hooks.stop_other_cpus();
    log::break_console_lock();

    EmergencySink out;
    format(out, "\nLAMINA PANIC cpu{}: ", this_cpu_index());
    vformat(out, fmt, args, count);
    out.write("\n", 1);
    u64 cr0 = x86::read_cr0(), cr2 = x86::read_cr2(), cr3 = x86::read_cr3(), cr4 = x86::read_cr4();
    if (frame) {
        print_registers(out, *frame);
        format(out, "cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x}\n", cr0, cr2, cr3, cr4);
        print_backtrace(out, frame->rbp, frame->rip);
    } else {
        format(out, "cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x}\n", cr0, cr2, cr3, cr4);
        print_backtrace(out, reinterpret_cast<u64>(__builtin_frame_address(0)), 0);
    }
    format(out, "LAMINA RESULT FAIL passed=0 failed=1 reason=panic\n");
    if (panic_hooks.end_emulator) panic_hooks.end_emulator(false);
    x86::halt_forever();
}

[[noreturn]] void assert_failed(const char* expr, const char* file, int line) {
    panic("assertion failed: {} at {}:{}", expr, file, line);
}

}  // namespace lamina

// Stack-smashing protector: a damaged canary is a hypervisor bug, never something to survive.
extern "C" {
lamina::u64 __stack_chk_guard = 0x595e9fbd94fda766;
[[noreturn]] void __stack_chk_fail() { lamina::panic("stack smashing detected"); }
}
