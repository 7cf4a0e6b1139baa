#include <catch2/catch.hpp>

#include <lamina/list.h>

#include "test_support.h"

#include <algorithm>
#include <random>
#include <vector>

using namespace lamina;

namespace {

// The links sit after other members, so owner() has a non-zero offset to undo; two links let
// one object be on two lists at once.
struct Item {
    int id;
    u64 padding[3] = {};
    ListNode run_link;
    ListNode all_link;
    explicit Item(int i) : id(i) {}
};

using RunList = IntrusiveList<Item, &Item::run_link>;
using AllList = IntrusiveList<Item, &Item::all_link>;

template <typename List>
std::vector<int> ids(List& list) {
    std::vector<int> out;
    for (Item& item : list) out.push_back(item.id);
    return out;
}

// The same order once more through front()/next(), and size() agrees with both walks.
template <typename List>
std::vector<int> ids_by_next(List& list) {
    std::vector<int> out;
    for (Item* item = list.front(); item; item = list.next(*item)) out.push_back(item->id);
    return out;
}

template <typename List>
void check_order(List& list, const std::vector<int>& expected) {
    CHECK(ids(list) == expected);
    CHECK(ids_by_next(list) == expected);
    CHECK(list.size() == expected.size());
    CHECK(list.empty() == expected.empty());
    if (expected.empty()) {
        CHECK(list.front() == nullptr);
        CHECK(list.back() == nullptr);
    } else {
        REQUIRE(list.front() != nullptr);
        REQUIRE(list.back() != nullptr);
        CHECK(list.front()->id == expected.front());
        CHECK(list.back()->id == expected.back());
    }
}

}  // namespace

TEST_CASE("list: an empty list") {
    RunList list;
    check_order(list, {});
    CHECK(list.pop_front() == nullptr);
    CHECK_FALSE(list.begin() != list.end());
}

TEST_CASE("list: push_back, push_front and insert_before keep order") {
    Item a(1), b(2), c(3), d(4), e(5);
    RunList list;
    list.push_back(b);
    check_order(list, {2});
    list.push_back(d);
    list.push_front(a);
    check_order(list, {1, 2, 4});
    list.insert_before(d, c);  // in the middle
    check_order(list, {1, 2, 3, 4});
    list.insert_before(a, e);  // before the front: becomes the new front
    check_order(list, {5, 1, 2, 3, 4});
    CHECK(c.run_link.linked());
    CHECK_FALSE(c.all_link.linked());
}

TEST_CASE("list: returned pointers are the containing objects") {
    Item a(7);
    RunList list;
    list.push_back(a);
    CHECK(list.front() == &a);
    CHECK(list.back() == &a);
    CHECK(list.next(a) == nullptr);
    CHECK(list.begin()->id == 7);
    (*list.begin()).id = 8;  // iteration yields references to the real objects
    CHECK(a.id == 8);
}

TEST_CASE("list: remove from front, middle and back") {
    Item a(1), b(2), c(3), d(4);
    RunList list;
    for (Item* item : {&a, &b, &c, &d}) list.push_back(*item);

    list.remove(b);
    CHECK_FALSE(b.run_link.linked());
    check_order(list, {1, 3, 4});
    list.remove(d);
    check_order(list, {1, 3});
    list.remove(a);
    check_order(list, {3});
    list.remove(c);
    check_order(list, {});

    // A removed node can be linked again, anywhere.
    list.push_back(b);
    list.push_front(d);
    check_order(list, {4, 2});
}

TEST_CASE("list: pop_front drains in FIFO order") {
    Item items[] = {Item(10), Item(11), Item(12)};
    RunList list;
    for (Item& item : items) list.push_back(item);
    for (int expected = 10; expected <= 12; ++expected) {
        Item* item = list.pop_front();
        REQUIRE(item != nullptr);
        CHECK(item->id == expected);
        CHECK_FALSE(item->run_link.linked());
    }
    CHECK(list.pop_front() == nullptr);
    check_order(list, {});
}

TEST_CASE("list: one object on two lists through two links") {
    Item a(1), b(2), c(3);
    RunList run;
    AllList all;
    for (Item* item : {&a, &b, &c}) all.push_back(*item);
    run.push_back(c);
    run.push_back(a);
    check_order(all, {1, 2, 3});
    check_order(run, {3, 1});
    all.remove(a);
    check_order(all, {2, 3});
    check_order(run, {3, 1});  // the other list is unaffected
    CHECK(a.run_link.linked());
}

TEST_CASE("list: misuse trips LAMINA_ASSERT and leaves the list intact") {
    Item a(1), b(2), stranger(3);
    RunList list;
    RunList other;
    list.push_back(a);
    list.push_back(b);

    CHECK_THROWS_AS(list.remove(stranger), AssertionFailure);  // not linked
    CHECK_THROWS_AS(list.push_back(a), AssertionFailure);  // already linked here
    CHECK_THROWS_AS(list.push_front(b), AssertionFailure);
    CHECK_THROWS_AS(list.insert_before(a, b), AssertionFailure);
    CHECK_THROWS_AS(other.push_back(a), AssertionFailure);  // linked on another list
    CHECK_THROWS_AS(list.insert_before(stranger, stranger), AssertionFailure);
    // A position that is on no list has no neighbours to link to.
    Item item(4);
    CHECK_THROWS_AS(list.insert_before(stranger, item), AssertionFailure);
    CHECK_FALSE(item.run_link.linked());

    check_order(list, {1, 2});
    check_order(other, {});

    list.remove(a);
    CHECK_THROWS_AS(list.remove(a), AssertionFailure);  // twice
    check_order(list, {2});
}

TEST_CASE("list: randomized operations agree with a vector model") {
    std::mt19937 rng(20240611);  // fixed seed: failures reproduce
    std::vector<Item> pool;
    pool.reserve(32);  // no reallocation: the list holds addresses
    for (int i = 0; i < 32; ++i) pool.emplace_back(i);
    RunList list;
    std::vector<int> model;

    for (int step = 0; step < 3000; ++step) {
        Item& item = pool[rng() % pool.size()];
        const bool in_list = std::find(model.begin(), model.end(), item.id) != model.end();
        REQUIRE(item.run_link.linked() == in_list);
        switch (rng() % 5) {
            case 0:
                if (!in_list) {
                    list.push_back(item);
                    model.push_back(item.id);
                }
                break;
            case 1:
                if (!in_list) {
                    list.push_front(item);
                    model.insert(model.begin(), item.id);
                }
                break;
            case 2:
                if (!in_list && !model.empty()) {
                    const usize at = rng() % model.size();
                    list.insert_before(pool[static_cast<usize>(model[at])], item);
                    model.insert(model.begin() + static_cast<long>(at), item.id);
                }
                break;
            case 3:
                if (in_list) {
                    list.remove(item);
                    model.erase(std::find(model.begin(), model.end(), item.id));
                }
                break;
            case 4: {
                Item* popped = list.pop_front();
                if (model.empty()) {
                    REQUIRE(popped == nullptr);
                } else {
                    REQUIRE(popped != nullptr);
                    REQUIRE(popped->id == model.front());
                    model.erase(model.begin());
                }
                break;
            }
        }
        REQUIRE(list.size() == model.size());
        if (step % 50 == 0) check_order(list, model);
    }
    check_order(list, model);
}
