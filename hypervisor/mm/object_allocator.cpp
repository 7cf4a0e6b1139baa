#include <hypervisor/mm/object_allocator.h>

#include <lamina/assert.h>

namespace lamina {
namespace {

constexpr u32 kSlabMagic = 0x51ab'51ab;
constexpr u64 kFreeCanary = 0xdead'f4ee'dead'f4ee;

usize slot_size(usize class_index) { return ObjectAllocator::kSmallestClass << class_index; }

// Picks the size class that satisfies both size and alignment (slots are aligned to their
// size); false when the request needs whole pages.
bool class_for(usize size, usize align, usize* class_index) {
    const usize needed = max(max(size, align), ObjectAllocator::kSmallestClass);
    if (needed > ObjectAllocator::kLargestClass) return false;
    const usize log2_size = 64 - static_cast<usize>(__builtin_clzll(needed - 1));
    *class_index = log2_size - 4;  // 16 bytes is class 0
    return true;
}

usize page_count(usize size) {
    return size / ObjectAllocator::kPageSize + (size % ObjectAllocator::kPageSize != 0);
}

bool valid_request(usize size, usize align) {
    return size != 0 && is_power_of_two(align) && align <= ObjectAllocator::kPageSize;
}

}  // namespace

static_assert(ObjectAllocator::kSmallestClass << (ObjectAllocator::kClassCount - 1) ==
              ObjectAllocator::kLargestClass);

ObjectAllocator::Slab* ObjectAllocator::new_slab(usize class_index) {
    static_assert(sizeof(FreeSlot) <= kSmallestClass);
    void* page = pages_.allocate_pages(1);
    if (!page) return nullptr;
    LAMINA_ASSERT(is_aligned(reinterpret_cast<uptr>(page), kPageSize));  // PageSource contract
    Slab* slab = new (page) Slab{};
    slab->magic = kSlabMagic;
    slab->class_index = static_cast<u8>(class_index);

    // Thread the free list through every slot, lowest address first. The header takes the
    // first slot (two for the 16-byte class), so that every slot stays aligned to its size.
    const usize size = slot_size(class_index);
    const usize first_offset = align_up(sizeof(Slab), size);
    char* base = static_cast<char*>(page);
    FreeSlot* head = nullptr;
    for (usize offset = kPageSize - size; offset >= first_offset; offset -= size) {
        head = new (base + offset) FreeSlot{head, kFreeCanary};
    }
    slab->free_slots = head;
    ++classes_[class_index].slabs;
    return slab;
}

void* ObjectAllocator::allocate_slot(usize class_index) {
    SizeClass& size_class = classes_[class_index];
    Slab* slab = size_class.partial.front();
    if (!slab) {
        slab = new_slab(class_index);
        if (!slab) return nullptr;
        size_class.partial.push_front(*slab);
    }
    FreeSlot* slot = slab->free_slots;
    slab->free_slots = slot->next;
    slot->canary = 0;  // a live object must not look free
    ++slab->in_use;
    ++size_class.objects_in_use;
    if (!slab->free_slots) size_class.partial.remove(*slab);
    return slot;
}

void ObjectAllocator::free_slot(void* object, usize class_index) {
    const uptr address = reinterpret_cast<uptr>(object);
    Slab* slab = reinterpret_cast<Slab*>(align_down(address, kPageSize));
    const usize size = slot_size(class_index);
    const usize offset = address - reinterpret_cast<uptr>(slab);
    // The page must be a slab of this very class, and the pointer one of its slots.
    LAMINA_ASSERT(slab->magic == kSlabMagic && slab->class_index == class_index);
    LAMINA_ASSERT(offset >= align_up(sizeof(Slab), size) && offset % size == 0);
    FreeSlot* slot = static_cast<FreeSlot*>(object);
    if (slot->canary == kFreeCanary) {
        // Live data may match the canary by chance: only a slot on the free list is a double
        // free.
        for (FreeSlot* free = slab->free_slots; free; free = free->next) {
            LAMINA_ASSERT(free != slot);
        }
    }

    SizeClass& size_class = classes_[class_index];
    const bool was_full = !slab->free_slots;
    slab->free_slots = new (object) FreeSlot{slab->free_slots, kFreeCanary};
    --slab->in_use;
    --size_class.objects_in_use;
    if (slab->in_use == 0) {
        // An empty slab goes straight back, so that freed objects return memory.
        if (!was_full) size_class.partial.remove(*slab);
        slab->magic = 0;  // a stale pointer into the recycled page is no longer accepted
        --size_class.slabs;
        pages_.free_pages(slab, 1);
    } else if (was_full) {
        size_class.partial.push_front(*slab);
    }
}

void* ObjectAllocator::allocate(usize size, usize align) {
    if (!valid_request(size, align)) return nullptr;
    usize class_index;
    LockGuard guard(lock_);
    if (class_for(size, align, &class_index)) return allocate_slot(class_index);
    const usize pages = page_count(size);
    void* memory = pages_.allocate_pages(pages);
    if (memory) {
        LAMINA_ASSERT(is_aligned(reinterpret_cast<uptr>(memory), kPageSize));
        large_pages_ += pages;
    }
    return memory;
}

void ObjectAllocator::free(void* object, usize size, usize align) {
    if (!object) return;
    LAMINA_ASSERT(valid_request(size, align));
    usize class_index;
    LockGuard guard(lock_);
    if (class_for(size, align, &class_index)) {
        free_slot(object, class_index);
        return;
    }
    const usize pages = page_count(size);
    LAMINA_ASSERT(is_aligned(reinterpret_cast<uptr>(object), kPageSize) && pages <= large_pages_);
    large_pages_ -= pages;
    pages_.free_pages(object, pages);
}

ObjectAllocator::ClassStats ObjectAllocator::class_stats(usize class_index) const {
    LAMINA_ASSERT(class_index < kClassCount);
    LockGuard guard(lock_);
    const SizeClass& size_class = classes_[class_index];
    const usize size = slot_size(class_index);
    return {size, size_class.objects_in_use, size_class.objects_in_use * size, size_class.slabs};
}

usize ObjectAllocator::large_pages() const {
    LockGuard guard(lock_);
    return large_pages_;
}

usize ObjectAllocator::pages_held() const {
    LockGuard guard(lock_);
    usize pages = large_pages_;
    for (const SizeClass& size_class : classes_) pages += size_class.slabs;
    return pages;
}

}  // namespace lamina
