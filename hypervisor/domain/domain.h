// A guest as the virtualization core runs it: RAM behind a stage-2 space, one vCPU, a CPUID
// policy and a console. It is the seed of the domain (domains, their ids, lifecycle and the
// hypercall ABI come with the domains issue); for now the self-test runs test kernels in it.
#pragma once

#include <arch/x86_64/extended_state.h>
#include <hypervisor/cpuid/cpuid_policy.h>
#include <hypervisor/event/event_channels.h>
#include <hypervisor/guest/exit_handler.h>
#include <hypervisor/guest/guest_hypercalls.h>
#include <hypervisor/guest/virtual_interrupts.h>
#include <hypervisor/stage2/frame_table_memory.h>
#include <hypervisor/vcpu.h>
#include <lamina/pvh_builder.h>

namespace lamina {

struct GuestConsole {
    char line[160];
    usize length = 0;
    u32 ok_lines = 0;
    u32 not_ok_lines = 0;
    u32 plan = 0;
    char first_failure[160] = {};
};

// Who a guest is to the hypercall ABI.
struct GuestIdentity {
    u16 domain_id = 1;
    bool control_domain = false;
};

class Guest final : private ExitHost,
                    private emulate::GuestPhysicalReader,
                    private pvh::GuestMemoryWriter,
                    private event::EventDomains,
                    private event::UpcallSink {
public:
    // Boots a PVH ELF kernel with `ram_bytes` of RAM (guest-physical 0 up). Null, with a logged
    // reason, when the image is malformed or memory is short; nothing leaks either way.
    static Guest* create_pvh(const char* name, const u8* image, usize image_size, u64 ram_bytes,
                             GuestIdentity identity = {});
    static void destroy(Guest* guest);

    // Lets this guest's "stat key=value" console lines through as LAMINA STAT lines (the
    // benchmark guest); any other guest's would be spoofed figures.
    void relay_stats() { relay_stats_ = true; }

    // Changes what the guest may do with its RAM at [gpa, gpa + size), in stage 2.
    bool protect(u64 gpa, u64 size, stage2::Stage2Access access);
    // Makes [gpa, gpa + size) a device region of this guest, emulated by `device`. The range
    // must not be RAM (RAM never faults, so the device would never see an access).
    bool claim_mmio(u64 gpa, u64 size, emulate::MmioHandler& device);

    // Raises `vector` at the vCPU; false for a vector no interrupt may use.
    bool raise_interrupt(u8 vector) { return interrupts_.raise(vector); }
    // The vCPU's one-shot timer: once `deadline_ns` (time::now_ns) has passed, an event is
    // pending for the vCPU (it wakes from vcpu_block) and `vector`, unless 0, is raised; a
    // deadline of 0 disarms it. False for a vector no interrupt may use.
    bool set_timer(u64 deadline_ns, u8 vector);

    // The exit that ended the guest (valid once it has ended).
    const ExitInfo& ending_exit() const { return ending_exit_; }

    // Runs until the guest ends (its end) or `max_exits` exits have been handled since it was
    // created (ExitBudget; a later call goes on from there).
    GuestEnd run(u64 max_exits);

    const char* name() const { return name_; }
    // Why it shut itself down (enum lamina_shutdown_reason), once its end is Shutdown.
    u32 shutdown_reason() const { return shutdown_reason_; }
    GuestEnd end() const { return end_; }
    const GuestConsole& console() const { return console_; }
    u64 exits() const { return exits_; }

    // Use create_pvh/destroy; public only for the object allocator.
    Guest(const char* name, u64 ram_hpa, u64 ram_bytes, GuestIdentity identity);
    ~Guest();

private:
    friend class GuestHypercalls;

    bool load_pvh(const u8* image, usize image_size, bool control_domain, EntryState* entry);
    void* guest_memory(u64 gpa, u64 size);
    void finish(GuestEnd why, const ExitInfo& exit);
    bool wait_for_interrupt();
    void arm_host_timer(u64 wake_ns);
    void disarm_host_timer();
    void check_timer();
    // Takes the vCPU's pending event (its timer fired), if there is one.
    bool take_event();
    void console_byte(char c);
    // ExitHost
    void load_xcr0(u64 value) override;
    void take_host_interrupts() override;
    void unclaimed_io(const IoExit& io, u64 count) override;
    u64 tsc() override;
    bool install_hypercall_page(u64 msr_value) override;
    // GuestPhysicalReader
    bool read(u64 gpa, void* out, usize size) override;
    // pvh::GuestMemoryWriter
    bool write(u64 gpa, const void* data, usize size) override;
    bool zero(u64 gpa, u64 size) override;
    // event::EventDomains: only itself, until the domain table knows the others.
    event::EventChannels* find(u16 domid) override;
    // event::UpcallSink
    void upcall(u32 vcpu, u8 vector) override;

    const char* name_;
    u64 ram_hpa_;
    u64 ram_bytes_;
    const bool control_domain_;
    const u16 domain_id_;
    stage2::GuestSpace stage2_;
    cpuid::CpuidPolicy cpuid_;
    // Port 0xE9, the Bochs/QEMU/Xen debug-console convention: writes are the guest's console,
    // reads answer 0xE9 so a guest can tell the console is there.
    class DebugConsole final : public IoPortHandler {
    public:
        static constexpr u16 kPort = 0xe9;
        explicit DebugConsole(Guest& guest) : guest_(guest) {}
        u32 read(u16, u8) override { return kPort; }
        void write(u16, u8 size, u32 value) override {
            for (u8 i = 0; i < size; ++i) guest_.console_byte(static_cast<char>(value >> (8 * i)));
        }

    private:
        Guest& guest_;
    };
    DebugConsole debug_console_{*this};
    IoPortMap ports_;
    emulate::MmioMap mmio_;
    GuestHypercalls hypercalls_{*this};
    event::EventChannels* events_ = nullptr;  // ~100 KiB: its own allocation
    ExitHandler exits_handler_;
    VirtualInterrupts interrupts_;
    u64 timer_deadline_ns_ = 0;
    u8 timer_vector_ = 0;
    bool event_pending_ = false;
    bool host_timer_armed_ = false;
    u32 shutdown_reason_ = 0;
    x86::ExtendedState fpu_;
    Vcpu* vcpu_ = nullptr;
    GuestConsole console_;
    GuestEnd end_ = GuestEnd::Running;
    u64 exits_ = 0;
    bool relay_stats_ = false;
    ExitInfo ending_exit_{};
};

}  // namespace lamina
