// A guest that writes outside its RAM (its page tables map 1 GiB; the hypervisor gave it 4 MiB):
// the stage-2 fault must end it with a report naming the guest-physical address.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64) {
    Console console;
    format(console, "about to write outside my memory\n");
    *reinterpret_cast<volatile u64*>(0x20000000) = 0x5a;
}
