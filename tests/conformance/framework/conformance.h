// The conformance suite's guest side, in the manner of Xen's XTF: a test kernel is a small PVH
// kernel with a name and a category (CONFORMANCE_KERNEL) and cases (HYPERCALL_TEST, TEST_CASE)
// that run in the order they are written. Every check prints a line; the kernel ends with
// exactly one result line, "Test result: SUCCESS|SKIP|ERROR|FAILURE" (the most severe wins), and
// powers its domain off. Whoever runs it (Dom0's `conformance` command, or the runner for a
// kernel booted as the control domain) reads that line; a kernel that dies or hangs is CRASH.
//
// HYPERCALL_TEST(name) is the case that proves hypercall `name`'s documented behaviours; the
// build fails while a hypercall of lib/include/lamina/abi/hypercalls.def has none
// (scripts/check-conformance-coverage.py reads the cases out of the kernels).
#pragma once

#include <dom0/toolstack/test_report.h>
#include <lamina/abi/hypercall.h>
#include <lamina/abi/hypercalls.h>
#include <lamina/format.h>
#include <lamina/pvh.h>

namespace conformance {

using namespace lamina;

// The results a case compares calls with: -LAMINA_E*.
constexpr i64 kEperm = -static_cast<i64>(LAMINA_EPERM);
constexpr i64 kEnoent = -static_cast<i64>(LAMINA_ENOENT);
constexpr i64 kEsrch = -static_cast<i64>(LAMINA_ESRCH);
constexpr i64 kE2big = -static_cast<i64>(LAMINA_E2BIG);
constexpr i64 kEagain = -static_cast<i64>(LAMINA_EAGAIN);
constexpr i64 kEnomem = -static_cast<i64>(LAMINA_ENOMEM);
constexpr i64 kEfault = -static_cast<i64>(LAMINA_EFAULT);
constexpr i64 kEbusy = -static_cast<i64>(LAMINA_EBUSY);
constexpr i64 kEexist = -static_cast<i64>(LAMINA_EEXIST);
constexpr i64 kEinval = -static_cast<i64>(LAMINA_EINVAL);
constexpr i64 kEnospc = -static_cast<i64>(LAMINA_ENOSPC);
constexpr i64 kErange = -static_cast<i64>(LAMINA_ERANGE);
constexpr i64 kEnosys = -static_cast<i64>(LAMINA_ENOSYS);
constexpr i64 kEopnotsupp = -static_cast<i64>(LAMINA_EOPNOTSUPP);

// In order of severity: the most severe outcome of any check is the kernel's result.
enum class Result : u32 { Success, Skip, Error, Failure };
const char* result_name(Result result);

enum class Category : u32 { Functional, Security, Stress };

struct KernelInfo {
    const char* name;
    Category category;
};

class Test {
public:
    explicit Test(Sink& out) : out_(out) {}

    // One check: a numbered "ok" line, or a "FAIL" line with the details.
    template <typename... A>
    bool check(bool ok, const char* what, const char* fmt = "", const A&... args) {
        ++checks_;
        ++case_outcomes_;
        if (ok) {
            format(out_, "ok {} - {}\n", checks_, what);
            return true;
        }
        ++failures_;
        raise(Result::Failure);
        format(out_, "FAIL {} - {}: ", checks_, what);
        format(out_, fmt, args...);
        out_.write("\n", 1);
        return false;
    }

    // A call's return value: `got` must be `want` (a value, or -LAMINA_E*).
    bool returns(i64 got, i64 want, const char* what);

    // The test could not do what it meant to (its set-up failed): ERROR.
    template <typename... A>
    void error(const char* fmt, const A&... args) {
        raise(Result::Error);
        ++case_outcomes_;
        out_.write("ERROR: ", 7);
        format(out_, fmt, args...);
        out_.write("\n", 1);
    }
    // What the test needs is not there (a feature, a second vCPU): SKIP, unless worse happens.
    template <typename... A>
    void skip(const char* fmt, const A&... args) {
        raise(Result::Skip);
        ++case_outcomes_;
        out_.write("SKIP: ", 6);
        format(out_, fmt, args...);
        out_.write("\n", 1);
    }
    // A line of information, no verdict.
    template <typename... A>
    void note(const char* fmt, const A&... args) {
        out_.write("# ", 2);
        format(out_, fmt, args...);
        out_.write("\n", 1);
    }

    Sink& out() { return out_; }
    Result result() const { return result_; }
    u32 checks() const { return checks_; }
    u32 failures() const { return failures_; }

    // The framework's: each case starts counting afresh, so that a case that neither checked,
    // skipped nor failed to set up shows.
    void begin_case() { case_outcomes_ = 0; }
    u32 case_outcomes() const { return case_outcomes_; }

private:
    void raise(Result r) { result_ = static_cast<u32>(r) > static_cast<u32>(result_) ? r : result_; }

    Sink& out_;
    Result result_ = Result::Success;
    u32 checks_ = 0;
    u32 failures_ = 0;
    u32 case_outcomes_ = 0;
};

// A case of a test kernel. The records sit in the section "conformance_cases", in the order
// they are written; scripts/check-conformance-coverage.py reads `hypercall` from each 24-byte
// record of every kernel.
constexpr u32 kNotAHypercall = 0xffffffff;
struct Case {
    u32 hypercall;  // LAMINA_HYPERCALL_*: the call whose behaviours the case proves, or kNotAHypercall
    u32 reserved;
    const char* name;
    void (*run)(Test&);
};
static_assert(sizeof(Case) == 24, "scripts/check-conformance-coverage.py reads 24-byte records");

// ---- What the framework offers the cases ------------------------------------------------------

// The kernel's command line and what the toolstack typed into its console before it started:
// the value of `key=<number>`, or `fallback`. Dom0's `conformance` offers each test domain two
// of its pages: granter=<domid> grant_rw=<ref> grant_ro=<ref> (shared_page_grant, the second
// read-only); the writable one holds kGrantPattern, the read-only one kGrantPatternReadOnly.
u64 option(const char* key, u64 fallback);

// Dom0 as the other domain (dom0/toolstack/test_report.h has the requests and replies): prints
// "conformance-request: <request>" and waits about 5 s for Dom0's one-line reply, typed into the
// console input. The reply's length, without its newline, cut to fit `reply` (always
// NUL-terminated); -LAMINA_EAGAIN when none came (a Dom0 that does not answer), -LAMINA_ENOENT
// without a console (the control domain).
i64 ask_peer(const char* request, char* reply, usize reply_size);

// Whether this kernel runs as the control domain, and its domain's id (CPUID 0x40000001 EBX, ECX).
bool is_control_domain();
u16 own_domid();

using toolstack::kGrantPattern;
using toolstack::kGrantPatternReadOnly;

// The end of the domain's RAM (one past its last byte) from the PVH memory map; the end of what
// the hypervisor counts as its memory (RAM and the console ring's page after it); the start
// info itself.
u64 ram_end();
u64 memory_end();
const pvh::StartInfo& start_info();

// The VMCALL or VMMCALL (and RET) of the hypercall page's first slot: entered with the number
// already in RAX, it reaches the hypervisor with any number, those the page has no slot for too.
inline u64 raw_entry() { return reinterpret_cast<u64>(lamina_hypercall_page) + 5; }

// A hypercall by number, made with every argument register set (RDI, RSI, RDX, R10, R8).
inline i64 raw_hypercall(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0) {
    register u64 r10 asm("r10") = a3;
    register u64 r8 asm("r8") = a4;
    i64 result;
    asm volatile("lea -128(%%rsp), %%rsp\n\tcall *%[entry]\n\tlea 128(%%rsp), %%rsp"
                 : "=a"(result), "+D"(a0), "+S"(a1), "+d"(a2), "+r"(r10), "+r"(r8)
                 : "a"(number), [entry] "r"(raw_entry())
                 : "memory", "cc");
    return result;
}

// The same from CPL 3 (SYSRET to user mode, SYSCALL back): what RAX held afterwards.
i64 user_mode_hypercall(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0);

// The same from 32-bit compatibility mode at CPL 0 (no arguments).
i64 compat_mode_hypercall(u64 number);

// Guest-physical addresses a buffer argument must be refused at with -LAMINA_EFAULT: beyond the
// domain's RAM, past the address width, wrapping around, the local APIC's page, and straddling
// the end of RAM for an object of `size` bytes.
struct BadBuffer {
    const char* what;
    u64 gpa;
};
constexpr usize kBadBufferCount = 6;
void bad_buffers(u64 size, BadBuffer (&out)[kBadBufferCount]);

// Calls `call(gpa)` at every bad buffer address for a `size`-byte object: each must be EFAULT.
template <typename Call>
void check_bad_buffers(Test& t, const char* call_name, u64 size, Call call) {
    BadBuffer bad[kBadBufferCount];
    bad_buffers(size, bad);
    for (const BadBuffer& b : bad) {
        char what[96];
        format_to(what, sizeof(what), "{}: a buffer {} is EFAULT", call_name, b.what);
        t.returns(call(b.gpa), kEfault, what);
    }
}

inline u64 gpa_of(const volatile void* p) { return reinterpret_cast<u64>(p); }

// Yields the CPU until `done()` (called once a round: it may act) holds, or gives up after
// 100,000 rounds: how long a vCPU waits for another of its domain.
template <typename Done>
bool yield_until(Done done) {
    for (u32 round = 0; !done(); ++round) {
        if (round == 100000) return false;
        lamina_hc_vcpu_yield();
    }
    return true;
}

// A LONG64 context (vcpu_up) that runs `main` on another vCPU of this domain: 64-bit mode on
// this vCPU's page tables, the kernel's GDT, `stack_top` (16-byte aligned) its stack, interrupts
// off and no IDT. `main` must not return.
lamina_vcpu_context long64_vcpu_context(void (*main)(), void* stack_top);

}  // namespace conformance

// The kernel's name (as Dom0 knows its module: "test-<name>") and category.
#define CONFORMANCE_KERNEL(kernel_name, kernel_category) \
    extern const ::conformance::KernelInfo conformance_kernel = {kernel_name, ::conformance::Category::kernel_category}

#define CONFORMANCE_CASE_(function, number, text)                                                        \
    static void function(::conformance::Test&);                                                          \
    [[gnu::used, gnu::section("conformance_cases")]] static const ::conformance::Case function##_case = { \
        number, 0, text, function};                                                                      \
    static void function([[maybe_unused]] ::conformance::Test& t)

// The case that proves hypercall `name`'s behaviours (it counts for the coverage check).
#define HYPERCALL_TEST(name) CONFORMANCE_CASE_(hypercall_test_##name, LAMINA_HYPERCALL_##name, #name)
// Any other case: `id` is an identifier, `text` its name in the output.
#define TEST_CASE(id, text) CONFORMANCE_CASE_(test_case_##id, ::conformance::kNotAHypercall, text)
