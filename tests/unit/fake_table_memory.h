// A page-table memory policy in host memory, for tests of code built on the page-table engine.
// Table addresses are never reused, so a walk through a freed table fails loudly instead of
// reading a recycled one.
#pragma once

#include <lamina/types.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace lamina::testing {

class FakeTableMemory {
public:
    static constexpr u64 kFirstTable = 0x10'0000'0000;
    static constexpr u64 kTableBytes = 4 * KiB;

    u64 allocate_table() {
        if (live_ >= budget_) return 0;
        tables_.push_back(std::make_unique<Table>());
        ++live_;
        return kFirstTable + (tables_.size() - 1) * kTableBytes;
    }
    void free_table(u64 phys) {
        slot(phys).reset();
        --live_;
    }
    u64* table(u64 phys) { return slot(phys)->entries; }

    usize live() const { return live_; }
    // Allocations fail once `tables` tables are live.
    void set_budget(usize tables) { budget_ = tables; }

    // The entry holding `value` in some live table (to play the CPU setting A/D bits).
    u64* find_entry(u64 value) {
        for (auto& table : tables_) {
            if (!table) continue;
            for (u64& entry : table->entries) {
                if (entry == value) return &entry;
            }
        }
        return nullptr;
    }

    // Calls visit(u64 entry) for every nonzero entry of every live table.
    template <typename Visit>
    void for_each_entry(Visit&& visit) const {
        for (const auto& table : tables_) {
            if (!table) continue;
            for (u64 entry : table->entries) {
                if (entry) visit(entry);
            }
        }
    }

private:
    struct Table {
        u64 entries[512] = {};
    };

    std::unique_ptr<Table>& slot(u64 phys) {
        const u64 index = (phys - kFirstTable) / kTableBytes;
        if (phys < kFirstTable || phys % kTableBytes != 0 || index >= tables_.size() ||
            !tables_[index]) {
            throw std::logic_error("a table that is not live was used");
        }
        return tables_[index];
    }

    std::vector<std::unique_ptr<Table>> tables_;
    usize live_ = 0;
    usize budget_ = ~usize{0};
};

}  // namespace lamina::testing
