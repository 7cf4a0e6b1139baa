#include <hypervisor/selftest.h>

#include <hypervisor/log.h>
#include <lamina/string.h>

extern "C" const lamina::selftest::Test __selftests_start[], __selftests_end[];

namespace lamina::selftest {

void Context::fail(const char* fmt, const FormatArg* args, usize count) {
    if (failed_) return;  // the first failure explains the test
    failed_ = true;
    BufferSink sink(reason_, sizeof(reason_));
    vformat(sink, fmt, args, count);
}

u32 run_all() {
    u32 passed = 0, failed = 0, number = 0;
    for (const Test* test = __selftests_start; test < __selftests_end; ++test) {
        Context context;
        test->run(context);
        ++number;
        if (context.failed()) {
            ++failed;
            log::print("not ok {} - {} # {}\n", number, test->name, context.reason());
        } else {
            ++passed;
            log::print("ok {} - {}\n", number, test->name);
        }
    }
    log::print("1..{}\n", number);
    log::print("LAMINA RESULT {} passed={} failed={}\n", failed == 0 && number > 0 ? "PASS" : "FAIL",
               passed, failed);
    return number == 0 ? 1 : failed;
}

}  // namespace lamina::selftest
