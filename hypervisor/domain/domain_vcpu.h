// One virtual CPU of a domain: the backend's vCPU, its FPU state, its exit handling, its
// virtual interrupts and one-shot timer, and its place in the scheduler. It runs on the CPU
// that created it (VMX keeps its VMCS loaded there).
#pragma once

#include <arch/x86_64/extended_state.h>
#include <hypervisor/domain/vcpu_hypercalls.h>
#include <hypervisor/guest/exit_handler.h>
#include <hypervisor/guest/virtual_interrupts.h>
#include <hypervisor/sched/credit_scheduler.h>
#include <lamina/list.h>
#include <lamina/spinlock.h>

namespace lamina {

class Domain;

// Why DomainVcpu::run returned.
enum class VcpuStop : u8 {
    Preempted,   // its CPU has to reschedule (the timer, a wake-up); it can go on
    Blocked,     // it sleeps until an event or an interrupt is due (HLT, vcpu_block)
    Yielded,     // it offered its CPU to others
    Ended,       // its domain ended (the domain knows why), or HLT with interrupts off
    ExitBudget,  // it used the exits the caller allowed
};

class DomainVcpu final : private ExitHost {
public:
    DomainVcpu(Domain& domain, u32 index);
    ~DomainVcpu();
    DomainVcpu(const DomainVcpu&) = delete;
    DomainVcpu& operator=(const DomainVcpu&) = delete;

    // Creates the backend's vCPU on this CPU, in `entry` state. False (logged) when it cannot.
    bool start(const EntryState& entry, u16 tlb_tag);
    bool started() const { return hw_ != nullptr; }
    // A vCPU that went down (vcpu_down) starts again from `entry`, as a new one.
    bool restart(const EntryState& entry, u16 tlb_tag);

    // Runs the guest until the CPU must do something else (VcpuStop) or `max_exits` exits of
    // this vCPU have been handled in all.
    VcpuStop run(u64 max_exits);

    Domain& domain() const { return domain_; }
    u32 index() const { return index_; }
    static constexpr u8 kExitReasons = static_cast<u8>(ExitReason::Other) + 1;
    u64 exits() const { return exits_; }
    u64 exits_by_reason(ExitReason reason) const { return exits_by_reason_[static_cast<u8>(reason)]; }
    const ExitInfo& last_exit() const { return last_exit_; }
    Vcpu& hardware() const { return *hw_; }
    const ExitHandler& exit_handler() const { return exits_handler_; }

    // An event became pending for it: it wakes, and takes `vector` unless 0. An event its event
    // page shows (upcall_pending) keeps a later vcpu_block from sleeping only while the page
    // still shows it; any other (a timer with no VIRQ bound) makes the next one return at once.
    void notify(u8 vector, bool on_event_page = false);
    bool raise_interrupt(u8 vector) { return interrupts_.raise(vector); }
    // Its one-shot timer: once `deadline_ns` (time::now_ns) has passed an event is pending
    // (VIRQ_TIMER) and `vector`, unless 0, is raised; 0 disarms it. False for a vector no
    // interrupt may use.
    bool set_timer(u64 deadline_ns, u8 vector);
    u64 timer_deadline() const { return timer_deadline_ns_; }
    // Fires the timer if it is due at `now_ns`.
    void fire_timer_if_due(u64 now_ns);
    // Takes the pending event, if there is one (vcpu_block returns at once then).
    bool take_event();
    // After a Blocked stop: true once it sleeps (an event or interrupt wakes it), false when
    // one came in the meantime (it runs on).
    bool try_sleep();
    // Whether something would wake it now: an event or an interrupt it can take.
    bool has_work() const { return event_pending_ || interrupts_.pending(); }

    // For hypercall handlers: what becomes of the vCPU when the call returns.
    void request(GuestEnd next) { exits_handler_.request(next); }

    // The scheduler's part (hypervisor/sched/cpu_scheduler) and the CPU's timer list.
    static constexpr u32 kNoCpu = ~0u;
    sched::SchedVcpu sched;
    ListNode timer_link;
    u32 timer_cpu = kNoCpu;          // whose timer list it is on
    Atomic<u32> loaded_on{kNoCpu};   // the CPU running it, until that CPU releases it
    // Guards sleeping, runnable and the pending event against the CPUs that wake it.
    SpinLock state_lock;
    bool sleeping = false;   // blocked in HLT or vcpu_block
    bool halted = false;     // HLT with interrupts off: it never runs again
    bool down = false;       // vcpu_down: off until vcpu_up
    bool runnable = false;   // the scheduler has it as runnable (cpu_scheduler keeps this)

private:
    // ExitHost
    void load_xcr0(u64 value) override;
    void take_host_interrupts() override;
    void unclaimed_io(const IoExit& io, u64 count) override;
    u64 tsc() override;
    bool install_hypercall_page(u64 msr_value) override;

    Domain& domain_;
    const u32 index_;
    VcpuHypercalls hypercalls_;
    ExitHandler exits_handler_;
    VirtualInterrupts interrupts_;
    x86::ExtendedState fpu_;
    Vcpu* hw_ = nullptr;
    u64 timer_deadline_ns_ = 0;
    u8 timer_vector_ = 0;
    bool event_pending_ = false;
    u64 exits_ = 0;
    u64 exits_by_reason_[kExitReasons] = {};
    ExitInfo last_exit_{};
};

}  // namespace lamina
