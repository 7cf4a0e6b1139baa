// A CPU-bound guest for the scheduler's figures: it says hello, then computes forever without a
// single exit of its own, so that only the scheduler's timer takes the CPU from it.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64) {
    Console console;
    format(console, "spinner: spinning\n");
    volatile u64 work = 0;
    for (;;) work = work * 6364136223846793005u + 1442695040888963407u;
}
