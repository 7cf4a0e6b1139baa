// Stage-2 protection from the guest's side: the self-test makes one page of this guest's RAM
// read-only in stage 2 before it starts (kProtectedPage). The guest can read it, and its first
// write there must end it with a stage-2 fault naming that address and a write.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64) {
    constexpr u64 kProtectedPage = 0x300000;  // must match hypervisor/guest/guest_selftests.cpp
    Checks t;
    volatile u64* page = reinterpret_cast<volatile u64*>(kProtectedPage);
    t.expect(*page == 0, "stage2: the read-only page reads (zero-filled RAM)");
    t.finish();
    *page = 1;  // the hypervisor ends the guest here
}
