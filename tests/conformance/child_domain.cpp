#include <tests/conformance/child_domain.h>

#include <lamina/string.h>

#define CHILD_STRING_(x) #x
#define CHILD_STRING(x) CHILD_STRING_(x)

// The children's program, 32-bit protected mode (paging off, flat segments) but for its real-mode
// entry and the read at RAX, which 64-bit code runs too; position-independent: each entry gets
// EBX = its vCPU's block (a counter, then a NUL-terminated message) and ESP = its stack from the
// vCPU context.
asm(R"(
    .pushsection .rodata.conformance_child, "a"
    .balign 16
    .code32
    .globl conformance_child_program, conformance_child_program_end
    .globl conformance_child_spin, conformance_child_halt, conformance_child_triple_fault
    .globl conformance_child_stage2_fault, conformance_child_stage2_access, conformance_child_real_mode
    .globl conformance_child_read_rax
conformance_child_program:
conformance_child_spin:
    push %ebx
    xor %eax, %eax
    cpuid
    pop %ebx
    call 2f
    # Interrupts on while it spins: Bochs holds host interrupts back while a guest's IF is 0
    # (tests/guests/spinner), and none is ever injected into it.
    sti
1:  lock incl (%ebx)
    jmp 1b
conformance_child_halt:
    call 2f
    cli
    hlt
conformance_child_triple_fault:
    call 2f
    ud2
conformance_child_stage2_fault:
    call 2f
    mov $)" CHILD_STRING(CONFORMANCE_CHILD_FAULT_ESI) R"(, %esi
conformance_child_stage2_access:
    mov )" CHILD_STRING(CONFORMANCE_CHILD_FAULT_GPA) R"(, %eax
    jmp conformance_child_stage2_access
    # Reads at RAX: 8b 00, the same instruction in 32-bit and in 64-bit code.
conformance_child_read_rax:
    mov (%eax), %eax
    jmp conformance_child_read_rax
    # Prints the message after the counter to the debug port.
2:  lea 4(%ebx), %ecx
    mov $0xe9, %dx
3:  movb (%ecx), %al
    test %al, %al
    jz 4f
    outb %al, %dx
    inc %ecx
    jmp 3b
4:  ret

    # Real mode: CS:IP = entry >> 4 : 0 (the entry is 16-byte aligned), so CS addresses the text.
    .code16
    .balign 16
conformance_child_real_mode:
    mov %cs, %ax
    mov %ax, %ds
    mov $(5f - conformance_child_real_mode), %si
    mov $0xe9, %dx
6:  lodsb
    test %al, %al
    jz 7f
    outb %al, %dx
    jmp 6b
7:  cli
    hlt
5:  .asciz "real mode\n"
conformance_child_program_end:
    .code64
    .popsection
)");

extern "C" const lamina::u8 conformance_child_program[], conformance_child_program_end[];
extern "C" const lamina::u8 conformance_child_spin[], conformance_child_halt[], conformance_child_triple_fault[],
    conformance_child_stage2_fault[], conformance_child_stage2_access[], conformance_child_real_mode[],
    conformance_child_read_rax[];

namespace conformance {
namespace {

// The child's guest-physical layout.
constexpr u64 kFrame = 4096;
constexpr u64 kProgramGpa = 0x1000;
constexpr u64 kStackTop = 0x10000;                 // vCPU v's stack ends kFrame * v below
constexpr u64 kPageTablesGpa = 0x20000;            // PML4, PDPT, PD: for a LONG64 start
constexpr u64 kFirstMappedGfn = kChildFrames - 3;  // the vCPUs' blocks, then the console ring
constexpr u64 kMappedFrames = 3;
constexpr u64 kRingGfn = kChildFrames - 1;
static_assert(kChildMaxVcpus == kMappedFrames - 1, "one block frame per vCPU");

// The control domain's frames for them: above its RAM (which ends below 2 GiB) and identity-mapped
// by its page tables. The whole of a child's RAM while it is loaded, then each child's three
// frames in a slot of their own.
constexpr u64 kLoadWindowGfn = 0x80000;
constexpr u64 kSlotsGfn = kLoadWindowGfn + kChildFrames;
constexpr u32 kSlots = 16;
bool slot_used[kSlots];

u8* local_frame(u64 gfn) { return reinterpret_cast<u8*>(gfn * kFrame); }

// The first GiB identity-mapped with 2 MiB pages, for a context that starts in 64-bit mode.
void write_page_tables(u8* ram) {
    constexpr u64 kPresentWritable = 0x3;
    constexpr u64 kLargePage = 0x80;
    auto* pml4 = reinterpret_cast<u64*>(ram + kPageTablesGpa);
    u64* pdpt = pml4 + 512;
    u64* pd = pdpt + 512;
    pml4[0] = (kPageTablesGpa + kFrame) | kPresentWritable;
    pdpt[0] = (kPageTablesGpa + 2 * kFrame) | kPresentWritable;
    for (u64 i = 0; i < 512; ++i) pd[i] = (i << 21) | kPresentWritable | kLargePage;
}

const u8* entry_of(ChildProgram program) {
    switch (program) {
        case ChildProgram::Spin: return conformance_child_spin;
        case ChildProgram::Halt: return conformance_child_halt;
        case ChildProgram::TripleFault: return conformance_child_triple_fault;
        case ChildProgram::Stage2Fault: return conformance_child_stage2_fault;
        case ChildProgram::RealMode: return conformance_child_real_mode;
    }
    return conformance_child_spin;
}

// Where an instruction of the program lies in the child.
u64 child_gpa(const u8* instruction) { return kProgramGpa + static_cast<u64>(instruction - conformance_child_program); }

u64 tsc_khz() {
    static u64 khz = 0;
    if (!khz) khz = host_info().tsc_khz;
    return khz;
}

// ---- Events ----

alignas(4096) lamina_evtchn_shared event_page;
u32 died_port = 0;

bool init_events(Test& t) {
    str::fill_bytes(event_page.mask, 0xff, sizeof(event_page.mask));
    if (!t.returns(lamina_hc_evtchn_init(gpa_of(&event_page)), 0, "set-up: evtchn_init of the kernel's event page"))
        return false;
    const i64 port = lamina_hc_evtchn_bind_virq(LAMINA_VIRQ_DOMAIN_DIED, 0);
    if (!t.check(port > 0, "set-up: LAMINA_VIRQ_DOMAIN_DIED is bound", "evtchn_bind_virq returned {}", port))
        return false;
    died_port = static_cast<u32>(port);
    return true;
}

// ---- Straddling buffers ----

alignas(4096) u8 straddle_area[3 * kFrame];

// ---- The host's state ----

struct HostState {
    u64 free_pages;
    u32 open_ports;
    u32 domain_count;
    lamina_domain_info domains[LAMINA_DOMAIN_LIST_MAX];
};
HostState before_bystander, with_bystander;
ChildDomain bystander;  // built by set_up_control_kernel, destroyed by tear_down_control_kernel

void record(HostState& state) {
    state.free_pages = free_pages();
    state.open_ports = open_ports();
    const i64 count = lamina_hc_domain_list(0, gpa_of(state.domains), LAMINA_DOMAIN_LIST_MAX);
    state.domain_count = count > 0 ? static_cast<u32>(count) : 0;
    for (u32 i = 0; i < state.domain_count; ++i) state.domains[i].cpu_time_ns = 0;  // it moves on
}

void check_same(Test& t, const HostState& was, const char* group) {
    HostState now;
    record(now);
    char what[128];
    format_to(what, sizeof(what), "{}: every page is back (host_info free_pages)", group);
    t.check(now.free_pages == was.free_pages, what, "{} free pages, {} before", now.free_pages, was.free_pages);
    format_to(what, sizeof(what), "{}: no event channel port is left open", group);
    t.check(now.open_ports == was.open_ports, what, "{} ports open, {} before", now.open_ports, was.open_ports);
    format_to(what, sizeof(what), "{}: the domains are those before, each as it was", group);
    const bool same = now.domain_count == was.domain_count &&
                      str::compare_bytes(now.domains, was.domains, now.domain_count * sizeof(lamina_domain_info)) == 0;
    t.check(same, what, "{} domains, {} before", now.domain_count, was.domain_count);
}

const char* hypercall_name(u32 number) {
    switch (number) {
#define LAMINA_HYPERCALL(number, name, caller, argc, args, summary) \
    case number: return #name;
#include <lamina/abi/hypercalls.def>
    }
    return "?";
}

}  // namespace

lamina_host_info host_info() {
    lamina_host_info info{};
    lamina_hc_host_info(gpa_of(&info));
    return info;
}

lamina_domain_info domain_info(u64 domid) {
    lamina_domain_info info{};
    lamina_hc_domain_get_info(domid, gpa_of(&info));
    return info;
}

u64 now_ns() {
    u32 lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    const u64 tsc = (u64{hi} << 32) | lo;
    return tsc / tsc_khz() * 1000000 + tsc % tsc_khz() * 1000000 / tsc_khz();
}

void sleep_ns(u64 ns) {
    const u64 deadline = now_ns() + ns;
    for (u64 now = now_ns(); now < deadline; now = now_ns()) {
        lamina_hc_vcpu_set_timer(deadline - now);
        lamina_hc_vcpu_block();
    }
}

u32 domain_died_port() { return died_port; }

bool take_pending(u32 port) {
    const u64 bit = u64{1} << (port % 64);
    return __atomic_fetch_and(&event_page.pending[port / 64], ~bit, __ATOMIC_SEQ_CST) & bit;
}

u32 open_ports() {
    u32 open = 0;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; ++port) {
        lamina_evtchn_status status{};
        open += lamina_hc_evtchn_status(port, gpa_of(&status)) == 0 && status.state != LAMINA_EVTCHN_CLOSED;
    }
    return open;
}

StraddlingBuffer::StraddlingBuffer(usize size) : size_(size) {
    str::fill_bytes(straddle_area, kCanary, sizeof(straddle_area));
    usize offset = 2 * kFrame - (size + 1) / 2;
    if (offset % 2 == 0) --offset;  // odd: aligned for nothing
    at_ = straddle_area + offset;
}

bool StraddlingBuffer::untouched_around() const {
    return filled_with(straddle_area, static_cast<usize>(at_ - straddle_area), kCanary) &&
           filled_with(at_ + size_, static_cast<usize>(straddle_area + sizeof(straddle_area) - (at_ + size_)), kCanary);
}

bool StraddlingBuffer::untouched() const { return filled_with(straddle_area, sizeof(straddle_area), kCanary); }

bool filled_with(const void* bytes, usize size, u8 value) {
    const auto* p = static_cast<const u8*>(bytes);
    for (usize i = 0; i < size; ++i) {
        if (p[i] != value) return false;
    }
    return true;
}

// ---- Child domains ----

u64 ChildDomain::stage2_access_gpa() { return child_gpa(conformance_child_stage2_access); }
u64 ChildDomain::read_rax_gpa() { return child_gpa(conformance_child_read_rax); }
u64 ChildDomain::page_table_root() { return kPageTablesGpa; }

bool ChildDomain::build(Test& t, const ChildSpec& spec) {
    (void)destroy();
    const usize message_length = str::length(spec.message);
    if (message_length > kChildMessageMax || spec.vcpus < 1 || spec.vcpus > kChildMaxVcpus) {
        t.error("child {}: a message of {} bytes and {} vCPUs cannot be built", spec.name, message_length, spec.vcpus);
        return false;
    }
    const auto failed = [&](const char* step, i64 result) {
        t.error("building child {}: {}: {}", spec.name, step, lamina_errno_name(result));
        (void)destroy();
        return false;
    };
    const i64 id = create_domain(spec.name);
    if (id <= 0) return failed("domain_create", id);
    id_ = static_cast<u16>(id);
    created_ = true;
    i64 result;
    if ((result = lamina_hc_domain_set_max_memory(id_, kChildFrames)) < 0)
        return failed("domain_set_max_memory", result);
    if ((result = lamina_hc_domain_populate_memory(id_, 0, kChildFrames)) < 0)
        return failed("domain_populate_memory", result);
    if (spec.vcpus > 1 && (result = lamina_hc_domain_set_max_vcpus(id_, spec.vcpus)) < 0)
        return failed("domain_set_max_vcpus", result);

    if ((result = lamina_hc_domain_map_frames(id_, 0, kChildFrames, kLoadWindowGfn)) < 0)
        return failed("domain_map_frames (to load it)", result);
    u8* ram = local_frame(kLoadWindowGfn);
    str::copy_bytes(ram + kProgramGpa, conformance_child_program,
                    static_cast<usize>(conformance_child_program_end - conformance_child_program));
    // vCPU 0's block holds the message; the others' are empty: they only count.
    str::copy_bytes(ram + kFirstMappedGfn * kFrame + 4, spec.message, message_length + 1);
    write_page_tables(ram);
    if ((result = lamina_hc_domain_unmap_frames(kLoadWindowGfn, kChildFrames)) < 0)
        return failed("domain_unmap_frames (once loaded)", result);

    for (u32 vcpu = 0; vcpu < spec.vcpus; ++vcpu) {
        const bool real = vcpu == 0 && spec.program == ChildProgram::RealMode;
        lamina_vcpu_context context{};
        context.mode = real ? LAMINA_VCPU_MODE_REAL : LAMINA_VCPU_MODE_PROTECTED32;
        context.regs.rip = child_gpa(entry_of(vcpu == 0 ? spec.program : ChildProgram::Spin));
        context.regs.rsp = kStackTop - vcpu * kFrame;
        context.regs.rbx = (kFirstMappedGfn + vcpu) * kFrame;
        context.regs.rflags = kRflagsReserved;
        if ((result = lamina_hc_domain_set_vcpu_context(id_, vcpu, gpa_of(&context))) < 0)
            return failed("domain_set_vcpu_context", result);
    }

    for (u32 slot = 0; slot < kSlots && slot_ < 0; ++slot) {
        if (!slot_used[slot]) slot_ = static_cast<i32>(slot);
    }
    if (slot_ < 0) return failed("a slot for its frames (all in use)", 0);
    const u64 slot_gfn = kSlotsGfn + static_cast<u64>(slot_) * kMappedFrames;
    if ((result = lamina_hc_domain_map_frames(id_, kFirstMappedGfn, kMappedFrames, slot_gfn)) < 0) {
        slot_ = -1;
        return failed("domain_map_frames (its blocks and ring)", result);
    }
    slot_used[slot_] = true;
    frames_ = local_frame(slot_gfn);

    const i64 port = lamina_hc_evtchn_alloc_unbound(id_);
    if (port <= 0) return failed("evtchn_alloc_unbound", port);
    port_ = static_cast<u32>(port);
    if ((result = lamina_hc_domain_set_console(id_, kRingGfn, port_)) < 0) return failed("domain_set_console", result);
    return true;
}

i64 ChildDomain::destroy() {
    if (!created_) return 0;
    if (slot_ >= 0) {
        (void)lamina_hc_domain_unmap_frames(kSlotsGfn + static_cast<u64>(slot_) * kMappedFrames, kMappedFrames);
        slot_used[slot_] = false;
        slot_ = -1;
        frames_ = nullptr;
    }
    if (port_) (void)lamina_hc_evtchn_close(port_);
    port_ = 0;
    created_ = false;
    return lamina_hc_domain_destroy(id_);
}

lamina_domain_info ChildDomain::info() const { return domain_info(id_); }

u32 ChildDomain::counter(u32 vcpu) const {
    return frames_ ? *reinterpret_cast<const volatile u32*>(frames_ + vcpu * kFrame) : 0;
}

const volatile lamina_console_ring& ChildDomain::ring() const {
    return *reinterpret_cast<const volatile lamina_console_ring*>(frames_ + (kMappedFrames - 1) * kFrame);
}

bool ChildDomain::console_shows(const char* text) const {
    if (!frames_) return false;
    const usize length = str::length(text);
    const volatile lamina_console_ring& r = ring();
    if (r.out_prod != length) return false;
    for (usize i = 0; i < length; ++i) {
        if (r.out[i] != text[i]) return false;
    }
    return true;
}

bool ChildDomain::wait_for_state(u32 state) const {
    return wait_until([&] { return info().state == state; });
}

bool ChildDomain::wait_for_count(u32 count, u32 vcpu) const {
    return wait_until([&] { return counter(vcpu) > count; });
}

lamina_domain_create create_params(const char* name) {
    lamina_domain_create params{};
    str::copy_bounded(params.name, name, sizeof(params.name));
    params.kind = LAMINA_DOMAIN_PVH;
    return params;
}

i64 create_domain(const char* name) {
    const lamina_domain_create params = create_params(name);
    return lamina_hc_domain_create(gpa_of(&params));
}

ScopedDomain::ScopedDomain(const char* name) : id_(create_domain(name)) {}

i64 ScopedDomain::destroy() {
    if (id_ <= 0) return 0;
    const i64 result = lamina_hc_domain_destroy(static_cast<u16>(id_));
    id_ = 0;
    return result;
}

// ---- The host's state ----

u64 free_pages() {
    // The control domain's stage-2 tables that unmapping emptied are freed at its next map or
    // unmap call, once its vCPUs flushed them: an unmap of nothing is that call.
    (void)lamina_hc_domain_unmap_frames(kLoadWindowGfn, 1);
    return host_info().free_pages;
}

u16 bystander_id() { return bystander.id(); }

bool set_up_control_kernel(Test& t) {
    if (!t.check(is_control_domain(), "set-up: the kernel runs as the control domain")) return false;
    if (!init_events(t)) return false;
    {
        ScopedChild warm_up;
        if (!warm_up.build(t, {.name = "ctl-warm-up"})) return false;
        t.check(warm_up.start() == 0 && warm_up.wait_for_count(0), "set-up: a first child runs");
        t.returns(warm_up.destroy(), 0, "set-up: the first child is destroyed");
    }
    record(before_bystander);
    if (!bystander.build(t, {.name = "ctl-bystander", .program = ChildProgram::Halt, .message = "bystander: halted\n"}))
        return false;
    const bool halted =
        bystander.start() == 0 && wait_until([] { return bystander.console_shows("bystander: halted\n"); });
    if (!t.check(halted, "set-up: the bystander printed and halted")) return false;
    record(with_bystander);
    return true;
}

void check_left_alone(Test& t, const char* group) { check_same(t, with_bystander, group); }

void tear_down_control_kernel(Test& t) {
    const lamina_domain_info info = bystander.info();
    t.check(info.state == LAMINA_DOMAIN_RUNNING && bystander.console_shows("bystander: halted\n"),
            "tear-down: the bystander still runs, its console as it was", "state {}", info.state);
    t.returns(bystander.destroy(), 0, "tear-down: the bystander is destroyed");
    check_same(t, before_bystander, "tear-down");
}

void check_user_mode_refused(Test& t, const u32* numbers, usize count) {
    for (usize i = 0; i < count; ++i) {
        char what[96];
        format_to(what, sizeof(what), "{} from CPL 3 is EPERM, in the control domain too", hypercall_name(numbers[i]));
        t.returns(user_mode_hypercall(numbers[i]), kEperm, what);
    }
}

}  // namespace conformance
