// The test kernel's life: find Lamina, install the hypercall page and the exception handlers,
// run the cases in order, print the one result line, power off.
#include <tests/conformance/framework/conformance.h>

#include <lamina/string.h>
#include <tests/guests/traps.h>

LAMINA_HYPERCALL_PAGE_DEFINE();

extern const conformance::KernelInfo conformance_kernel;  // CONFORMANCE_KERNEL, in the kernel
extern "C" const conformance::Case __start_conformance_cases[];
extern "C" const conformance::Case __stop_conformance_cases[];

namespace conformance {
namespace {

constexpr usize kCommandLineMax = 1024;
// How long ask_peer waits for Dom0's reply: rounds of a one-shot timer and vcpu_block.
constexpr u32 kPeerReplyRounds = 500;
constexpr u64 kPeerReplyRoundNs = 10'000'000;

// A domain's output goes to port 0xE9, which the hypervisor appends to its console ring, and
// drops while the ring is full: so each byte waits until Dom0 has made room (the ring is the
// domain's own page). The control domain has no ring; it writes to the physical console with
// console_write, a line at a time.
class Output final : public Sink {
public:
    void write(const char* text, usize length) override {
        for (usize i = 0; i < length; ++i) {
            if (!control_) {
                wait_for_room();
                asm volatile("outb %0, $0xe9" : : "a"(text[i]));
                continue;
            }
            line_[used_++] = text[i];
            if (text[i] == '\n' || used_ == sizeof(line_)) flush();
        }
    }
    void flush() {
        if (used_) lamina_hc_console_write(reinterpret_cast<u64>(line_), used_);
        used_ = 0;
    }
    void set_control(bool control) { control_ = control; }
    void set_ring(volatile lamina_console_ring* ring) { ring_ = ring; }

private:
    void wait_for_room() {
        while (ring_ && ring_->out_prod - ring_->out_cons >= LAMINA_CONSOLE_RING_OUT_SIZE) lamina_hc_vcpu_yield();
    }

    bool control_ = false;
    volatile lamina_console_ring* ring_ = nullptr;
    char line_[256];
    usize used_ = 0;
};

Output output;
pvh::StartInfo start;
// The command line, then what the toolstack typed into the console before the kernel started
// (Dom0's `conformance` offers grants that way, once it knows the domain's id).
char command_line[kCommandLineMax + 1];
u64 ram_top = 0;
u64 console_ring_gpa = 0;  // 0: none
bool control = false;
u16 domid = 0;

const char* category_name(Category category) {
    switch (category) {
        case Category::Functional: return "functional";
        case Category::Security: return "security";
        case Category::Stress: return "stress";
    }
    return "?";
}

void read_start_info(u64 start_info_gpa) {
    const auto* info = reinterpret_cast<const pvh::StartInfo*>(start_info_gpa);
    if (!info || info->magic != pvh::kStartInfoMagic) return;
    start = *info;
    if (start.command_line)
        str::copy_bounded(command_line, reinterpret_cast<const char*>(start.command_line), sizeof(command_line));
    const auto* map = reinterpret_cast<const pvh::MemoryMapEntry*>(start.memory_map);
    for (u32 i = 0; map && i < start.memory_map_entries; ++i) {
        if (map[i].type == pvh::MemoryType::Ram) ram_top = max(ram_top, map[i].address + map[i].size);
    }
    // The toolstack puts the console ring in the page after RAM, reserved in the map
    // (dom0/toolstack/domain_builder.cpp); the control domain has none.
    for (u32 i = 0; map && i < start.memory_map_entries; ++i) {
        if (map[i].type == pvh::MemoryType::Reserved && map[i].address == ram_top && map[i].size == 4096)
            console_ring_gpa = ram_top;
    }
}

volatile lamina_console_ring* console_ring() { return reinterpret_cast<volatile lamina_console_ring*>(console_ring_gpa); }

void read_console_input() {
    if (!console_ring_gpa) return;
    volatile lamina_console_ring* ring = console_ring();
    usize length = str::length(command_line);
    const u32 produced = ring->in_prod;
    u32 consumed = ring->in_cons;
    if (length + 1 < sizeof(command_line) && consumed != produced) command_line[length++] = ' ';
    for (; consumed != produced && length + 1 < sizeof(command_line); ++consumed) {
        const char c = ring->in[consumed % LAMINA_CONSOLE_RING_IN_SIZE];
        command_line[length++] = c == '\n' ? ' ' : c;
    }
    command_line[length] = '\0';
    ring->in_cons = consumed;
}

[[noreturn]] void power_off(u32 reason) {
    output.flush();
    lamina_hc_shutdown(reason);
    for (;;) asm volatile("cli; hlt");
}

}  // namespace

const char* result_name(Result result) {
    switch (result) {
        case Result::Success: return "SUCCESS";
        case Result::Skip: return "SKIP";
        case Result::Error: return "ERROR";
        case Result::Failure: return "FAILURE";
    }
    return "?";
}

bool Test::returns(i64 got, i64 want, const char* what) {
    if (got == want) return check(true, what);
    if (want <= 0 && want > -4096)
        return check(false, what, "returned {} ({}), expected {}", got, lamina_errno_name(got), lamina_errno_name(want));
    return check(false, what, "returned {} ({}), expected {}", got, lamina_errno_name(got), want);
}

u64 option(const char* key, u64 fallback) {
    const usize key_length = str::length(key);
    const usize length = str::length(command_line);
    for (usize at = 0; at < length;) {
        usize end = at;
        while (end < length && command_line[end] != ' ') ++end;
        u64 value = 0;
        if (end - at > key_length + 1 && str::compare_bytes(command_line + at, key, key_length) == 0 &&
            command_line[at + key_length] == '=' &&
            str::parse_u64(command_line + at + key_length + 1, end - at - key_length - 1, &value))
            return value;
        at = end + 1;
    }
    return fallback;
}

// The first line of input (the offer) was read at the start; each reply is one more line.
i64 ask_peer(const char* request, char* reply, usize reply_size) {
    if (!console_ring_gpa || reply_size == 0) return kEnoent;
    format(output, "{}{}\n", toolstack::kPeerRequestPrefix, request);
    volatile lamina_console_ring* ring = console_ring();
    usize length = 0;
    reply[0] = '\0';
    for (u32 round = 0; round < kPeerReplyRounds; ++round) {
        for (u32 consumed = ring->in_cons; consumed != ring->in_prod;) {
            const char c = ring->in[consumed++ % LAMINA_CONSOLE_RING_IN_SIZE];
            ring->in_cons = consumed;
            if (c == '\n') {
                lamina_hc_vcpu_set_timer(0);  // no stray timer event for the cases after
                return static_cast<i64>(length);
            }
            if (length + 1 < reply_size) {
                reply[length++] = c;
                reply[length] = '\0';
            }
        }
        lamina_hc_vcpu_set_timer(kPeerReplyRoundNs);
        lamina_hc_vcpu_block();
    }
    lamina_hc_vcpu_set_timer(0);
    return kEagain;
}

bool is_control_domain() { return control; }
u16 own_domid() { return domid; }
u64 ram_end() { return ram_top; }
u64 memory_end() { return console_ring_gpa ? console_ring_gpa + 4096 : ram_top; }
const pvh::StartInfo& start_info() { return start; }

void bad_buffers(u64 size, BadBuffer (&out)[kBadBufferCount]) {
    const u64 end = memory_end();
    out[0] = {"beyond RAM", align_up(end, u64{1} << 30) + (u64{1} << 30)};
    out[1] = {"past the address width", u64{1} << 52};
    out[2] = {"that wraps around", ~u64{0} - size / 2};
    out[3] = {"at the local APIC", 0xfee00000};
    out[4] = {"straddling the end of RAM", end - max<u64>(size / 2, 1)};
    out[5] = {"at the last byte address", ~u64{0}};
}

}  // namespace conformance

// An exception no case expected: its diagnosis, then the domain ends as crashed (no result
// line: the runner calls it CRASH).
void guest::on_unexpected_trap(const guest::TrapFrame&) { conformance::power_off(LAMINA_SHUTDOWN_CRASH); }

extern "C" void guest_main(lamina::u64 start_info_gpa) {
    using namespace conformance;
    if (lamina_detect() < 0) {
        format(output, "{}: not running on Lamina\nTest result: ERROR\n", conformance_kernel.name);
        for (;;) asm volatile("cli; hlt");
    }
    u32 eax, flags, ecx, edx;
    lamina_cpuid(LAMINA_CPUID_LEAF_VERSION, &eax, &flags, &ecx, &edx);
    control = (flags & LAMINA_CPUID_DOMAIN_CONTROL) != 0;
    domid = static_cast<u16>(ecx);
    lamina_hypercall_page_install(reinterpret_cast<u64>(lamina_hypercall_page));
    output.set_control(control);
    guest::install_traps();
    read_start_info(start_info_gpa);
    read_console_input();
    if (console_ring_gpa) output.set_ring(reinterpret_cast<volatile lamina_console_ring*>(console_ring_gpa));

    format(output, "--- Lamina conformance: {} ({}), {} domain {} ---\n", conformance_kernel.name,
           category_name(conformance_kernel.category), control ? "control" : "unprivileged", domid);
    if (command_line[0]) format(output, "command line: {}\n", command_line);
    Test t(output);
    if (!ram_top) t.error("no RAM in the start info's memory map");
    for (const Case* c = __start_conformance_cases; c != __stop_conformance_cases && ram_top; ++c) {
        format(output, "# {}\n", c->name);
        t.begin_case();
        c->run(t);
        if (t.case_outcomes() == 0) t.error("case {} made no check", c->name);
    }
    format(output, "{} checks, {} failed\n", t.checks(), t.failures());
    format(output, "Test result: {}\n", result_name(t.result()));
    power_off(LAMINA_SHUTDOWN_POWEROFF);
}
