// A domain: an id and a name, a privilege, the RAM it owns behind its stage-2 space, its vCPUs,
// its event channels and console, and its life:
//
//   building -> paused <-> running -> shutting down -> dying -> gone
//
// (the ABI's lamina_domain_state). Dom0's toolstack builds one through the domain_* hypercalls;
// the hypervisor builds Dom0 and its self-test guests itself (build_pvh). A fault that ends a
// domain leaves a report (the exit and the vCPU's registers) for Dom0.
#pragma once

#include <hypervisor/cpuid/cpuid_policy.h>
#include <hypervisor/domain/domain_memory.h>
#include <hypervisor/domain/domain_vcpu.h>
#include <hypervisor/emulate/mmio.h>
#include <hypervisor/event/event_channels.h>
#include <hypervisor/guest/io_ports.h>
#include <hypervisor/sched/credit_scheduler.h>
#include <hypervisor/stage2/frame_table_memory.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/stats.h>
#include <lamina/abi/vcpu.h>
#include <lamina/pvh_builder.h>
#include <lamina/string.h>

namespace lamina {

// The last console line a domain wrote on its debug port, and the TAP-style counts the
// self-tests read (`ok`, `not ok`, `1..N`).
struct GuestConsole {
    char line[160];
    usize length = 0;
    u32 ok_lines = 0;
    u32 not_ok_lines = 0;
    u32 plan = 0;
    char first_failure[160] = {};
};

struct DomainParams {
    u16 id;
    const char* name;
    bool control = false;
    // Run by the CPU schedulers (Dom0's world); otherwise by run_alone() (self-tests, bench).
    bool scheduled = false;
    u16 tlb_tag = 1;  // VPID / ASID of its vCPUs
};

class Domain final : private emulate::GuestPhysicalReader,
                     private pvh::GuestMemoryWriter,
                     private event::UpcallSink {
public:
    static constexpr u32 kMaxVcpus = 8;

    // A BUILDING domain with no memory and one vCPU (not started); null when out of memory.
    static Domain* create(const DomainParams& params);
    // Frees everything it holds; its vCPUs must not be running or queued anywhere.
    static void destroy(Domain* domain);

    // The hypervisor's own builder: `ram_bytes` of RAM from guest-physical 0, the PVH kernel and
    // `modules` loaded (pvh_builder.h), vCPU 0 set to start there. False, logged, on failure.
    bool build_pvh(const u8* image, usize image_size, u64 ram_bytes, const pvh::Module* modules = nullptr,
                   usize module_count = 0);

    u16 id() const { return id_; }
    const char* name() const { return name_; }
    bool is_control() const { return control_; }
    bool is_scheduled() const { return scheduled_; }
    lamina_domain_state state() const { return state_; }
    u32 shutdown_reason() const { return shutdown_reason_; }
    // How it ended, in exit-handling terms (Running while it has not).
    GuestEnd end() const { return end_; }

    DomainMemory& memory() { return memory_; }
    const DomainMemory& memory() const { return memory_; }
    // Guest-physical [gpa, gpa + size) in its RAM, for hypercall buffers; null if not all RAM.
    void* guest_memory(u64 gpa, u64 size) const { return memory_.translate(gpa, size); }
    // A structure of the domain's, copied in before it is checked (the guest may change its
    // memory while a call runs), or copied out whole. False when it is not all RAM (EFAULT).
    template <typename T>
    bool copy_from_guest(u64 gpa, T* out) const {
        const void* in = guest_memory(gpa, sizeof(T));
        if (in) str::copy_bytes(out, in, sizeof(T));
        return in != nullptr;
    }
    template <typename T>
    bool copy_to_guest(u64 gpa, const T& value) const {
        void* out = guest_memory(gpa, sizeof(T));
        if (out) str::copy_bytes(out, &value, sizeof(T));
        return out != nullptr;
    }
    event::EventChannels& events() { return *events_; }

    u32 max_vcpus() const { return max_vcpus_; }
    u32 online_vcpus() const;
    DomainVcpu* vcpu(u32 index) const { return index < max_vcpus_ ? vcpus_[index] : nullptr; }

    // Domain control (the checks and answers of the domain_* hypercalls).
    i64 set_max_vcpus(u32 count);
    i64 set_vcpu_context(u32 index, const lamina_vcpu_context& context);
    // vcpu_up / vcpu_down of the domain itself.
    i64 vcpu_up(u32 index, const lamina_vcpu_context& context);
    i64 vcpu_down(u32 index);
    i64 unpause();
    i64 pause();
    // Ends it with `reason` (enum lamina_shutdown_reason): its vCPUs stop, and the control
    // domain hears of it (VIRQ_DOMAIN_DIED). From its own shutdown call or from Dom0.
    void shutdown(u32 reason);
    // Destruction begins: DYING, and its vCPUs stop being scheduled.
    void begin_dying() { set_state(LAMINA_DOMAIN_DYING); }
    // A fault ended it: keeps the report and shuts it down as crashed.
    void fault(DomainVcpu& vcpu, GuestEnd why, const ExitInfo& exit);
    bool faulted() const { return faulted_; }
    const lamina_fault_report& fault_report() const { return fault_report_; }
    void info(lamina_domain_info& out) const;
    void exit_stats(lamina_exit_stats& out) const;
    u64 cpu_time_ns() const;

    // Its console ring (domain_set_console): what it writes to the debug port lands there.
    i64 set_console(u64 ring_gfn, u32 control_port);

    // Host device memory [base, base + size) at the same guest-physical addresses, uncached (the
    // control domain's devices). It must not be the domain's RAM.
    bool map_host_device(u64 base, u64 size);

    // Frames of `target` mapped into this domain's stage 2 at `local_gfn` (domain_map_frames,
    // for the control domain's toolstack), and their removal.
    i64 map_foreign(Domain& target, u64 first_gfn, u64 count, u64 local_gfn);
    i64 unmap_foreign(u64 local_gfn, u64 count);
    // Shared pages: this domain grants a RAM frame to `remote`, which maps it by reference.
    i64 grant(u64 gfn, u16 remote, u32 flags);
    i64 revoke(u32 ref);
    i64 map_grant(Domain& granter, u32 ref, u64 local_gfn);
    i64 unmap_grant(u64 local_gfn);
    // Whether this domain maps any frame of `target` (the control domain's mappings keep the
    // target from being destroyed: Dom0 would fault on them), and the forced removal of them
    // (another domain's, when the target is destroyed: it faults alone if it touches them).
    bool maps_frames_of(const Domain& target) const;
    void drop_mappings_of(const Domain& target);

    // The scheduler's part of the domain (hypervisor/sched/cpu_scheduler).
    sched::SchedDomain sched;

    // For the self-tests and the bench, which run a domain on their own CPU: vCPU 0 until the
    // domain ends or `max_exits` exits have been handled since it was built.
    GuestEnd run_alone(u64 max_exits);
    void relay_stats() { relay_stats_ = true; }
    bool protect(u64 gpa, u64 size, stage2::Stage2Access access);
    bool claim_mmio(u64 gpa, u64 size, emulate::MmioHandler& device);
    const GuestConsole& console() const { return console_; }
    u64 exits() const;

    // Use create/destroy; public only for the object allocator.
    explicit Domain(const DomainParams& params);
    ~Domain();

private:
    friend class DomainVcpu;
    friend class VcpuHypercalls;

    bool init();
    u64 populate_control_ram(const u8* image, usize image_size, u64 frames);
    // Frees the stage-2 tables earlier unmaps retired, once every vCPU has flushed past them.
    void reclaim_stage2_tables();
    void set_state(lamina_domain_state state);
    void console_byte(char c);
    enum class ConsoleAppend : u8 { Dropped, Appended, Filled };
    ConsoleAppend append_to_console_ring(char c);
    // The vCPUs stop being scheduled (pause, shutdown) or may be again (unpause).
    void update_vcpus();
    // GuestPhysicalReader
    bool read(u64 gpa, void* out, usize size) override;
    // pvh::GuestMemoryWriter
    bool write(u64 gpa, const void* data, usize size) override;
    bool zero(u64 gpa, u64 size) override;
    // event::UpcallSink
    void upcall(u32 vcpu, u8 vector) override;

    const u16 id_;
    char name_[LAMINA_DOMAIN_NAME_SIZE] = {};
    const bool control_;
    const bool scheduled_;
    const u16 tlb_tag_;
    lamina_domain_state state_ = LAMINA_DOMAIN_BUILDING;
    u32 shutdown_reason_ = 0;
    GuestEnd end_ = GuestEnd::Running;
    bool faulted_ = false;
    lamina_fault_report fault_report_{};
    stage2::GuestSpace stage2_;
    DomainMemory memory_{stage2_};
    cpuid::CpuidPolicy cpuid_;
    // Port 0xE9, the Bochs/QEMU/Xen debug-console convention: writes are the domain's console,
    // reads answer 0xE9 so a guest can tell the console is there.
    class DebugConsole final : public IoPortHandler {
    public:
        static constexpr u16 kPort = 0xe9;
        explicit DebugConsole(Domain& domain) : domain_(domain) {}
        u32 read(u16, u8) override { return kPort; }
        void write(u16, u8 size, u32 value) override {
            for (u8 i = 0; i < size; ++i) domain_.console_byte(static_cast<char>(value >> (8 * i)));
        }

    private:
        Domain& domain_;
    };
    DebugConsole debug_console_{*this};
    IoPortMap ports_;
    emulate::MmioMap mmio_;
    event::EventChannels* events_ = nullptr;  // ~100 KiB: its own allocation
    u32 max_vcpus_ = 1;
    DomainVcpu* vcpus_[kMaxVcpus] = {};
    // Contexts set while BUILDING, used when it first runs.
    EntryState start_context_[kMaxVcpus] = {};
    bool has_start_context_[kMaxVcpus] = {};
    static constexpr u32 kNotGranted = ~0u;
    struct ForeignMapping {
        u64 local_gfn;
        u64 count;  // 0: a free entry
        Domain* target;
        u32 grant_ref;  // the target's grant it maps; kNotGranted for the toolstack's mappings
    };
    struct Grant {
        u64 gfn;
        u16 remote;
        bool readonly;
        bool in_use;
        u32 mappings;  // by the remote domain: it cannot be revoked while there are any
    };
    static constexpr usize kMaxForeignMappings = 128;
    ForeignMapping* free_foreign_entry(u64 local_gfn, u64 count, i64* result);
    void remove_mapping(ForeignMapping& mapping);
    ForeignMapping foreign_[kMaxForeignMappings] = {};
    Grant* grants_ = nullptr;  // LAMINA_SHARED_PAGE_GRANTS of them, allocated at the first grant
    u64 console_ring_gfn_ = 0;
    u32 console_port_ = 0;  // the control domain's port; 0: no ring
    u64 console_dropped_ = 0;
    GuestConsole console_;
    bool relay_stats_ = false;
};

// Names for the self-tests and logs.
const char* domain_state_name(lamina_domain_state state);

}  // namespace lamina
