#include <hypervisor/domain/domain_vcpu.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/domain/domain.h>
#include <hypervisor/heap.h>
#include <hypervisor/hypercall/hypercall_page.h>
#include <hypervisor/log.h>
#include <hypervisor/percpu.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <lamina/abi/event_channel.h>

namespace lamina {
namespace {

// The guest's paging is the host CPU's: its MAXPHYADDR and 1 GiB pages.
emulate::PagingFeatures guest_paging_features() {
    const x86::CpuFeatures& cpu = x86::cpu_features();
    return {.physical_address_bits = cpu.physical_address_bits, .pages_1g = cpu.pages_1g};
}

}  // namespace

DomainVcpu::DomainVcpu(Domain& domain, u32 index)
    : domain_(domain), index_(index), hypercalls_(*this),
      exits_handler_({domain.cpuid_, domain.ports_, domain.mmio_, domain, guest_paging_features(), hypercalls_,
                      domain.id(), domain.is_control()},
                     *this, index) {}

DomainVcpu::~DomainVcpu() {
    if (hw_) virt::destroy_vcpu(hw_);
    fpu_.destroy();
}

bool DomainVcpu::start(const EntryState& entry, u16 tlb_tag) {
    if (hw_) return true;
    if (!fpu_.init()) return false;
    hw_ = virt::create_vcpu({domain_.stage2_.root(), &domain_.stage2_.generation_counter()}, tlb_tag, entry);
    // Made on the calling CPU; the scheduler may run it on any.
    if (hw_ && domain_.is_scheduled()) hw_->release();
    return hw_ != nullptr;
}

bool DomainVcpu::restart(const EntryState& entry, u16 tlb_tag) {
    // The CPU that ran it last holds it until its next scheduling decision (vcpu_down asked
    // for one), which may come after the vCPU stopped: its state goes only once that CPU let go.
    while (loaded_on.load(MemoryOrder::Acquire) != kNoCpu) cpu_relax();
    if (hw_) virt::destroy_vcpu(hw_);
    hw_ = nullptr;
    fpu_.destroy();  // start() makes a new one, in the init state
    set_timer(0, 0);
    interrupts_.clear();
    event_pending_ = sleeping = halted = down = false;
    return start(entry, tlb_tag);
}

VcpuStop DomainVcpu::run(u64 max_exits) {
    x86::disable_interrupts();
    // Neither XCR0 nor the FPU/SSE/AVX registers are switched by VM entry or exit: the guest's
    // are loaded while it runs, and saved and scrubbed when it stops.
    fpu_.load(exits_handler_.xcr0());
    PerCpu& cpu = *this_cpu();
    VcpuStop stop = VcpuStop::ExitBudget;
    while (exits_ < max_exits) {
        if (interrupts_.pending()) [[unlikely]] interrupts_.deliver(*hw_);
        const ExitInfo exit = hw_->run();
        ++exits_;
        ++exits_by_reason_[static_cast<u8>(exit.reason)];
        const GuestEnd end = exits_handler_.handle(*hw_, exit);
        if (end == GuestEnd::Running) [[likely]] {
            if (cpu.reschedule_pending.load(MemoryOrder::Relaxed)) [[unlikely]] {
                stop = VcpuStop::Preempted;
                break;
            }
            continue;
        }
        last_exit_ = exit;
        if (end == GuestEnd::Blocked) {
            if (take_event() || interrupts_.pending()) continue;
            stop = VcpuStop::Blocked;
            break;
        }
        if (end == GuestEnd::Yielded) {
            stop = VcpuStop::Yielded;
            break;
        }
        if (end == GuestEnd::Halted) {
            // HLT with interrupts off: nothing wakes it (no NMIs are sent to guests).
            halted = true;
            if (domain_.end_ == GuestEnd::Running) domain_.end_ = GuestEnd::Halted;
            if (domain_.is_scheduled()) scheduler::update(*this);
        } else if (end != GuestEnd::Shutdown) {  // a shutdown call ended the domain already
            domain_.fault(*this, end, exit);
        }
        stop = VcpuStop::Ended;
        break;
    }
    fpu_.save_and_scrub();
    x86::enable_interrupts();
    return stop;
}

bool DomainVcpu::set_timer(u64 deadline_ns, u8 vector) {
    if (vector && vector < VirtualInterrupts::kFirstVector) return false;
    timer_deadline_ns_ = deadline_ns;
    timer_vector_ = vector;
    if (deadline_ns && deadline_ns <= time::now_ns()) {
        fire_timer_if_due(deadline_ns);  // due already: pending from now on
    } else if (domain_.is_scheduled()) {
        scheduler::timer_changed(*this);
    }
    return true;
}

void DomainVcpu::fire_timer_if_due(u64 now_ns) {
    if (!timer_deadline_ns_ || now_ns < timer_deadline_ns_) return;
    timer_deadline_ns_ = 0;
    if (domain_.is_scheduled()) scheduler::timer_changed(*this);
    if (timer_vector_) interrupts_.raise(timer_vector_);
    if (!domain_.events_->raise_virq(LAMINA_VIRQ_TIMER, index_)) notify(0);
}

void DomainVcpu::notify(u8 vector, bool on_event_page) {
    if (vector) interrupts_.raise(vector);
    {
        LockGuard guard(state_lock);
        if (!sleeping) {
            // Its next vcpu_block returns at once: through the page (pending_for) while the guest
            // has not taken the event there, else through this.
            if (!on_event_page) event_pending_ = true;
            return;
        }
        // The event ends the sleep it was waiting in: nothing stays pending for the next one.
        sleeping = false;
    }
    if (domain_.is_scheduled()) scheduler::update(*this);
}

bool DomainVcpu::take_event() {
    fire_timer_if_due(time::now_ns());
    LockGuard guard(state_lock);
    const bool pending = event_pending_ || domain_.events_->pending_for(index_);
    event_pending_ = false;
    return pending;
}

bool DomainVcpu::try_sleep() {
    LockGuard guard(state_lock);
    if (event_pending_ || interrupts_.pending() || domain_.events_->pending_for(index_)) {
        event_pending_ = false;
        return false;
    }
    sleeping = true;
    return true;
}

void DomainVcpu::load_xcr0(u64 value) { x86::xsetbv(0, value); }

void DomainVcpu::take_host_interrupts() {
    // Interrupts stayed pending across the exit; a window of a few instructions lets them in.
    x86::open_interrupt_window();
    fire_timer_if_due(time::now_ns());
}

u64 DomainVcpu::tsc() { return x86::rdtsc(); }

// The MSR names the page's guest-physical address; bits 11:0 index the pages of a larger
// hypercall area, of which there is one page (CPUID 0x40000002 EAX).
bool DomainVcpu::install_hypercall_page(u64 msr_value) {
    if (msr_value & (hypercall::kPageSize - 1)) return false;
    auto* page = static_cast<u8(*)[hypercall::kPageSize]>(domain_.guest_memory(msr_value, hypercall::kPageSize));
    if (!page) return false;
    hypercall::write_hypercall_page(*page, virt::summary().vendor == virt::Vendor::Svm);
    return true;
}

void DomainVcpu::unclaimed_io(const IoExit& io, u64 count) {
    log::debug("domain {}: unclaimed port {:#x} ({} {} bytes), {} so far", domain_.name(), io.port,
               io.in ? "in" : "out", io.size, count);
}

}  // namespace lamina
