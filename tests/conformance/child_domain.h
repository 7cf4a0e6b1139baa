// What the kernels that run as the control domain (control_domain.cpp, control_host.cpp) share:
// child domains built by hand through the domain_* hypercalls, as Dom0's toolstack builds them,
// each running a tiny 32-bit program of this file's; the control domain's event page; and the
// state of the host that every case must leave as it found it (free pages, open ports, the other
// domains), with a bystander domain that no case may touch.
#pragma once

#include <tests/conformance/framework/conformance.h>

#include <lamina/string.h>

// The guest-physical address the Stage2Fault program reads (beyond the child's RAM), and what it
// puts in ESI first.
#define CONFORMANCE_CHILD_FAULT_GPA 0x40000000
#define CONFORMANCE_CHILD_FAULT_ESI 0x5a5a5a5a

namespace conformance {

// Domain ids no case ever creates: the last valid one (ids are handed out going up from 1) and
// the first past LAMINA_DOMID_MAX.
constexpr u64 kUnusedDomid = LAMINA_DOMID_MAX;
constexpr u64 kBeyondDomidMax = LAMINA_DOMID_MAX + 1;
// RFLAGS bit 1, which reads as 1: every vCPU context sets it.
constexpr u64 kRflagsReserved = 1u << 1;
// A bit just above a 16-bit value (a domain id) and a 32-bit one.
constexpr u64 kPast16 = u64{1} << 16;
constexpr u64 kPast32 = u64{1} << 32;

lamina_host_info host_info();
// domain_get_info's record, all 0 (domid too) when it fails.
lamina_domain_info domain_info(u64 domid);

// The refusals of a call that names a domain: domains that do not exist are ESRCH, an id wider
// than 16 bits is EINVAL and leaves the domain its low 16 bits name untouched, and the caller
// itself is EINVAL where `caller_refused`. `call(domid)` makes the call with arguments otherwise
// valid for `target`.
template <typename Call>
void check_domain_ids(Test& t, const char* name, u16 target, bool caller_refused, Call call) {
    char what[128];
    if (caller_refused) {
        format_to(what, sizeof(what), "{}: the caller itself is EINVAL", name);
        t.returns(call(LAMINA_DOMID_CONTROL), kEinval, what);
    }
    const u64 missing[] = {kUnusedDomid, kBeyondDomidMax, 0xffff};
    for (u64 domid : missing) {
        format_to(what, sizeof(what), "{}: domain {:#x}, which does not exist, is ESRCH", name, domid);
        t.returns(call(domid), kEsrch, what);
    }
    const lamina_domain_info before = domain_info(target);
    format_to(what, sizeof(what), "{}: a domain id wider than 16 bits is EINVAL", name);
    t.returns(call(kPast16 | target), kEinval, what);
    lamina_domain_info after = domain_info(target);
    after.cpu_time_ns = before.cpu_time_ns;
    format_to(what, sizeof(what), "{}: ... and the domain its low 16 bits name is untouched", name);
    t.check(str::compare_bytes(&before, &after, sizeof(before)) == 0, what);
}

// ---- Time -------------------------------------------------------------------------------------

u64 now_ns();
// Sleeps (vcpu_set_timer, vcpu_block) until `ns` have passed.
void sleep_ns(u64 ns);
constexpr u64 kMs = 1000000;

// Polls `done` every millisecond until it holds (true) or `timeout_ns` passed (false).
template <typename Done>
bool wait_until(Done done, u64 timeout_ns = 2000 * kMs) {
    const u64 deadline = now_ns() + timeout_ns;
    for (;;) {
        if (done()) return true;
        if (now_ns() >= deadline) return false;
        sleep_ns(kMs);
    }
}

// ---- The control domain's events --------------------------------------------------------------

// The port LAMINA_VIRQ_DOMAIN_DIED is bound to (set_up_control_kernel binds it).
u32 domain_died_port();
// Whether `port` was signalled since the last call, which forgets it. Every port is masked, so
// events only set pending bits: vcpu_block wakes for the timer alone.
bool take_pending(u32 port);
// How many of the caller's ports are not closed (evtchn_status over every port).
u32 open_ports();

// ---- Buffers ----------------------------------------------------------------------------------

// A `size`-byte record at an odd address across a page boundary of the kernel's RAM, every byte
// of it and around it set to kCanary: a call must take it as any other buffer, and write nothing
// outside it. One at a time (they share one area).
class StraddlingBuffer {
public:
    static constexpr u8 kCanary = 0xc5;

    explicit StraddlingBuffer(usize size);
    u64 gpa() const { return gpa_of(at_); }
    void* data() const { return at_; }
    template <typename T>
    T& as() const {
        return *static_cast<T*>(data());
    }
    // Whether the bytes around the record, or all of them, still hold the canary.
    bool untouched_around() const;
    bool untouched() const;

private:
    u8* at_;
    usize size_;
};

// Whether `size` bytes at `bytes` all hold `value`.
bool filled_with(const void* bytes, usize size, u8 value);

// An OUT record at an odd address across a page: the same bytes as at an aligned address, and
// nothing around it written. `call(gpa)` writes it; `stable` zeroes what may differ between calls.
template <typename Record, typename Call, typename Stable>
void check_straddling_out(Test& t, const char* name, Call call, Stable stable) {
    Record aligned{};
    char what[112];
    format_to(what, sizeof(what), "{}: a record at an odd address across a page", name);
    const StraddlingBuffer buffer(sizeof(Record));
    if (!t.returns(call(buffer.gpa()), 0, what) || call(gpa_of(&aligned)) != 0) return;
    Record straddling;
    str::copy_bytes(&straddling, buffer.data(), sizeof(Record));
    stable(straddling);
    stable(aligned);
    format_to(what, sizeof(what), "{}: ... is the whole record, and nothing around it is written", name);
    t.check(str::compare_bytes(&straddling, &aligned, sizeof(Record)) == 0 && buffer.untouched_around(), what);
}

template <typename Record, typename Call>
void check_straddling_out(Test& t, const char* name, Call call) {
    check_straddling_out<Record>(t, name, call, [](Record&) {});
}

// ---- Child domains ----------------------------------------------------------------------------

constexpr u64 kChildFrames = 512;  // 2 MiB of RAM from guest frame 0
constexpr u32 kChildMaxVcpus = 2;

// What a child's vCPU 0 does (the others count, from the Spin entry). Each prints its message to
// the debug port 0xE9, its console, first.
enum class ChildProgram : u32 {
    Spin,         // runs CPUID once, then counts in its block forever
    Halt,         // HLT with interrupts off: the domain stays RUNNING, its vCPU idle for good
    TripleFault,  // UD2 with no IDT: #UD, #GP, #DF, triple fault
    Stage2Fault,  // ESI = CONFORMANCE_CHILD_FAULT_ESI, then reads CONFORMANCE_CHILD_FAULT_GPA
    RealMode,     // starts in real mode, prints "real mode\n" instead, halts as Halt does
};

struct ChildSpec {
    const char* name;
    ChildProgram program = ChildProgram::Spin;
    const char* message = "child: hello\n";  // at most kChildMessageMax bytes
    u32 vcpus = 1;                           // 1 to kChildMaxVcpus, each with a context
};
constexpr usize kChildMessageMax = 4000;

// A child built as Dom0 builds one: domain_create, domain_set_max_memory, domain_populate_memory,
// domain_set_max_vcpus, domain_map_frames of all its RAM to load the program, domain_unmap_frames,
// domain_set_vcpu_context, then its last three frames (the vCPUs' blocks and the console ring)
// mapped for good and its console on a port of the caller. It is left BUILDING: start() unpauses
// it. ScopedChild destroys it at the end of its scope; a plain ChildDomain (a global: nothing
// calls a freestanding kernel's destructors) lives until destroy().
class ChildDomain {
public:
    constexpr ChildDomain() = default;
    ChildDomain(const ChildDomain&) = delete;
    ChildDomain& operator=(const ChildDomain&) = delete;

    // ERROR on `t`, with what is made undone, when a step fails.
    bool build(Test& t, const ChildSpec& spec);
    // Unmaps its frames, closes its console port and destroys it: domain_destroy's result.
    i64 destroy();

    u16 id() const { return id_; }
    u32 console_port() const { return port_; }
    i64 start() const { return lamina_hc_domain_unpause(id_); }
    lamina_domain_info info() const;
    // The count vCPU `vcpu`'s spin loop has reached.
    u32 counter(u32 vcpu = 0) const;
    const volatile lamina_console_ring& ring() const;
    // Whether its console ring holds exactly `text` (from the start).
    bool console_shows(const char* text) const;
    // Waits until its info's state is `state`, or vCPU `vcpu` counts past `count`.
    bool wait_for_state(u32 state) const;
    bool wait_for_count(u32 count, u32 vcpu = 0) const;

    // Where the Stage2Fault program's read lies in the child.
    static u64 stage2_access_gpa();
    // An entry that reads at RAX, the same bytes in 32-bit and 64-bit code, for contexts of any
    // mode; and the root of the page tables every child has for a LONG64 start (the first GiB
    // identity-mapped with 2 MiB pages).
    static u64 read_rax_gpa();
    static u64 page_table_root();

private:
    u16 id_ = 0;
    bool created_ = false;
    u32 port_ = 0;
    i32 slot_ = -1;  // of the mapping of its three frames; -1: none
    u8* frames_ = nullptr;
};

class ScopedChild : public ChildDomain {
public:
    ~ScopedChild() { (void)destroy(); }
};

// A domain of domain_create alone (BUILDING, no memory), destroyed at the end of its scope.
class ScopedDomain {
public:
    explicit ScopedDomain(const char* name);
    ScopedDomain(const ScopedDomain&) = delete;
    ScopedDomain& operator=(const ScopedDomain&) = delete;
    ~ScopedDomain() { (void)destroy(); }

    bool ok() const { return id_ > 0; }
    u16 id() const { return static_cast<u16>(id_); }
    i64 destroy();

private:
    i64 id_;
};

// domain_create's parameters for a PVH domain named `name`, and the call with them.
lamina_domain_create create_params(const char* name);
i64 create_domain(const char* name);

// ---- The host every case leaves as it found it -------------------------------------------------

// The setup every control kernel starts with: the event page and the DOMAIN_DIED port, one child
// built, run and destroyed (so that what the first domain allocates for good is allocated), then
// the bystander, a child that printed and halted.
bool set_up_control_kernel(Test& t);
// After a case: the free pages, the open ports and the domains (the bystander's every field but
// its CPU time) are as set_up_control_kernel left them. `group` names the case in the checks.
void check_left_alone(Test& t, const char* group);
// The end: the bystander destroyed, the host is as before the bystander existed.
void tear_down_control_kernel(Test& t);
u16 bystander_id();
// host_info's free_pages, once the control domain's stage-2 tables that unmapping emptied are freed.
u64 free_pages();

// Every call of `numbers` from CPL 3 is EPERM, the control domain's too.
void check_user_mode_refused(Test& t, const u32* numbers, usize count);

}  // namespace conformance
