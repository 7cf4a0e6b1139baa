#include <hypervisor/heap.h>

#include <hypervisor/memory.h>
#include <hypervisor/selftest.h>
#include <lamina/string.h>

namespace lamina {
namespace {

class FramePageSource final : public PageSource {
public:
    void* allocate_pages(usize count) override {
        u64 phys = memory::allocate_frames(count);
        return phys ? memory::phys_to_virt(phys) : nullptr;
    }
    void free_pages(void* pages, usize count) override {
        memory::free_frames(memory::virt_to_phys(pages), count);
    }
};

FramePageSource page_source;
ObjectAllocator allocator(page_source);

}  // namespace

ObjectAllocator& heap() { return allocator; }

LAMINA_SELFTEST("heap: every size class allocates, and empty slabs go back to the frames") {
    constexpr usize kSizes[] = {8, 16, 24, 64, 100, 512, 2048, 3000, 3 * 4096};
    void* objects[array_size(kSizes)][4];
    usize pages_before = allocator.pages_held();
    u64 free_before = memory::stats().free_bytes;
    for (usize s = 0; s < array_size(kSizes); ++s) {
        for (void*& object : objects[s]) {
            object = allocator.allocate(kSizes[s]);
            if (!t.expect(object != nullptr, "allocate({}) failed", kSizes[s])) return;
            t.expect(reinterpret_cast<uptr>(object) % 16 == 0, "allocate({}) is misaligned", kSizes[s]);
            str::fill_bytes(object, 0xa5, kSizes[s]);
        }
    }
    for (usize s = 0; s < array_size(kSizes); ++s)
        for (void* object : objects[s]) allocator.free(object, kSizes[s]);
    t.expect(allocator.pages_held() == pages_before, "{} pages still held", allocator.pages_held() - pages_before);
    t.expect(memory::stats().free_bytes == free_before, "free memory did not come back");
}

}  // namespace lamina
