// The allocator for kernel objects (domains, vCPUs, event channels...).
//
// Requests up to 2048 bytes are served from power-of-two size classes (16 .. 2048 bytes), each
// carved out of single 4 KiB pages ("slabs"); larger requests get whole pages. Pages come from
// an injected PageSource, and a slab goes back to it as soon as its last object is freed, so
// destroying objects returns memory to the system.
//
// Frees are sized: the caller passes the size and alignment it allocated with (as C++ sized
// delete does). A slab page starts with a small header that identifies it, so a free with the
// wrong size, a pointer that no slab handed out, or a double free is caught by LAMINA_ASSERT.
// The header takes the first slot, which is why the large classes hold few objects per page:
// 1024 bytes -> 3 objects, 2048 bytes -> 1.
#pragma once

#include <lamina/list.h>
#include <lamina/new.h>
#include <lamina/spinlock.h>
#include <lamina/types.h>

namespace lamina {

class PageSource {
public:
    // `count` contiguous 4 KiB-aligned pages, or nullptr.
    virtual void* allocate_pages(usize count) = 0;
    virtual void free_pages(void* pages, usize count) = 0;

protected:
    ~PageSource() = default;
};

class ObjectAllocator {
public:
    static constexpr usize kPageSize = 4 * KiB;
    static constexpr usize kSmallestClass = 16;
    static constexpr usize kLargestClass = 2048;
    static constexpr usize kClassCount = 8;  // 16, 32, ..., 2048
    static constexpr usize kDefaultAlign = 16;

    struct ClassStats {
        usize object_size;
        usize objects_in_use;
        usize bytes_in_use;  // objects_in_use * object_size
        usize slabs;         // pages this class holds
    };

    explicit ObjectAllocator(PageSource& pages) : pages_(pages) {}
    ObjectAllocator(const ObjectAllocator&) = delete;
    ObjectAllocator& operator=(const ObjectAllocator&) = delete;

    // Memory for `size` bytes aligned to `align` (a power of two, at most a page), or nullptr
    // when out of memory or for a size of 0 or a bad alignment. Never panics.
    void* allocate(usize size, usize align = kDefaultAlign);
    // Gives back memory from allocate(size, align), with the same size and align. nullptr is
    // ignored.
    void free(void* object, usize size, usize align = kDefaultAlign);

    // Allocates and constructs a T; nullptr when out of memory.
    template <typename T, typename... Args>
    T* create(Args&&... args) {
        static_assert(alignof(T) <= kPageSize);
        void* memory = allocate(sizeof(T), alignof(T));
        return memory ? new (memory) T(static_cast<Args&&>(args)...) : nullptr;
    }
    // Destroys an object from create<T>(), through its own type (not a base class).
    template <typename T>
    void destroy(T* object) {
        if (!object) return;
        object->~T();
        free(object, sizeof(T), alignof(T));
    }

    ClassStats class_stats(usize class_index) const;
    usize large_pages() const;  // pages held by requests above the largest class
    usize pages_held() const;   // all pages taken from the PageSource and not yet returned

private:
    // A free slot holds the free-list link and a canary that marks it free.
    struct FreeSlot {
        FreeSlot* next;
        u64 canary;
    };
    // Sits at the start of every slab page.
    struct Slab {
        ListNode link;  // on its class's partial list while it has a free slot
        FreeSlot* free_slots;
        u32 magic;
        u16 in_use;
        u8 class_index;
    };
    using SlabList = IntrusiveList<Slab, &Slab::link>;

    struct SizeClass {
        SlabList partial;  // slabs with at least one free slot; full slabs are on no list
        usize objects_in_use = 0;
        usize slabs = 0;
    };

    void* allocate_slot(usize class_index);
    void free_slot(void* object, usize class_index);
    Slab* new_slab(usize class_index);

    PageSource& pages_;
    mutable SpinLock lock_;
    SizeClass classes_[kClassCount];
    usize large_pages_ = 0;
};

}  // namespace lamina
