// Stage-2 protection changed while the guest runs: the page is writable at first; once the
// guest has said so, the self-test makes it read-only in stage 2 (kProtectedPage) and lets the
// guest go on. It can still read the page, and its next write must end it with a stage-2 fault
// naming that address and a write: the change reached a vCPU that had already run.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64) {
    constexpr u64 kProtectedPage = 0x300000;  // must match hypervisor/guest/guest_selftests.cpp
    Checks t;
    volatile u64* page = reinterpret_cast<volatile u64*>(kProtectedPage);
    *page = 0x600d;
    t.expect(*page == 0x600d, "stage2: the page is writable before the change");
    // The self-test protects the page once it has seen the line above.
    t.expect(*page == 0x600d, "stage2: the read-only page still reads");
    t.finish();
    *page = 1;  // the hypervisor ends the guest here
}
