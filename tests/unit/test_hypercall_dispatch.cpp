#include <catch2/catch.hpp>

#include <hypervisor/hypercall/dispatcher.h>

#include "test_support.h"

#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::hypercall;

namespace {

struct RecordedCall {
    u64 number;
    Caller caller;
    std::vector<u64> args;
};

// A handler for every table entry (generated from the table, like the real interface), each
// recording which entry ran, who called and with what.
class Recorder final : public HypercallHandlers {
public:
    std::vector<RecordedCall> calls;
    // What the handlers return; by default 1000 + the number, so a test sees the result pass.
    std::function<i64(const Caller&)> behaviour;

#define TEST_PARAM_(index, arg) , u64 LAMINA_HC_ARG_NAME arg
#define TEST_VALUE_(index, arg) LAMINA_HC_ARG_NAME arg,
#define LAMINA_HYPERCALL(number, name, who, argc, arg_list, summary)                             \
    i64 name(const Caller& caller LAMINA_HC_FOR_EACH_ARG(TEST_PARAM_, argc, arg_list)) override { \
        return record(number, caller, {LAMINA_HC_FOR_EACH_ARG(TEST_VALUE_, argc, arg_list)});      \
    }
#include <lamina/abi/hypercalls.def>
#undef TEST_PARAM_
#undef TEST_VALUE_

private:
    i64 record(u64 number, const Caller& caller, std::vector<u64> args) {
        calls.push_back({number, caller, std::move(args)});
        return behaviour ? behaviour(caller) : static_cast<i64>(1000 + number);
    }
};

constexpr Caller kControl{.domain_id = 0, .control_domain = true, .cpl = 0, .long_mode = true};
constexpr Caller kGuest{.domain_id = 7, .control_domain = false, .cpl = 0, .long_mode = true};

// Arguments every entry accepts: small distinct values, page-aligned where a page is wanted.
void valid_args(const HypercallInfo& info, u64 (&args)[kMaxArgs]) {
    for (usize i = 0; i < kMaxArgs; ++i) {
        args[i] = info.args[i].name && info.args[i].kind == LAMINA_HC_ARG_PAGE ? 0x1000 * (i + 1) : i + 1;
    }
}

const HypercallInfo& entry(u64 number) {
    const HypercallInfo* info = find_hypercall(number);
    REQUIRE(info != nullptr);
    return *info;
}

// The numbers in no table entry.
std::vector<u64> unused_numbers() {
    std::vector<u64> numbers = {LAMINA_HYPERCALL_SLOTS, 0x1000, 0xffff'ffff, u64{1} << 32, ~u64{0}};
    for (u64 n = 0; n < LAMINA_HYPERCALL_SLOTS; ++n) {
        if (!find_hypercall(n)) numbers.push_back(n);
    }
    return numbers;
}

}  // namespace

TEST_CASE("hypercall table: numbers, names and arguments are well formed", "[hypercall]") {
    // The table seen through the numbers' enum, another expansion of the same file.
    usize entries = 0;
#define LAMINA_HYPERCALL(number, name, who, argc, arg_list, summary) \
    ++entries;                                                       \
    CHECK(std::string(hypercall_name(LAMINA_HYPERCALL_##name)) == #name);
#include <lamina/abi/hypercalls.def>
    CHECK(entries == kHypercallCount);
    CHECK(kHypercallCount >= 45);  // the first set and the scheduler's calls

    std::set<u64> numbers;
    std::set<std::string> names;
    u32 previous = 0;
    for (const HypercallInfo& info : kHypercalls) {
        CAPTURE(info.name);
        CHECK(numbers.insert(info.number).second);
        CHECK(names.insert(info.name).second);
        CHECK(info.number < LAMINA_HYPERCALL_SLOTS);
        CHECK((numbers.size() == 1 || info.number > previous));  // the file lists them in order
        previous = info.number;
        CHECK(info.arg_count <= kMaxArgs);
        CHECK(std::strlen(info.summary) > 10);
        for (usize i = 0; i < kMaxArgs; ++i) {
            CAPTURE(i);
            CHECK((info.args[i].name != nullptr) == (i < info.arg_count));
            if (i >= info.arg_count) continue;
            CHECK(info.args[i].type_size > 0);
            if (info.args[i].kind == LAMINA_HC_ARG_VAL) {
                const u32 size = info.args[i].type_size;
                CHECK((size == 1 || size == 2 || size == 4 || size == 8));
            } else {
                // A guest-physical address travels in an argument named for it.
                CHECK(std::string(info.args[i].name).ends_with("_gpa"));
            }
        }
    }
}

TEST_CASE("hypercall table: who may call what", "[hypercall]") {
    for (const char* name : {"console_write", "console_read", "domain_create", "domain_destroy", "domain_pause",
                             "domain_unpause", "domain_get_info", "domain_list", "domain_set_max_memory",
                             "domain_populate_memory", "domain_set_max_vcpus", "domain_set_vcpu_context",
                             "domain_map_frames", "domain_unmap_frames", "domain_get_fault_report", "domain_set_console",
                             "domain_shutdown",
                             "sched_get_domain", "sched_set_domain", "sched_get_pool", "sched_set_pool",
                             "sched_get_affinity", "sched_set_affinity", "host_info", "log_read",
                             "domain_exit_stats"}) {
        CAPTURE(name);
        const HypercallInfo* info = nullptr;
        for (const HypercallInfo& candidate : kHypercalls) {
            if (std::string(candidate.name) == name) info = &candidate;
        }
        REQUIRE(info != nullptr);
        CHECK(info->control_only);
    }
    for (u64 number : {LAMINA_HYPERCALL_version, LAMINA_HYPERCALL_vcpu_yield, LAMINA_HYPERCALL_shutdown,
                       LAMINA_HYPERCALL_evtchn_send, LAMINA_HYPERCALL_shared_page_grant}) {
        CHECK_FALSE(entry(number).control_only);
    }
    CHECK(hypercall_name(0x7f) == std::string("unknown"));
    CHECK(find_hypercall(u64{1} << 32) == nullptr);
}

TEST_CASE("dispatch: every table entry reaches its own handler with its arguments in order", "[hypercall]") {
    for (const HypercallInfo& info : kHypercalls) {
        CAPTURE(info.name);
        Recorder handlers;
        u64 args[kMaxArgs];
        valid_args(info, args);
        const u64 before[kMaxArgs] = {args[0], args[1], args[2], args[3], args[4]};

        const Caller caller = info.control_only ? kControl : kGuest;
        CHECK(dispatch(handlers, caller, info.number, args) == static_cast<i64>(1000 + info.number));
        REQUIRE(handlers.calls.size() == 1);
        const RecordedCall& call = handlers.calls[0];
        CHECK(call.number == info.number);
        CHECK(call.caller.domain_id == caller.domain_id);
        CHECK(call.caller.control_domain == caller.control_domain);
        CHECK(call.caller.arguments == args);  // where a continuation writes
        // RDI, RSI, RDX, R10, R8 are args[0..4]: the handler's parameters in that order.
        CHECK(call.args == std::vector<u64>(before, before + info.arg_count));
        CHECK(std::memcmp(args, before, sizeof(args)) == 0);  // untouched without a continuation
    }
}

TEST_CASE("dispatch: unknown numbers are -ENOSYS and run nothing", "[hypercall]") {
    for (u64 number : unused_numbers()) {
        CAPTURE(number);
        Recorder handlers;
        u64 args[kMaxArgs] = {1, 2, 3, 4, 5};
        CHECK(dispatch(handlers, kControl, number, args) == -LAMINA_ENOSYS);
        CHECK(handlers.calls.empty());
    }
    // The number is all 64 bits of RAX: a known number in the low half is not that call.
    Recorder handlers;
    u64 args[kMaxArgs] = {};
    CHECK(dispatch(handlers, kControl, (u64{1} << 32) | LAMINA_HYPERCALL_version, args) == -LAMINA_ENOSYS);
    CHECK(handlers.calls.empty());
}

TEST_CASE("dispatch: a caller above CPL 0 gets -EPERM for every number", "[hypercall]") {
    std::vector<u64> numbers = unused_numbers();
    for (const HypercallInfo& info : kHypercalls) numbers.push_back(info.number);
    for (u8 cpl : {1, 2, 3}) {
        for (u64 number : numbers) {
            CAPTURE(cpl, number);
            Recorder handlers;
            u64 args[kMaxArgs] = {1, 2, 3, 4, 5};
            Caller caller = kControl;
            caller.cpl = cpl;
            CHECK(dispatch(handlers, caller, number, args) == -LAMINA_EPERM);
            caller.long_mode = false;  // CPL is checked first
            CHECK(dispatch(handlers, caller, number, args) == -LAMINA_EPERM);
            CHECK(handlers.calls.empty());
        }
    }
}

TEST_CASE("dispatch: a caller outside 64-bit mode gets -ENOSYS", "[hypercall]") {
    Recorder handlers;
    u64 args[kMaxArgs] = {};
    Caller caller = kControl;
    caller.long_mode = false;
    CHECK(dispatch(handlers, caller, LAMINA_HYPERCALL_version, args) == -LAMINA_ENOSYS);
    CHECK(handlers.calls.empty());
}

TEST_CASE("dispatch: control-domain calls from another domain are -EPERM", "[hypercall]") {
    usize control_only = 0;
    for (const HypercallInfo& info : kHypercalls) {
        CAPTURE(info.name);
        Recorder handlers;
        u64 args[kMaxArgs];
        valid_args(info, args);
        if (info.control_only) {
            ++control_only;
            CHECK(dispatch(handlers, kGuest, info.number, args) == -LAMINA_EPERM);
            CHECK(handlers.calls.empty());
            // Privilege before arguments: bad arguments from the wrong domain are still -EPERM.
            for (u64& arg : args) arg = ~u64{0};
            CHECK(dispatch(handlers, kGuest, info.number, args) == -LAMINA_EPERM);
            CHECK(handlers.calls.empty());
        } else {
            CHECK(dispatch(handlers, kGuest, info.number, args) == static_cast<i64>(1000 + info.number));
            CHECK(handlers.calls.size() == 1);
        }
    }
    CHECK(control_only > 20);
}

TEST_CASE("dispatch: VAL arguments must fit their type, PAGE arguments must be page-aligned", "[hypercall]") {
    usize narrow = 0;
    usize pages = 0;
    for (const HypercallInfo& info : kHypercalls) {
        for (usize i = 0; i < info.arg_count; ++i) {
            CAPTURE(info.name, info.args[i].name);
            const ArgInfo& arg = info.args[i];
            u64 args[kMaxArgs];
            u64 accepted = 0;
            u64 refused = 0;
            if (arg.kind == LAMINA_HC_ARG_VAL && arg.type_size < 8) {
                ++narrow;
                refused = u64{1} << (8 * arg.type_size);
                accepted = refused - 1;
            } else if (arg.kind == LAMINA_HC_ARG_PAGE) {
                ++pages;
                refused = 0x1000 + 8;
                accepted = ~u64{0xfff};
            } else {
                continue;
            }
            Recorder handlers;
            valid_args(info, args);
            args[i] = refused;
            CHECK(dispatch(handlers, kControl, info.number, args) == -LAMINA_EINVAL);
            CHECK(handlers.calls.empty());
            args[i] = ~u64{0};
            CHECK(dispatch(handlers, kControl, info.number, args) == -LAMINA_EINVAL);
            args[i] = accepted;
            CHECK(dispatch(handlers, kControl, info.number, args) == static_cast<i64>(1000 + info.number));
            REQUIRE(handlers.calls.size() == 1);
            CHECK(handlers.calls[0].args[i] == accepted);
        }
    }
    CHECK(narrow > 30);  // domain ids, ports, vCPUs, weights...
    CHECK(pages == 1);   // the event page
}

TEST_CASE("dispatch: handler results pass through unchanged", "[hypercall]") {
    for (i64 result : {i64{0}, i64{1}, i64{4095}, i64{-LAMINA_EFAULT}, i64{-LAMINA_EAGAIN}}) {
        Recorder handlers;
        handlers.behaviour = [result](const Caller&) { return result; };
        u64 args[kMaxArgs] = {};
        CHECK(dispatch(handlers, kControl, LAMINA_HYPERCALL_console_read, args) == result);
    }
}

TEST_CASE("dispatch: a continuation rewrites the arguments it names and returns kContinue", "[hypercall]") {
    Recorder handlers;
    handlers.behaviour = [](const Caller& caller) { return caller.continue_with({3, 0x2000, 16}); };
    u64 args[kMaxArgs] = {3, 0x1000, 32, 0xaa, 0xbb};
    CHECK(dispatch(handlers, kControl, LAMINA_HYPERCALL_domain_populate_memory, args) == kContinue);
    CHECK(args[0] == 3);
    CHECK(args[1] == 0x2000);
    CHECK(args[2] == 16);
    CHECK(args[3] == 0xaa);  // the arguments it did not name stay
    CHECK(args[4] == 0xbb);

    // Re-executed with those, the handler sees them.
    handlers.behaviour = nullptr;
    CHECK(dispatch(handlers, kControl, LAMINA_HYPERCALL_domain_populate_memory, args) ==
          1000 + LAMINA_HYPERCALL_domain_populate_memory);
    CHECK(handlers.calls.back().args == std::vector<u64>{3, 0x2000, 16});

    // kContinue is no errno a guest could be told.
    CHECK(std::string(lamina_errno_name(kContinue)) == "E?");
    // A Caller outside dispatch() has nowhere to write a continuation.
    const Caller loose = kControl;
    CHECK_THROWS_AS(loose.continue_with({1}), AssertionFailure);
}
