// Intrusive doubly linked list: objects carry their own ListNode, so linking never allocates.
//   struct Vcpu { ListNode run_link; };
//   IntrusiveList<Vcpu, &Vcpu::run_link> run_queue;
#pragma once

#include <lamina/assert.h>
#include <lamina/types.h>

namespace lamina {

struct ListNode {
    ListNode* prev = nullptr;
    ListNode* next = nullptr;
    bool linked() const { return next != nullptr; }
};

// The object whose member `member` (its `Member` field) is: the kernel's container_of.
template <typename T, typename M>
T* owner_of(M* member, M T::*Member) {
    // Offset of the member within T, computed on a dummy non-null address (no live object).
    constexpr uptr kProbe = 0x1000;
    const usize offset = reinterpret_cast<uptr>(&(reinterpret_cast<T*>(kProbe)->*Member)) - kProbe;
    return reinterpret_cast<T*>(reinterpret_cast<char*>(member) - offset);
}

template <typename T, ListNode T::*Link>
class IntrusiveList {
public:
    IntrusiveList() { head_.prev = head_.next = &head_; }
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;

    bool empty() const { return head_.next == &head_; }
    usize size() const { return size_; }

    void push_back(T& item) { insert_before(&head_, item); }
    void push_front(T& item) { insert_before(head_.next, item); }
    // Inserts item before position (which must be in this list).
    void insert_before(T& position, T& item) { insert_before(&(position.*Link), item); }

    void remove(T& item) {
        ListNode& node = item.*Link;
        LAMINA_ASSERT(node.linked());
        node.prev->next = node.next;
        node.next->prev = node.prev;
        node.prev = node.next = nullptr;
        --size_;
    }

    T* front() { return empty() ? nullptr : owner(head_.next); }
    T* back() { return empty() ? nullptr : owner(head_.prev); }
    T* pop_front() {
        T* item = front();
        if (item) remove(*item);
        return item;
    }
    T* next(T& item) {
        ListNode* n = (item.*Link).next;
        return n == &head_ ? nullptr : owner(n);
    }

    class Iterator {
    public:
        Iterator(ListNode* node) : node_(node) {}
        T& operator*() const { return *owner(node_); }
        T* operator->() const { return owner(node_); }
        Iterator& operator++() {
            node_ = node_->next;
            return *this;
        }
        bool operator!=(const Iterator& other) const { return node_ != other.node_; }

    private:
        ListNode* node_;
    };
    Iterator begin() { return Iterator(head_.next); }
    Iterator end() { return Iterator(&head_); }

private:
    static T* owner(ListNode* node) { return owner_of(node, Link); }
    void insert_before(ListNode* position, T& item) {
        ListNode& node = item.*Link;
        LAMINA_ASSERT(!node.linked());
        // An unlinked position has no neighbours: linking to it would follow a null prev.
        LAMINA_ASSERT(position->linked());
        node.next = position;
        node.prev = position->prev;
        position->prev->next = &node;
        position->prev = &node;
        ++size_;
    }

    ListNode head_;
    usize size_ = 0;
};

}  // namespace lamina
