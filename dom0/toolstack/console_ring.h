// Dom0's end of a domain's console (struct lamina_console_ring, lib/include/lamina/abi/console.h):
// it consumes `out`, which the hypervisor fills with what the domain writes to port 0xE9, and
// produces `in`, the typed bytes the domain reads.
//
// The page is the domain's RAM: the domain can write any of it at any time. Dom0 keeps its own
// indices (out's consumer, in's producer) and only reads the other two, and an index that says
// more than a ring holds is not believed: Dom0 resynchronises to it, dropping what it cannot
// trust, and counts that. Every byte Dom0 touches is inside the ring arrays.
#pragma once

#include <lamina/abi/console.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::toolstack {

class ConsoleRing {
public:
    // Dom0's indices start where the page has them: 0 on the page of a domain not yet run.
    void attach(lamina_console_ring* ring);

    // Copies up to `capacity` bytes of new output into `buffer`; how many.
    usize read_output(char* buffer, usize capacity);
    // Puts up to `length` bytes into the domain's input; how many fit.
    usize write_input(const char* data, usize length);

    // How often an index of the domain's was not believable.
    u64 resyncs() const { return resyncs_; }

private:
    lamina_console_ring* ring_ = nullptr;
    u32 out_consumed_ = 0;
    u32 in_produced_ = 0;
    u64 resyncs_ = 0;
};

// The last kCapacity bytes of a domain's output, for `console` to show first.
class ConsoleHistory {
public:
    static constexpr usize kCapacity = 4096;

    void append(const char* data, usize length);
    // Writes the history to `sink`, oldest byte first.
    void replay(Sink& sink) const;
    // Bytes ever appended (the history keeps the last kCapacity of them).
    u64 total() const { return total_; }

private:
    char bytes_[kCapacity] = {};
    u64 total_ = 0;  // bytes ever appended; the newest is at (total_ - 1) % kCapacity
};

}  // namespace lamina::toolstack
