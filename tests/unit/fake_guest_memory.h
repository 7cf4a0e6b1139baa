// Guest-physical memory in host memory for tests of the emulator: sparse RAM pages, and every
// other address is not RAM (a device, or nothing).
#pragma once

#include <hypervisor/emulate/guest_page_walk.h>

#include <array>
#include <map>
#include <stdexcept>

namespace lamina::testing {

class FakeGuestMemory final : public emulate::GuestPhysicalReader {
public:
    static constexpr u64 kPageSize = 4096;

    // Makes the pages of [gpa, gpa + size) RAM, zero-filled.
    void add_ram(u64 gpa, u64 size) {
        for (u64 page = gpa & ~(kPageSize - 1); page < gpa + size; page += kPageSize) pages_[page];
    }

    // Writes into RAM (a test that writes elsewhere is wrong, and throws).
    void write(u64 gpa, const void* data, usize size) {
        const auto* bytes = static_cast<const u8*>(data);
        for (usize i = 0; i < size; ++i) {
            auto page = pages_.find((gpa + i) & ~(kPageSize - 1));
            if (page == pages_.end()) throw std::logic_error("a test wrote outside guest RAM");
            page->second[(gpa + i) & (kPageSize - 1)] = bytes[i];
        }
    }
    void write64(u64 gpa, u64 value) { write(gpa, &value, sizeof value); }
    void write32(u64 gpa, u32 value) { write(gpa, &value, sizeof value); }

    bool read(u64 gpa, void* out, usize size) override {
        ++reads;
        for (usize i = 0; i < size; ++i) {
            if (!pages_.count((gpa + i) & ~(kPageSize - 1))) return false;
        }
        for (usize i = 0; i < size; ++i) {
            static_cast<u8*>(out)[i] = pages_[(gpa + i) & ~(kPageSize - 1)][(gpa + i) & (kPageSize - 1)];
        }
        return true;
    }

    int reads = 0;

private:
    std::map<u64, std::array<u8, kPageSize>> pages_;
};

}  // namespace lamina::testing
