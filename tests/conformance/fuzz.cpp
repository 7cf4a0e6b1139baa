// Random hypercalls with random and edge-case arguments from a seeded generator: every call in
// the table and numbers outside it, values at the edges of their types, domain ids that exist and
// that do not, buffers inside the domain's RAM and outside it. The hypervisor must answer each
// with a value the ABI allows (>= 0 or a defined -LAMINA_E*; -EPERM for every control call) and
// keep answering; Dom0 checks afterwards that the host got every page and port back.
//
// Command line: seed=<n> (default: from the TSC) and calls=<n> (default 100000). The seed is
// printed first, so that a failure replays with seed=<it>.
//
// A second case makes the calls from both of the domain's vCPUs at once, each with its own
// stream, so that calls race each other in the hypervisor (on two host CPUs where there are).
//
// The arguments are random except where a valid call would end the fuzzing itself: shutdown gets
// only invalid reasons, vcpu_up never names vCPU 1 (its random context would run random code),
// vcpu_down never names a vCPU that runs a stream, and vcpu_block follows a 1 ms timer. That
// timer wakes vcpu_block only while LAMINA_VIRQ_TIMER is unbound (bound, it wakes through its
// port, which the random calls' writes into the event page may have masked or left pending), so
// a port bound to it is closed at once, and the two concurrent streams never block: one could
// bind the other's timer in between.
#include <tests/conformance/framework/conformance.h>
#include <tests/conformance/framework/hypercall_table.h>

#include <lamina/atomic.h>
#include <tests/guests/guest.h>

CONFORMANCE_KERNEL("fuzz", Stress);

using namespace conformance;
using guest::rdtsc;

namespace {

constexpr u64 kDefaultCalls = 100000;
constexpr usize kScratchSize = 64 * 1024;
constexpr usize kLargestObject = 4096;  // the event page; every other buffer an ANY call takes is smaller

// What the hypervisor may write into (event pages, status records): inside the kernel's RAM but
// away from its code and data.
alignas(4096) u8 scratch[kScratchSize];

// splitmix64: small, fast, and every seed gives a full-period stream.
class Random {
public:
    explicit Random(u64 seed) : state_(seed) {}
    u64 next() {
        u64 z = (state_ += 0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }
    u64 below(u64 bound) { return next() % bound; }
    bool one_in(u64 n) { return below(n) == 0; }

private:
    u64 state_;
};

constexpr u64 kEdges[] = {0,          1,          2,           3,           0x7f,        0x80,
                          0xff,       0x100,      0xfff,       0x1000,      0xffff,      0x10000,
                          0x7fffffff, 0x80000000, 0xffffffff,  0x100000000, ~u64{0} - 1, ~u64{0},
                          u64{1} << 63, (u64{1} << 63) - 1, 4095, 4096 + 1};

u64 edge(Random& r) { return kEdges[r.below(array_size(kEdges))]; }

// A value for a VAL argument of `bits` bits: mostly inside its type, sometimes one past it.
u64 value(Random& r, u32 bits) {
    const u64 mask = bits >= 64 ? ~u64{0} : (u64{1} << bits) - 1;
    switch (r.below(8)) {
        case 0: return edge(r);
        case 1: return r.next();
        case 2: return bits >= 64 ? r.next() : mask + 1 + r.below(4);
        case 3: return mask;
        case 4: return r.below(8);  // vCPUs, VIRQs, the first domain ids
        default: return r.below(64) & mask;
    }
}

// A guest-physical address for a buffer: in the scratch area (any alignment), or somewhere it
// must be refused.
u64 address(Random& r) {
    const u64 end = memory_end();
    switch (r.below(10)) {
        case 0: return end + r.below(1 << 20);
        case 1: return end - 1 - r.below(64);  // straddles the end
        case 2: return edge(r);
        case 3: return 0xfee00000 + r.below(4096);
        case 4: return u64{1} << (32 + r.below(32));
        case 5: return gpa_of(scratch) + r.below(kScratchSize / 4096 - 1) * 4096;
        default: return gpa_of(scratch) + r.below(kScratchSize - kLargestObject);
    }
}

bool defined_error(i64 result) {
    switch (result) {
#define CONFORMANCE_ERRNO_CASE_(name, number, meaning) case -(number):
        LAMINA_ERRNO_TABLE(CONFORMANCE_ERRNO_CASE_)
#undef CONFORMANCE_ERRNO_CASE_
        return true;
        default: return false;
    }
}

struct Call {
    u64 number;
    u64 args[LAMINA_HYPERCALL_MAX_ARGS];
};

Call random_call(Random& r) {
    Call call{};
    if (r.one_in(16)) {  // a number outside the table (or in it, by chance)
        call.number = r.one_in(2) ? r.below(LAMINA_HYPERCALL_SLOTS + 16) : r.next();
        for (u64& a : call.args) a = value(r, 64);
    } else {
        // Control calls are one check deep for this domain (EPERM): most calls go to the others.
        const HypercallEntry* e = &kHypercallTable[r.below(array_size(kHypercallTable))];
        while (e->control && !r.one_in(4)) e = &kHypercallTable[r.below(array_size(kHypercallTable))];
        call.number = e->number;
        for (u32 i = 0; i < e->argc; ++i)
            call.args[i] = e->kinds[i] == LAMINA_HC_ARG_VAL ? value(r, e->bits[i]) : address(r);
    }
    // Valid calls that would end this domain are kept invalid.
    if (call.number == LAMINA_HYPERCALL_shutdown && call.args[0] <= LAMINA_SHUTDOWN_CRASH)
        call.args[0] += LAMINA_SHUTDOWN_CRASH + 1;
    if (call.number == LAMINA_HYPERCALL_vcpu_up && call.args[0] == 1) call.args[0] = 2 + r.below(8);
    if (call.number == LAMINA_HYPERCALL_vcpu_down && call.args[0] <= 1) call.args[0] = 2 + r.below(8);
    return call;
}

// What the ABI allows as the answer to `call`: a reason, or null when it is allowed.
const char* wrong_answer(const Call& call, i64 result) {
    const HypercallEntry* e = find_hypercall(call.number);
    if (!e) return result == kEnosys ? nullptr : "an unknown number is not ENOSYS";
    if (e->control) return result == kEperm ? nullptr : "a control call is not EPERM";
    if (result < 0 && !defined_error(result)) return "an error the ABI does not define";
    return nullptr;
}

// What one stream of calls got. A vCPU tallies its own; vCPU 0 reports them all.
struct Tally {
    static constexpr usize kKeptWrong = 8;  // wrong answers spelled out; all are counted
    struct Wrong {
        u64 index;
        Call call;
        i64 result;
        const char* why;
    };
    u64 calls = 0, successes = 0, errors = 0, wrong = 0, ticks = 0;
    u64 by_errno[128] = {};  // by error number: all the ABI defines are below 128
    Wrong kept[kKeptWrong] = {};
};

// Makes `count` random calls from `r`'s stream, or fewer should `stop` come true first (a stream
// beside another, which never blocks).
void make_calls(Random& r, u64 count, Tally& tally, const Atomic<u32>* stop = nullptr) {
    const u64 start = rdtsc();
    for (u64 i = 0; i < count && !(stop && stop->load()); ++i) {
        Call call = random_call(r);
        if (call.number == LAMINA_HYPERCALL_vcpu_block) {
            if (stop) call.number = LAMINA_HYPERCALL_vcpu_yield;
            else lamina_hc_vcpu_set_timer(1'000'000);
        }
        const i64 result = raw_hypercall(call.number, call.args[0], call.args[1], call.args[2], call.args[3],
                                         call.args[4]);
        if (call.number == LAMINA_HYPERCALL_evtchn_bind_virq && call.args[0] == LAMINA_VIRQ_TIMER && result > 0)
            lamina_hc_evtchn_close(static_cast<u32>(result));
        ++tally.calls;
        if (const char* why = wrong_answer(call, result)) {
            if (tally.wrong < Tally::kKeptWrong) tally.kept[tally.wrong] = {i, call, result, why};
            ++tally.wrong;
        }
        if (result >= 0) {
            ++tally.successes;
        } else {
            ++tally.errors;
            if (-result < static_cast<i64>(array_size(tally.by_errno))) ++tally.by_errno[-result];
        }
    }
    tally.ticks = rdtsc() - start;
}

void report(Test& t, const char* stream, u64 seed, const Tally& tally) {
    for (u64 k = 0; k < min<u64>(tally.wrong, Tally::kKeptWrong); ++k) {
        const Tally::Wrong& w = tally.kept[k];
        const HypercallEntry* e = find_hypercall(w.call.number);
        t.check(false, "a random call gets an answer the ABI allows",
                "{}: call {} of seed {}: number {:#x} ({}) args {:#x} {:#x} {:#x} {:#x} {:#x} returned {}: {}", stream,
                w.index, seed, w.call.number, e ? e->name : "?", w.call.args[0], w.call.args[1], w.call.args[2],
                w.call.args[3], w.call.args[4], w.result, w.why);
    }
    t.check(tally.wrong == 0, "every random call got an answer the ABI allows", "{}: {} did not", stream,
            tally.wrong);
    t.note("fuzz: {}: {} calls, {} succeeded, {} refused, {} TSC ticks per call", stream, tally.calls,
           tally.successes, tally.errors, tally.calls ? tally.ticks / tally.calls : 0);
    for (i64 code = 1; code < static_cast<i64>(array_size(tally.by_errno)); ++code) {
        if (tally.by_errno[code]) t.note("fuzz:   {:<8} {}", lamina_errno_name(-code), tally.by_errno[code]);
    }
}

// The second vCPU's stream: its own seed, calls until vCPU 0 has made its own.
constexpr u32 kSecondVcpu = 1;
constexpr u64 kSecondStreamSalt = 0x5ec0d;
alignas(16) u8 second_stack[16384];
lamina_vcpu_context second_context;
u64 second_seed = 0;
Tally second_tally;
Atomic<u32> second_stop{0};
Atomic<u32> second_started{0};
Atomic<u32> second_done{0};

[[noreturn]] void second_vcpu_main() {
    second_started.store(1);
    Random r(second_seed);
    make_calls(r, ~u64{0}, second_tally, &second_stop);
    second_done.store(1);
    for (;;) asm volatile("cli; hlt");
}

}  // namespace

TEST_CASE(random_calls, "random hypercalls get answers the ABI allows") {
    const u64 seed = option("seed", rdtsc());
    const u64 calls = option("calls", kDefaultCalls);
    t.note("fuzz: seed={} calls={} (replay: seed={})", seed, calls, seed);
    Random r(seed);
    static Tally tally;
    make_calls(r, calls, tally);
    report(t, "vCPU 0", seed, tally);
}

TEST_CASE(concurrent_calls, "random hypercalls from both vCPUs at once get answers the ABI allows") {
    // Streams of their own, derived from the seed, so that the case replays with it too.
    const u64 seed = option("seed", rdtsc()) + 1;
    const u64 calls = option("calls", kDefaultCalls) / 2;
    second_seed = seed ^ kSecondStreamSalt;
    second_context = long64_vcpu_context(second_vcpu_main, second_stack + sizeof(second_stack));
    if (!t.returns(lamina_hc_vcpu_up(kSecondVcpu, gpa_of(&second_context)), 0,
                   "vcpu_up: the second vCPU starts its stream") ||
        !t.check(yield_until([] { return second_started.load() != 0; }), "the second vCPU runs"))
        return;
    Random r(seed);
    static Tally tally;
    make_calls(r, calls, tally);
    second_stop.store(1);
    if (!t.check(yield_until([] { return second_done.load() != 0; }), "the second vCPU ends its stream when asked"))
        return;
    t.returns(lamina_hc_vcpu_down(kSecondVcpu), 0, "vcpu_down: the second vCPU, its stream ended");
    report(t, "vCPU 0 beside vCPU 1", seed, tally);
    report(t, "vCPU 1", second_seed, second_tally);
    t.check(second_tally.calls > 0, "the second vCPU made calls", "{}", second_tally.calls);
}

TEST_CASE(still_answering, "the hypervisor answers as before after the random calls") {
    t.returns(lamina_hc_version(), LAMINA_ABI_VERSION, "version still answers");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_domain_create), kEperm,
              "a control call is still EPERM");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_SLOTS), kEnosys, "an unknown number is still ENOSYS");
    t.returns(lamina_hc_vcpu_set_timer(1'000'000), 0, "the vCPU's timer can be set");
    t.returns(lamina_hc_vcpu_block(), 0, "and the vCPU sleeps until it fires");
}
