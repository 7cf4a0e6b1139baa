// Dom0's boot modules as the hypervisor leaves them: a start info, its module list and names,
// and the modules' bytes, in a host buffer that stands for Dom0's memory.
#pragma once

#include <dom0/toolstack/images.h>

#include <cstring>
#include <string>
#include <vector>

namespace lamina::test {

struct Log final : Sink {
    std::string text;
    void write(const char* data, usize length) override { text.append(data, length); }
};

// Dom0's readable memory: guest-physical [kBase, kBase + kSize) in a host buffer, with a start
// info whose module list and names the tests fill in.
struct Dom0Memory {
    static constexpr u64 kBase = 0x100000;
    static constexpr u64 kSize = 0x10000;
    static constexpr u64 kListAt = kBase + 0x100;
    static constexpr u64 kNamesAt = kBase + 0x1000;
    static constexpr u64 kDataAt = kBase + 0x2000;

    std::vector<u8> bytes = std::vector<u8>(kSize, 0);
    pvh::StartInfo start{pvh::kStartInfoMagic, pvh::kStartInfoVersion, 0, 0, kListAt, 0, 0, 0, 0, 0};
    u64 next_name = kNamesAt;
    u64 next_data = kDataAt;

    toolstack::ReadableMemory readable() const { return {kBase, kSize, reinterpret_cast<uptr>(bytes.data())}; }
    u8* at(u64 gpa) { return bytes.data() + (gpa - kBase); }

    // A module entry as the hypervisor writes it; `name` null for none.
    void add(const std::string& data, const char* name) {
        u64 name_gpa = 0;
        if (name) {
            name_gpa = next_name;
            std::memcpy(at(name_gpa), name, std::strlen(name) + 1);
            next_name += 64;
        }
        std::memcpy(at(next_data), data.data(), data.size());
        add_entry({next_data, data.size(), name_gpa, 0});
        next_data += align_up(data.size() + 1, 0x100);
    }
    void add_entry(const pvh::ModuleEntry& entry) {
        std::memcpy(at(kListAt + start.module_count * sizeof(entry)), &entry, sizeof(entry));
        ++start.module_count;
    }

    std::string load(toolstack::ImageDirectory& images) {
        Log log;
        images.load(start, readable(), log);
        return log.text;
    }
};

}  // namespace lamina::test
