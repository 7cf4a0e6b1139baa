#include <hypervisor/guest/guest.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/cpuid/host_cpuid.h>
#include <hypervisor/console.h>
#include <hypervisor/heap.h>
#include <hypervisor/hypercall/hypercall_page.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/time.h>
#include <hypervisor/mm/frame_allocator.h>
#include <hypervisor/virt.h>
#include <lamina/assert.h>
#include <lamina/pvh_builder.h>
#include <lamina/string.h>

namespace lamina {
namespace {

constexpr u16 kTestGuestTag = 1;  // VPID / ASID; one test guest runs at a time

stage2::Stage2Format machine_stage2_format() {
    return virt::summary().vendor == virt::Vendor::Vmx ? stage2::Stage2Format::Ept : stage2::Stage2Format::Npt;
}

// The guest's paging is the host CPU's: its MAXPHYADDR and 1 GiB pages.
emulate::PagingFeatures guest_paging_features() {
    const x86::CpuFeatures& cpu = x86::cpu_features();
    return {.physical_address_bits = cpu.physical_address_bits, .pages_1g = cpu.pages_1g};
}

stage2::Stage2Limits machine_stage2_limits() {
    const virt::Summary& v = virt::summary();
    return {.physical_address_bits = v.physical_address_bits,
            .pages_1g = v.stage2_1g_pages,
            .execute_only = v.stage2_execute_only};
}

}  // namespace

Guest::Guest(const char* name, u64 ram_hpa, u64 ram_bytes, GuestIdentity identity)
    : name_(name), ram_hpa_(ram_hpa), ram_bytes_(ram_bytes), control_domain_(identity.control_domain),
      domain_id_(identity.domain_id),
      stage2_(machine_stage2_format(), stage2::frame_table_memory, machine_stage2_limits()), 
      exits_handler_({cpuid_, ports_, mmio_, *this, guest_paging_features(), hypercalls_, identity.domain_id,
                      identity.control_domain},
                     *this) {
    ports_.claim(DebugConsole::kPort, 1, debug_console_);
}

Guest::~Guest() {
    if (events_) {
        events_->close_all();
        heap().destroy(events_);
    }
    if (vcpu_) virt::destroy_vcpu(vcpu_);
    fpu_.destroy();
    stage2_.destroy();
    memory::free_frames(ram_hpa_, ram_bytes_ / kFrameSize);
}

Guest* Guest::create_pvh(const char* name, const u8* image, usize image_size, u64 ram_bytes,
                         GuestIdentity identity) {
    if (virt::summary().vendor == virt::Vendor::None) {
        log::error("guest {}: no virtualization on this machine", name);
        return nullptr;
    }
    ram_bytes = align_up(ram_bytes, 2 * MiB);
    // Contiguous and 2 MiB aligned, so stage 2 maps it with large pages.
    u64 ram = memory::allocate_frames(ram_bytes / kFrameSize, (2 * MiB) / kFrameSize);
    if (!ram) {
        log::error("guest {}: no {} MiB of RAM for it", name, ram_bytes / MiB);
        return nullptr;
    }
    Guest* guest = heap().create<Guest>(name, ram, ram_bytes, identity);
    if (!guest) {
        memory::free_frames(ram, ram_bytes / kFrameSize);
        return nullptr;
    }
    EntryState entry{};
    cpuid::HardwareCpuid host;
    bool ok = guest->stage2_.init() == stage2::Status::Ok &&
              guest->stage2_.map(0, ram, ram_bytes, {.read = true, .write = true, .execute = true}).ok() &&
              guest->cpuid_.init(host, {.vcpu_count = 1, .control_domain = identity.control_domain}) == cpuid::Status::Ok && guest->fpu_.init() &&
              guest->load_pvh(image, image_size, identity.control_domain, &entry) &&
              (guest->events_ = heap().create<event::EventChannels>(identity.domain_id, 1u,
                                                                     static_cast<event::EventDomains&>(*guest),
                                                                     static_cast<event::UpcallSink&>(*guest)));
    if (ok) {
        const EntryState& state = entry;
        guest->vcpu_ = virt::create_vcpu({guest->stage2_.root(), &guest->stage2_.generation_counter()}, kTestGuestTag, state);
        ok = guest->vcpu_ != nullptr;
    }
    if (!ok) {
        log::error("guest {}: could not be built", name);
        destroy(guest);
        return nullptr;
    }
    return guest;
}

void Guest::destroy(Guest* guest) { heap().destroy(guest); }

void* Guest::guest_memory(u64 gpa, u64 size) {
    u64 end;
    if (add_overflows(gpa, size, &end) || end > ram_bytes_) return nullptr;
    return memory::phys_to_virt(ram_hpa_ + gpa);
}

bool Guest::load_pvh(const u8* image, usize image_size, bool control_domain, EntryState* entry) {
    const pvh::BuildRequest request{
        .kernel = image,
        .kernel_size = image_size,
        .ram_bytes = ram_bytes_,
        .flags = control_domain ? pvh::kFlagPrivileged | pvh::kFlagInitialDomain : 0u,
    };
    pvh::Layout layout{};
    const pvh::Result built = pvh::build(request, *this, layout);
    if (!built.ok()) {
        char reason[160];
        BufferSink sink(reason, sizeof reason);
        pvh::describe(sink, built);
        log::error("guest {}: not a loadable PVH kernel: {}", name_, reason);
        return false;
    }
    *entry = {EntryMode::Protected32, layout.entry.rip, layout.entry.rbx, layout.entry.rsp};
    return true;
}

bool Guest::write(u64 gpa, const void* data, usize size) {
    void* ram = guest_memory(gpa, size);
    if (ram) str::copy_bytes(ram, data, size);
    return ram != nullptr;
}

bool Guest::zero(u64 gpa, u64 size) {
    void* ram = guest_memory(gpa, size);
    if (ram) str::fill_bytes(ram, 0, size);
    return ram != nullptr;
}

GuestEnd Guest::run(u64 max_exits) {
    x86::disable_interrupts();
    // Neither XCR0 nor the FPU/SSE/AVX registers are switched by VM entry or exit: the guest's
    // are loaded while it runs, and saved and scrubbed when it stops.
    fpu_.load(exits_handler_.xcr0());
    if (timer_deadline_ns_) arm_host_timer(timer_deadline_ns_);
    while (end_ == GuestEnd::Running && exits_ < max_exits) {
        if (interrupts_.pending()) [[unlikely]] interrupts_.deliver(*vcpu_);
        ExitInfo exit = vcpu_->run();
        ++exits_;
        GuestEnd end = exits_handler_.handle(*vcpu_, exit);
        if (end == GuestEnd::Running) [[likely]] continue;
        if (end == GuestEnd::Blocked) {
            if (wait_for_interrupt()) continue;
            end = GuestEnd::Halted;  // HLT with interrupts on, but nothing could ever wake it
        }
        ending_exit_ = exit;
        finish(end, exit);
    }
    fpu_.save_and_scrub();
    disarm_host_timer();
    x86::enable_interrupts();
    // Out of budget is no end: a later run() goes on where this one stopped.
    return end_ == GuestEnd::Running ? GuestEnd::ExitBudget : end_;
}

bool Guest::protect(u64 gpa, u64 size, stage2::Stage2Access access) {
    // The vCPU flushes at its next entry (the stage-2 generation moved); it is not running now,
    // as this is called on its CPU between runs or from one of its exits.
    return stage2_.protect(gpa, size, access).ok();
}

bool Guest::claim_mmio(u64 gpa, u64 size, emulate::MmioHandler& device) {
    u64 end;
    if (add_overflows(gpa, size, &end) || gpa < ram_bytes_) return false;
    return mmio_.claim(gpa, size, device) == RangeStatus::Ok;
}

bool Guest::read(u64 gpa, void* out, usize size) {
    const void* ram = guest_memory(gpa, size);
    if (!ram) return false;
    str::copy_bytes(out, ram, size);
    return true;
}

bool Guest::set_timer(u64 deadline_ns, u8 vector) {
    if (vector && vector < VirtualInterrupts::kFirstVector) return false;
    timer_deadline_ns_ = deadline_ns;
    timer_vector_ = vector;
    if (!deadline_ns) {
        disarm_host_timer();
        return true;
    }
    if (deadline_ns <= time::now_ns()) {
        check_timer();  // due already: pending from now on
        return true;
    }
    // This CPU's timer brings the guest out (an external-interrupt exit) when the deadline comes.
    arm_host_timer(deadline_ns);
    return true;
}

// Until the scheduler owns this CPU's timer, the guest running here arms it for itself and stops
// it when it no longer needs it, so that no stale tick reaches whatever runs next.
void Guest::arm_host_timer(u64 wake_ns) {
    const u64 now = time::now_ns();
    apic::arm_timer(wake_ns > now ? wake_ns - now : 0);
    host_timer_armed_ = true;
}

void Guest::disarm_host_timer() {
    if (!host_timer_armed_) return;
    apic::stop_timer();
    host_timer_armed_ = false;
}

void Guest::check_timer() {
    if (timer_deadline_ns_ && time::now_ns() >= timer_deadline_ns_) {
        timer_deadline_ns_ = 0;
        event_pending_ = true;
        if (timer_vector_) interrupts_.raise(timer_vector_);
        events_->raise_virq(LAMINA_VIRQ_TIMER, 0);
    }
}

bool Guest::take_event() {
    check_timer();
    // Typed input is the control domain's event (VIRQ_CONSOLE).
    if (control_domain_ && console::take_arrival()) {
        event_pending_ = true;
        events_->raise_virq(LAMINA_VIRQ_CONSOLE, 0);
    }
    const bool pending = event_pending_ || events_->pending_for(0);
    event_pending_ = false;
    return pending;
}

// The vCPU executed HLT with interrupts on, or vcpu_block: it sleeps until an interrupt or an
// event is due, and so does this CPU, which has nothing else to run until the scheduler comes.
// False when nothing could ever wake it: no timer armed, and not the control domain (whose
// console input is the only other source while it sleeps, until the domain table lets other
// domains send it events).
bool Guest::wait_for_interrupt() {
    for (;;) {
        if (take_event() || interrupts_.pending()) {
            // Woken, perhaps before the vCPU's deadline: the timer serves that deadline again.
            if (timer_deadline_ns_) arm_host_timer(timer_deadline_ns_);
            else disarm_host_timer();
            return true;
        }
        u64 wake = timer_deadline_ns_;
        if (control_domain_) {
            // Typed input wakes the control domain. Its interrupt does that on Bochs; QEMU 7.2
            // never delivers it (hypervisor/console.cpp), so the console is also polled.
            constexpr u64 kConsolePollNs = 10000000;
            const u64 poll = time::now_ns() + kConsolePollNs;
            wake = wake && wake < poll ? wake : poll;
        }
        if (!wake) return false;
        arm_host_timer(wake);
        // STI's shadow covers HLT: the timer cannot fire between the two and be missed.
        x86::enable_interrupts_and_halt();
        x86::disable_interrupts();
    }
}

void Guest::load_xcr0(u64 value) { x86::xsetbv(0, value); }

void Guest::take_host_interrupts() {
    // Interrupts stayed pending across the exit; a window of a few instructions lets them in.
    x86::open_interrupt_window();
    check_timer();
}

u64 Guest::tsc() { return x86::rdtsc(); }

event::EventChannels* Guest::find(u16 domid) { return domid == domain_id_ ? events_ : nullptr; }

// An event became pending for the vCPU: it wakes (vcpu_block, HLT) and, when the guest set an
// upcall vector, takes that interrupt.
void Guest::upcall(u32, u8 vector) {
    event_pending_ = true;
    if (vector) interrupts_.raise(vector);
}

// The MSR names the page's guest-physical address; bits 11:0 index the pages of a larger
// hypercall area, of which there is one page (CPUID 0x40000002 EAX).
bool Guest::install_hypercall_page(u64 msr_value) {
    if (msr_value & (hypercall::kPageSize - 1)) return false;
    auto* page = static_cast<u8(*)[hypercall::kPageSize]>(guest_memory(msr_value, hypercall::kPageSize));
    if (!page) return false;
    hypercall::write_hypercall_page(*page, virt::summary().vendor == virt::Vendor::Svm);
    return true;
}

void Guest::unclaimed_io(const IoExit& io, u64 count) {
    log::debug("guest {}: unclaimed port {:#x} ({} {} bytes), {} so far", name_, io.port, io.in ? "in" : "out",
               io.size, count);
}

void Guest::console_byte(char c) {
    GuestConsole& con = console_;
    if (c != '\n' && con.length < sizeof(con.line) - 1) {
        if (c != '\r') con.line[con.length++] = c;
        return;
    }
    con.line[con.length] = '\0';
    if (relay_stats_ && str::starts_with(con.line, "stat ")) log::print("LAMINA STAT {}\n", con.line + 5);
    log::info("guest {}: {}", name_, con.line);
    if (str::starts_with(con.line, "ok ")) {
        ++con.ok_lines;
    } else if (str::starts_with(con.line, "not ok ")) {
        if (con.not_ok_lines++ == 0) str::copy_bounded(con.first_failure, con.line, sizeof(con.first_failure));
    } else if (str::starts_with(con.line, "1..")) {
        u64 plan;
        if (str::parse_u64(con.line + 3, con.length - 3, &plan)) con.plan = static_cast<u32>(plan);
    }
    con.length = 0;
}

void Guest::finish(GuestEnd why, const ExitInfo& exit) {
    end_ = why;
    if (why == GuestEnd::Halted) return;
    if (why == GuestEnd::Shutdown) {
        constexpr const char* kReasons[] = {"poweroff", "reboot", "crash"};
        log::info("guest {}: shut down ({})", name_, kReasons[shutdown_reason_]);
        return;
    }
    // The report an operator (and later Dom0) gets about a guest that died.
    log::info("guest {}: ended: {} ({} exit, hardware code {:#x}, qualification {:#x}{}{})", name_,
              guest_end_name(why), exit_reason_name(exit.reason), exit.hardware_code, exit.qualification,
              exit.reason == ExitReason::InvalidState && exit.failure ? ": " : "",
              exit.reason == ExitReason::InvalidState && exit.failure ? exit.failure : "");
    if (why == GuestEnd::BadMmio) {
        const emulate::MmioResult& failure = exits_handler_.mmio_failure();
        log::info("guest {}: device access at {:#x}: {}{}{}", name_, exit.stage2.guest_physical,
                  emulate::mmio_status_name(failure.status),
                  failure.status == emulate::MmioStatus::Undecodable ? ": " : "",
                  failure.status == emulate::MmioStatus::Undecodable ? emulate::decode_status_name(failure.decode) : "");
    }
    if (why == GuestEnd::Stage2Fault)
        log::info("guest {}: guest-physical {:#x} ({}{}{})", name_, exit.stage2.guest_physical,
                  exit.stage2.read ? "r" : "", exit.stage2.write ? "w" : "", exit.stage2.execute ? "x" : "");
    log::info("guest {}: rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}", name_,
              vcpu_->rip(), vcpu_->gpr(Gpr::Rsp), vcpu_->rflags(), vcpu_->control_register(ControlRegister::Cr0),
              vcpu_->control_register(ControlRegister::Cr3), vcpu_->control_register(ControlRegister::Cr4),
              vcpu_->efer());
    log::info("guest {}: rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}", name_,
              vcpu_->gpr(Gpr::Rax), vcpu_->gpr(Gpr::Rbx), vcpu_->gpr(Gpr::Rcx), vcpu_->gpr(Gpr::Rdx),
              vcpu_->gpr(Gpr::Rsi), vcpu_->gpr(Gpr::Rdi), vcpu_->gpr(Gpr::Rbp));
}

}  // namespace lamina
