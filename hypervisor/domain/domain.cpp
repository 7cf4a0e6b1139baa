#include <hypervisor/domain/domain.h>

#include <arch/x86_64/apic.h>
#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/cpuid/host_cpuid.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/heap.h>
#include <hypervisor/hypercall/abi_exit_reason.h>
#include <hypervisor/hypercall/vcpu_context.h>
#include <hypervisor/log.h>
#include <hypervisor/percpu.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <lamina/abi/console.h>
#include <lamina/abi/errno.h>
#include <lamina/abi/shared_page.h>
#include <lamina/elf.h>
#include <lamina/string.h>

namespace lamina {
namespace {

constexpr i64 error(u32 code) { return -static_cast<i64>(code); }

stage2::Stage2Format machine_stage2_format() {
    return virt::summary().vendor == virt::Vendor::Vmx ? stage2::Stage2Format::Ept : stage2::Stage2Format::Npt;
}

stage2::Stage2Limits machine_stage2_limits() {
    const virt::Summary& v = virt::summary();
    return {.physical_address_bits = v.physical_address_bits,
            .pages_1g = v.stage2_1g_pages,
            .execute_only = v.stage2_execute_only};
}

constexpr const char* kShutdownReasons[] = {"poweroff", "reboot", "crash"};

}  // namespace

const char* domain_state_name(lamina_domain_state state) {
    switch (state) {
        case LAMINA_DOMAIN_BUILDING: return "building";
        case LAMINA_DOMAIN_PAUSED: return "paused";
        case LAMINA_DOMAIN_RUNNING: return "running";
        case LAMINA_DOMAIN_SHUTTING_DOWN: return "shutting down";
        case LAMINA_DOMAIN_DYING: return "dying";
    }
    return "?";
}

Domain::Domain(const DomainParams& params)
    : id_(params.id), control_(params.control), scheduled_(params.scheduled), tlb_tag_(params.tlb_tag),
      stage2_(machine_stage2_format(), stage2::frame_table_memory, machine_stage2_limits()) {
    str::copy_bounded(name_, params.name, sizeof name_);
    ports_.claim(DebugConsole::kPort, 1, debug_console_);
}

Domain::~Domain() {
    for (ForeignMapping& m : foreign_) {
        if (m.count) remove_mapping(m);
    }
    if (grants_) heap().free(grants_, LAMINA_SHARED_PAGE_GRANTS * sizeof(Grant));
    if (events_) {
        events_->close_all();
        heap().destroy(events_);
    }
    for (DomainVcpu* vcpu : vcpus_) {
        if (vcpu) heap().destroy(vcpu);
    }
    memory_.release();
    stage2_.destroy();
}

Domain* Domain::create(const DomainParams& params) {
    if (virt::summary().vendor == virt::Vendor::None) {
        log::error("domain {}: no virtualization on this machine", params.name);
        return nullptr;
    }
    Domain* domain = heap().create<Domain>(params);
    if (domain && !domain->init()) {
        destroy(domain);
        return nullptr;
    }
    return domain;
}

bool Domain::init() {
    cpuid::HardwareCpuid host;
    return stage2_.init() == stage2::Status::Ok &&
           cpuid_.init(host, {.vcpu_count = kMaxVcpus, .control_domain = control_, .domain_id = id_}) == cpuid::Status::Ok &&
           (events_ = heap().create<event::EventChannels>(id_, max_vcpus_, domains(),
                                                          static_cast<event::UpcallSink&>(*this))) &&
           (vcpus_[0] = heap().create<DomainVcpu>(*this, 0u));
}

void Domain::destroy(Domain* domain) {
    if (domain && domain->scheduled_) scheduler::remove(*domain);
    heap().destroy(domain);
}

bool Domain::build_pvh(const u8* image, usize image_size, u64 ram_bytes, const pvh::Module* modules,
                       usize module_count) {
    const u64 frames = align_up(ram_bytes, 2 * MiB) / kFrameSize;
    (void)memory_.set_max_frames(frames);
    const u64 base = control_ ? populate_control_ram(image, image_size, frames) : 0;
    for (u64 gfn = base / kFrameSize; memory_.frames() < frames;) {
        const i64 added = memory_.populate_step(gfn, frames - memory_.frames());
        if (added < 0) {
            log::error("domain {}: no {} MiB of RAM for it ({})", name_, frames * kFrameSize / MiB, lamina_errno_name(added));
            return false;
        }
        gfn += static_cast<u64>(added);
    }
    // Below its RAM (a 1:1 control domain's) there is none: the memory map says so.
    const pvh::Region below_ram{0, base, pvh::MemoryType::Reserved};
    const pvh::BuildRequest request{
        .kernel = image,
        .kernel_size = image_size,
        .ram_bytes = base + frames * kFrameSize,
        .modules = modules,
        .module_count = module_count,
        .regions = base ? &below_ram : nullptr,
        .region_count = base ? 1u : 0u,
        .flags = control_ ? pvh::kFlagPrivileged | pvh::kFlagInitialDomain : 0u,
    };
    pvh::Layout layout{};
    const pvh::Result built = pvh::build(request, *this, layout);
    if (!built.ok()) {
        char reason[160];
        BufferSink sink(reason, sizeof reason);
        pvh::describe(sink, built);
        log::error("domain {}: not a loadable PVH kernel: {}", name_, reason);
        return false;
    }
    start_context_[0] = make_entry_state(EntryMode::Protected32, layout.entry.rip, layout.entry.rbx, layout.entry.rsp);
    has_start_context_[0] = true;
    if (!vcpus_[0]->start(start_context_[0], tlb_tag_)) {
        log::error("domain {}: its vCPU could not be created", name_);
        return false;
    }
    return true;
}

// The control domain's RAM is 1:1 (guest-physical = host-physical), so that the devices it will
// drive can DMA to what it gives them; it starts where its kernel is linked (2 MiB aligned) and
// must end below 2 GiB, where its toolstack maps other domains' frames. Returns where it starts;
// 0, with the RAM still to be populated, when those host frames are not free: Dom0 then boots
// with RAM from 0 like any domain, which is logged.
u64 Domain::populate_control_ram(const u8* image, usize image_size, u64 frames) {
    constexpr u64 kControlRamEnd = 2 * GiB;
    elf::Image kernel;
    if (!elf::parse(image, image_size, kernel).ok()) return 0;  // build_pvh says what is wrong
    const u64 base = align_down(kernel.lowest_address, 2 * MiB);
    if (base + frames * kFrameSize > kControlRamEnd) {
        log::warn("domain {}: {} MiB from {:#x} would reach past 2 GiB; its RAM is not 1:1", name_,
                  frames * kFrameSize / MiB, base);
        return 0;
    }
    const i64 added = memory_.populate_identity(base / kFrameSize, frames);
    if (added < 0) {
        log::warn("domain {}: host RAM at {:#x}-{:#x} is not free ({}); its RAM is not 1:1", name_, base,
                  base + frames * kFrameSize, lamina_errno_name(added));
        return 0;
    }
    log::info("domain {}: RAM 1:1 at {:#x}-{:#x}", name_, base, base + frames * kFrameSize);
    return base;
}

u32 Domain::online_vcpus() const {
    u32 online = 0;
    for (u32 i = 0; i < max_vcpus_; ++i) online += vcpus_[i] && vcpus_[i]->started() && !vcpus_[i]->down;
    return online;
}

u64 Domain::exits() const {
    u64 total = 0;
    for (const DomainVcpu* vcpu : vcpus_) total += vcpu ? vcpu->exits() : 0;
    return total;
}

u64 Domain::cpu_time_ns() const { return scheduled_ ? scheduler::policy().stats(sched).run_ns : 0; }

i64 Domain::set_max_vcpus(u32 count) {
    if (state_ != LAMINA_DOMAIN_BUILDING) return error(LAMINA_EBUSY);
    if (count == 0 || count > kMaxVcpus) return error(LAMINA_EINVAL);
    for (u32 i = 0; i < count; ++i) {
        if (vcpus_[i]) continue;
        vcpus_[i] = heap().create<DomainVcpu>(*this, i);
        if (!vcpus_[i]) return error(LAMINA_ENOMEM);
        if (scheduled_ && !scheduler::add_vcpu(*vcpus_[i])) return error(LAMINA_ENOMEM);
    }
    // Fewer than before: the extra vCPUs were never started (BUILDING), so they simply go.
    for (u32 i = count; i < kMaxVcpus; ++i) {
        if (!vcpus_[i]) continue;
        if (scheduled_) scheduler::policy().remove_vcpu(vcpus_[i]->sched);
        heap().destroy(vcpus_[i]);
        vcpus_[i] = nullptr;
        has_start_context_[i] = false;
    }
    max_vcpus_ = count;
    events_->set_vcpu_count(count);
    return 0;
}

namespace {

// A context of domain_set_vcpu_context or vcpu_up as the vCPU's entry state: false (-EINVAL) when
// it breaks one of vcpu.h's rules. The guest's paging is the host CPU's, with its MAXPHYADDR.
bool entry_state_of(const lamina_vcpu_context& context, EntryState* entry) {
    return hypercall::entry_state_from_context(context, x86::cpu_features().physical_address_bits, entry);
}

}  // namespace

i64 Domain::set_vcpu_context(u32 index, const lamina_vcpu_context& context) {
    if (state_ != LAMINA_DOMAIN_BUILDING) return error(LAMINA_EBUSY);
    if (index >= max_vcpus_ || !entry_state_of(context, &start_context_[index])) return error(LAMINA_EINVAL);
    has_start_context_[index] = true;
    return 0;
}

i64 Domain::vcpu_up(u32 index, const lamina_vcpu_context& context) {
    DomainVcpu* target = vcpu(index);
    if (!target) return error(LAMINA_EINVAL);
    if (target->started() && !target->down) return error(LAMINA_EBUSY);
    EntryState entry;
    if (!entry_state_of(context, &entry)) return error(LAMINA_EINVAL);
    if (!target->restart(entry, tlb_tag_)) return error(LAMINA_ENOMEM);
    if (scheduled_) scheduler::update(*target);
    return 0;
}

i64 Domain::vcpu_down(u32 index) {
    DomainVcpu* target = vcpu(index);
    if (!target || !target->started() || target->down) return error(LAMINA_EINVAL);
    if (online_vcpus() == 1) return error(LAMINA_EBUSY);
    target->down = true;
    if (scheduled_) scheduler::update(*target);
    return 0;
}

i64 Domain::unpause() {
    if (state_ == LAMINA_DOMAIN_BUILDING) {
        if (!has_start_context_[0]) return error(LAMINA_EINVAL);  // vCPU 0 has nowhere to start
        if (memory_.frames() == 0) return error(LAMINA_EINVAL);
        for (u32 i = 0; i < max_vcpus_; ++i) {
            if (has_start_context_[i] && !vcpus_[i]->start(start_context_[i], tlb_tag_)) return error(LAMINA_ENOMEM);
        }
    } else if (state_ != LAMINA_DOMAIN_PAUSED) {
        return error(LAMINA_EINVAL);
    }
    set_state(LAMINA_DOMAIN_RUNNING);
    return 0;
}

i64 Domain::pause() {
    if (state_ != LAMINA_DOMAIN_RUNNING) return error(LAMINA_EINVAL);
    set_state(LAMINA_DOMAIN_PAUSED);
    return 0;
}

void Domain::set_state(lamina_domain_state state) {
    state_ = state;
    update_vcpus();
}

void Domain::update_vcpus() {
    if (!scheduled_) return;
    for (u32 i = 0; i < max_vcpus_; ++i) {
        if (vcpus_[i]) scheduler::update(*vcpus_[i]);
    }
}

void Domain::shutdown(u32 reason) {
    if (state_ == LAMINA_DOMAIN_SHUTTING_DOWN || state_ == LAMINA_DOMAIN_DYING) return;
    shutdown_reason_ = reason <= LAMINA_SHUTDOWN_CRASH ? reason : LAMINA_SHUTDOWN_CRASH;
    if (end_ == GuestEnd::Running) end_ = GuestEnd::Shutdown;
    log::info("domain {} ({}): shut down ({})", id_, name_, kShutdownReasons[shutdown_reason_]);
    set_state(LAMINA_DOMAIN_SHUTTING_DOWN);
    if (scheduled_) domains().domain_shut_down(*this);
}

void Domain::fault(DomainVcpu& vcpu, GuestEnd why, const ExitInfo& exit) {
    end_ = why;
    faulted_ = true;
    Vcpu& hw = vcpu.hardware();
    lamina_fault_report& r = fault_report_;
    r = {};
    r.vcpu = vcpu.index();
    r.exit_reason = hypercall::abi_exit_reason(exit.reason);
    r.hardware_code = exit.hardware_code;
    r.qualification = exit.qualification;
    if (exit.reason == ExitReason::Stage2Fault) r.guest_physical = exit.stage2.guest_physical;
    if (exit.reason == ExitReason::Exception) {
        r.vector = exit.exception.vector;
        r.has_error_code = exit.exception.has_error_code;
        r.error_code = exit.exception.error_code;
    }
    r.cr0 = hw.control_register(ControlRegister::Cr0);
    r.cr2 = hw.control_register(ControlRegister::Cr2);
    r.cr3 = hw.control_register(ControlRegister::Cr3);
    r.cr4 = hw.control_register(ControlRegister::Cr4);
    r.efer = hw.efer();
    u64* regs = &r.regs.rax;  // lamina_cpu_registers is the encoding order, as Gpr
    for (usize i = 0; i < kGprCount; ++i) regs[i] = hw.gpr(static_cast<Gpr>(i));
    r.regs.rip = hw.rip();
    r.regs.rflags = hw.rflags();
    BufferSink reason(r.reason, sizeof r.reason);
    format(reason, "{}", guest_end_name(why));
    if (why == GuestEnd::BadMmio) {
        format(reason, ": {}", emulate::mmio_status_name(vcpu.exit_handler().mmio_failure().status));
    } else if (exit.reason == ExitReason::InvalidState && exit.failure) {
        format(reason, ": {}", exit.failure);
    }
    r.reason[sizeof r.reason - 1] = '\0';

    // The report an operator gets on the hypervisor's console too.
    log::info("domain {} ({}): ended: {} ({} exit, hardware code {:#x}, qualification {:#x})", id_, name_, r.reason,
              exit_reason_name(exit.reason), exit.hardware_code, exit.qualification);
    if (why == GuestEnd::Stage2Fault)
        log::info("domain {}: guest-physical {:#x} ({}{}{})", id_, exit.stage2.guest_physical, exit.stage2.read ? "r" : "",
                  exit.stage2.write ? "w" : "", exit.stage2.execute ? "x" : "");
    log::info("domain {}: rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}", id_, r.regs.rip,
              r.regs.rsp, r.regs.rflags, r.cr0, r.cr3, r.cr4, r.efer);
    log::info("domain {}: rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}", id_, r.regs.rax,
              r.regs.rbx, r.regs.rcx, r.regs.rdx, r.regs.rsi, r.regs.rdi, r.regs.rbp);
    shutdown(LAMINA_SHUTDOWN_CRASH);
}

void Domain::info(lamina_domain_info& out) const {
    out = {};
    out.domid = id_;
    out.flags = (control_ ? LAMINA_DOMAIN_CONTROL : 0u) | (faulted_ ? LAMINA_DOMAIN_FAULTED : 0u);
    out.kind = LAMINA_DOMAIN_PVH;
    out.state = state_;
    out.shutdown_reason = shutdown_reason_;
    out.max_vcpus = max_vcpus_;
    out.online_vcpus = online_vcpus();
    out.max_pages = memory_.max_frames();
    out.pages = memory_.frames();
    out.cpu_time_ns = cpu_time_ns();
    str::copy_bounded(out.name, name_, sizeof out.name);
}

void Domain::exit_stats(lamina_exit_stats& out) const {
    out = {};
    out.reason_count = LAMINA_EXIT_REASON_COUNT;
    for (const DomainVcpu* vcpu : vcpus_) {
        if (!vcpu) continue;
        for (u8 reason = 0; reason < DomainVcpu::kExitReasons; ++reason) {
            const u64 count = vcpu->exits_by_reason(static_cast<ExitReason>(reason));
            out.exits[hypercall::abi_exit_reason(static_cast<ExitReason>(reason))] += count;
            out.total += count;
        }
    }
}

i64 Domain::set_console(u64 ring_gfn, u32 control_port) {
    Domain* control = domains().control_domain();
    if (!control || !memory_.host_frame(ring_gfn)) return error(LAMINA_EINVAL);
    if (const i64 bound = control->events().bind_to_hypervisor(control_port, id_); bound < 0) return bound;
    console_ring_gfn_ = ring_gfn;
    console_port_ = control_port;
    return 0;
}

// The ring's indices are in the domain's RAM: the domain may have written anything there. Only
// the positions modulo the size are used, and a ring that looks full drops the byte.
Domain::ConsoleAppend Domain::append_to_console_ring(char c) {
    auto* ring = static_cast<lamina_console_ring*>(guest_memory(console_ring_gfn_ * kFrameSize, sizeof(lamina_console_ring)));
    if (!ring) return ConsoleAppend::Dropped;
    auto& prod = reinterpret_cast<Atomic<u32>&>(ring->out_prod);
    const u32 producer = prod.load(MemoryOrder::Relaxed);
    const u32 consumer = reinterpret_cast<Atomic<u32>&>(ring->out_cons).load(MemoryOrder::Acquire);
    if (producer - consumer >= LAMINA_CONSOLE_RING_OUT_SIZE) {
        ++console_dropped_;
        return ConsoleAppend::Dropped;
    }
    ring->out[producer % LAMINA_CONSOLE_RING_OUT_SIZE] = c;
    prod.store(producer + 1, MemoryOrder::Release);
    return producer + 1 - consumer == LAMINA_CONSOLE_RING_OUT_SIZE ? ConsoleAppend::Filled : ConsoleAppend::Appended;
}

void Domain::console_byte(char c) {
    if (console_port_) {
        // One event per line keeps the control domain's wake-ups few; one more when the ring
        // fills, since what comes next is dropped until the consumer makes room.
        const ConsoleAppend appended = append_to_console_ring(c);
        if (appended == ConsoleAppend::Filled || (appended == ConsoleAppend::Appended && c == '\n'))
            domains().control_domain()->events().raise_from_hypervisor(console_port_);
    }
    GuestConsole& con = console_;
    if (c != '\n' && con.length < sizeof(con.line) - 1) {
        if (c != '\r') con.line[con.length++] = c;
        return;
    }
    con.line[con.length] = '\0';
    if (relay_stats_ && str::starts_with(con.line, "stat ")) log::print("LAMINA STAT {}\n", con.line + 5);
    // Domains with a console ring are Dom0's to show; the others' lines go to the log.
    if (!console_port_) log::info("guest {}: {}", name_, con.line);
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

GuestEnd Domain::run_alone(u64 max_exits) {
    LAMINA_ASSERT(!scheduled_);
    if (state_ == LAMINA_DOMAIN_BUILDING) state_ = LAMINA_DOMAIN_RUNNING;
    DomainVcpu& vcpu = *vcpus_[0];
    for (;;) {
        if (end_ != GuestEnd::Running) return end_;
        const VcpuStop stop = vcpu.run(max_exits);
        this_cpu()->reschedule_pending.store(false, MemoryOrder::Relaxed);
        if (stop == VcpuStop::ExitBudget) return GuestEnd::ExitBudget;
        if (stop != VcpuStop::Blocked) continue;
        // Asleep, with this CPU to itself: halt until its timer, or end it if it has none
        // (nothing else could ever wake it).
        x86::disable_interrupts();
        while (!vcpu.take_event() && !vcpu.has_work()) {
            const u64 deadline = vcpu.timer_deadline();
            if (!deadline) {
                end_ = GuestEnd::Halted;
                break;
            }
            const u64 now = time::now_ns();
            apic::arm_timer(deadline > now ? deadline - now : 0);
            // STI's shadow covers HLT: the timer cannot fire between the two and be missed.
            x86::enable_interrupts_and_halt();
            x86::disable_interrupts();
        }
        apic::stop_timer();
        x86::enable_interrupts();
    }
}

bool Domain::protect(u64 gpa, u64 size, stage2::Stage2Access access) {
    // The vCPU flushes at its next entry (the stage-2 generation moved); it is not running now,
    // as this is called on its CPU between runs or from one of its exits.
    return stage2_.protect(gpa, size, access).ok();
}

bool Domain::claim_mmio(u64 gpa, u64 size, emulate::MmioHandler& device) {
    u64 end;
    if (add_overflows(gpa, size, &end) || memory_.overlaps(gpa / kFrameSize, align_up(end, kFrameSize) / kFrameSize - gpa / kFrameSize))
        return false;
    return mmio_.claim(gpa, size, device) == RangeStatus::Ok;
}

bool Domain::map_host_device(u64 base, u64 size) {
    if (memory_.overlaps(base / kFrameSize, size / kFrameSize)) return false;
    return stage2_.map(base, base, size, {.read = true, .write = true}, stage2::CacheType::Uncacheable).ok();
}

bool Domain::read(u64 gpa, void* out, usize size) {
    const void* ram = guest_memory(gpa, size);
    if (!ram) return false;
    str::copy_bytes(out, ram, size);
    return true;
}

bool Domain::write(u64 gpa, const void* data, usize size) {
    void* ram = guest_memory(gpa, size);
    if (ram) str::copy_bytes(ram, data, size);
    return ram != nullptr;
}

bool Domain::zero(u64 gpa, u64 size) {
    void* ram = guest_memory(gpa, size);
    if (ram) str::fill_bytes(ram, 0, size);
    return ram != nullptr;
}

// An event became pending for one of its vCPUs: that vCPU wakes and, when the guest set an
// upcall vector, takes that interrupt.
void Domain::upcall(u32 vcpu, u8 vector) {
    if (DomainVcpu* target = this->vcpu(vcpu)) target->notify(vector, true);
}

void Domain::reclaim_stage2_tables() {
    u64 flushed = stage2_.generation();
    for (const DomainVcpu* vcpu : vcpus_) {
        if (vcpu && vcpu->started()) flushed = min(flushed, vcpu->hardware().flushed_stage2_generation());
    }
    stage2_.reclaim(flushed);
}

Domain::ForeignMapping* Domain::free_foreign_entry(u64 local_gfn, u64 count, i64* result) {
    u64 local_end;
    if (count == 0 || add_overflows(local_gfn, count, &local_end) ||
        local_end > (u64{1} << (virt::summary().physical_address_bits - 12)) || memory_.overlaps(local_gfn, count)) {
        *result = error(LAMINA_EINVAL);
        return nullptr;
    }
    ForeignMapping* free_entry = nullptr;
    for (ForeignMapping& m : foreign_) {
        if (!m.count) {
            free_entry = free_entry ? free_entry : &m;
        } else if (local_gfn < m.local_gfn + m.count && m.local_gfn < local_end) {
            *result = error(LAMINA_EEXIST);
            return nullptr;
        }
    }
    if (!free_entry) *result = error(LAMINA_ENOSPC);
    return free_entry;
}

// This domain's vCPUs flush the translations at their next entry (the generation moved): on
// the one CPU that runs domains, before the target's frames can be freed and reused.
void Domain::remove_mapping(ForeignMapping& m) {
    (void)stage2_.unmap(m.local_gfn * kFrameSize, m.count * kFrameSize);
    if (m.grant_ref != kNotGranted) --m.target->grants_[m.grant_ref].mappings;
    m = {};
}

i64 Domain::map_foreign(Domain& target, u64 first_gfn, u64 count, u64 local_gfn) {
    reclaim_stage2_tables();
    u64 target_end;
    i64 result = 0;
    ForeignMapping* free_entry = free_foreign_entry(local_gfn, count, &result);
    if (!free_entry) return result;
    if (add_overflows(first_gfn, count, &target_end)) return error(LAMINA_EINVAL);
    for (u64 i = 0; i < count; ++i) {
        if (!target.memory_.host_frame(first_gfn + i)) return error(LAMINA_EINVAL);
    }
    // Runs of contiguous host frames, each one stage-2 mapping (large pages where they line up).
    for (u64 done = 0; done < count;) {
        const u64 hpa = target.memory_.host_frame(first_gfn + done);
        u64 run = 1;
        while (done + run < count && target.memory_.host_frame(first_gfn + done + run) == hpa + run * kFrameSize) ++run;
        if (!stage2_.map((local_gfn + done) * kFrameSize, hpa, run * kFrameSize, {.read = true, .write = true}).ok()) {
            (void)stage2_.unmap(local_gfn * kFrameSize, done * kFrameSize);
            return error(LAMINA_ENOMEM);
        }
        done += run;
    }
    *free_entry = {local_gfn, count, &target, kNotGranted};
    return 0;
}

// Whole mappings only: a range that cuts one is refused, so that the accounting stays exact.
i64 Domain::unmap_foreign(u64 local_gfn, u64 count) {
    reclaim_stage2_tables();
    u64 end;
    if (count == 0 || add_overflows(local_gfn, count, &end)) return error(LAMINA_EINVAL);
    bool found = false;
    for (const ForeignMapping& m : foreign_) {
        if (!m.count || m.local_gfn >= end || local_gfn >= m.local_gfn + m.count) continue;
        if (m.grant_ref != kNotGranted || m.local_gfn < local_gfn || m.local_gfn + m.count > end)
            return error(LAMINA_EINVAL);
        found = true;
    }
    if (!found) return error(LAMINA_EINVAL);
    for (ForeignMapping& m : foreign_) {
        if (m.count && m.local_gfn >= local_gfn && m.local_gfn + m.count <= end) remove_mapping(m);
    }
    return 0;
}

i64 Domain::grant(u64 gfn, u16 remote, u32 flags) {
    if ((flags & ~LAMINA_SHARE_READONLY) || !memory_.host_frame(gfn) || remote == id_ || remote > LAMINA_DOMID_MAX)
        return error(LAMINA_EINVAL);
    if (!grants_) {
        grants_ = static_cast<Grant*>(heap().allocate(LAMINA_SHARED_PAGE_GRANTS * sizeof(Grant)));
        if (!grants_) return error(LAMINA_ENOMEM);
        str::fill_bytes(grants_, 0, LAMINA_SHARED_PAGE_GRANTS * sizeof(Grant));
    }
    for (u32 ref = 0; ref < LAMINA_SHARED_PAGE_GRANTS; ++ref) {
        if (grants_[ref].in_use) continue;
        grants_[ref] = {gfn, remote, (flags & LAMINA_SHARE_READONLY) != 0, true, 0};
        return ref;
    }
    return error(LAMINA_ENOSPC);
}

// A reference past the table is EINVAL; one in it with no grant behind it is ENOENT (errno.h:
// "no such grant").
i64 Domain::revoke(u32 ref) {
    if (ref >= LAMINA_SHARED_PAGE_GRANTS) return error(LAMINA_EINVAL);
    if (!grants_ || !grants_[ref].in_use) return error(LAMINA_ENOENT);
    if (grants_[ref].mappings) return error(LAMINA_EBUSY);
    grants_[ref] = {};
    return 0;
}

i64 Domain::map_grant(Domain& granter, u32 ref, u64 local_gfn) {
    reclaim_stage2_tables();
    if (ref >= LAMINA_SHARED_PAGE_GRANTS) return error(LAMINA_EINVAL);
    if (!granter.grants_) return error(LAMINA_ENOENT);
    Grant& g = granter.grants_[ref];
    if (!g.in_use || g.remote != id_) return error(LAMINA_ENOENT);
    i64 result = 0;
    ForeignMapping* entry = free_foreign_entry(local_gfn, 1, &result);
    if (!entry) return result;
    const u64 hpa = granter.memory_.host_frame(g.gfn);
    if (!stage2_.map(local_gfn * kFrameSize, hpa, kFrameSize, {.read = true, .write = !g.readonly}).ok())
        return error(LAMINA_ENOMEM);
    *entry = {local_gfn, 1, &granter, ref};
    ++g.mappings;
    return 0;
}

i64 Domain::unmap_grant(u64 local_gfn) {
    reclaim_stage2_tables();
    for (ForeignMapping& m : foreign_) {
        if (m.count && m.grant_ref != kNotGranted && m.local_gfn == local_gfn) {
            remove_mapping(m);
            return 0;
        }
    }
    return error(LAMINA_EINVAL);
}

bool Domain::maps_frames_of(const Domain& target) const {
    for (const ForeignMapping& m : foreign_) {
        if (m.count && m.target == &target) return true;
    }
    return false;
}

void Domain::drop_mappings_of(const Domain& target) {
    for (ForeignMapping& m : foreign_) {
        if (m.count && m.target == &target) remove_mapping(m);
    }
}

}  // namespace lamina
