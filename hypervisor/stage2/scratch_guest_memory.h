// Guest memory for the virtualization backends' self-tests: 2 MiB of fresh zeroed frames at
// guest-physical 0, read/write/execute and write-back, in the machine's stage-2 format. Every
// frame and table comes back when it is destroyed. Image only.
#pragma once

#include <hypervisor/memory.h>
#include <hypervisor/stage2/frame_table_memory.h>
#include <hypervisor/vcpu.h>
#include <lamina/string.h>

namespace lamina::stage2 {

class ScratchGuestMemory {
public:
    static constexpr u64 kBytes = 2 * MiB;

    explicit ScratchGuestMemory(Stage2Format format) : space_(format, frame_table_memory) {}
    ~ScratchGuestMemory() {
        space_.destroy();
        if (backing_) memory::free_frames(backing_, kBytes / kPageBytes);
    }
    ScratchGuestMemory(const ScratchGuestMemory&) = delete;
    ScratchGuestMemory& operator=(const ScratchGuestMemory&) = delete;

    bool init() {
        backing_ = memory::allocate_frames(kBytes / kPageBytes);
        return backing_ && space_.init() == Status::Ok &&
               space_.map(0, backing_, kBytes, {.read = true, .write = true, .execute = true}).ok();
    }
    Stage2Binding binding() const { return {space_.root(), &space_.generation_counter()}; }

    template <typename T = u8>
    T* at(u64 gpa) const {
        return reinterpret_cast<T*>(static_cast<u8*>(memory::phys_to_virt(backing_)) + gpa);
    }
    void copy(u64 gpa, const void* bytes, usize size) const { str::copy_bytes(at(gpa), bytes, size); }
    void write64(u64 gpa, u64 value) const { *at<u64>(gpa) = value; }

private:
    static constexpr u64 kPageBytes = 4 * KiB;
    GuestSpace space_;
    u64 backing_ = 0;
};

}  // namespace lamina::stage2
