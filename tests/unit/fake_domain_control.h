// The hypervisor's domain control as Dom0's toolstack sees it, in host memory: domains with RAM
// in buffers, Dom0's mappings of their frames, ports. It records every call, can make any call
// fail, and refuses what the hypervisor would (mapping frames that are not RAM, a frame mapped
// twice, destroying a domain Dom0 still maps).
#pragma once

#include <dom0/toolstack/domain_builder.h>
#include <dom0/toolstack/scheduling.h>
#include <lamina/abi/errno.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace lamina::test {

class FakeDomainControl final : public toolstack::DomainControl {
public:
    struct Domain {
        std::string name;
        u64 max_pages = 0;
        u32 max_vcpus = 1;
        std::vector<u8> ram;
        lamina_vcpu_context context{};
        bool has_context = false;
        u32 state = LAMINA_DOMAIN_BUILDING;
        u32 shutdown_reason = 0;
        bool faulted = false;
        std::string fault_reason;
        u64 console_gfn = 0;
        u32 console_port = 0;
        u64 cpu_time_ns = 0;
        u32 weight = LAMINA_SCHED_WEIGHT_DEFAULT;
        u32 cap = 0;
        std::vector<lamina_sched_affinity> affinity;  // one per vCPU: every CPU, no soft
    };
    struct Mapping {
        u16 domid;
        u64 gfn;
        u64 count;
    };

    std::map<u16, Domain> domains;
    std::map<u64, Mapping> mappings;  // by Dom0's first frame
    std::set<u32> ports;
    std::vector<std::string> calls;
    std::map<std::string, i64> failures;  // a call's name -> what it returns instead
    u32 host_cpus = 4;
    u16 next_domid = 1;
    u32 next_port = 5;

    Domain& domain(u16 domid) { return domains.at(domid); }
    u8* ram(u16 domid, u64 gpa) { return domains.at(domid).ram.data() + gpa; }

    i64 create(const char* name, u32 kind) override {
        if (i64 r = call("create", name, kind)) return r;
        for (const auto& [id, d] : domains)
            if (d.name == name) return -LAMINA_EEXIST;
        domains[next_domid].name = name;
        return next_domid++;
    }
    i64 set_max_memory(u16 domid, u64 max_pages) override {
        if (i64 r = call("set_max_memory", domid, max_pages)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        domain(domid).max_pages = max_pages;
        return 0;
    }
    i64 populate_memory(u16 domid, u64 first_gfn, u64 count) override {
        if (i64 r = call("populate_memory", domid, first_gfn, count)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        Domain& d = domain(domid);
        if (first_gfn != d.ram.size() / 4096) return -LAMINA_EINVAL;  // the fake grows RAM from 0 only
        if (first_gfn + count > d.max_pages) return -LAMINA_ENOSPC;
        d.ram.resize((first_gfn + count) * 4096, 0);
        return 0;
    }
    i64 set_max_vcpus(u16 domid, u32 count) override {
        if (i64 r = call("set_max_vcpus", domid, count)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        domain(domid).max_vcpus = count;
        lamina_sched_affinity every_cpu{};
        for (u64& word : every_cpu.hard) word = ~u64{0};
        domain(domid).affinity.assign(count, every_cpu);
        return 0;
    }
    i64 map_frames(u16 domid, u64 first_gfn, u64 count, u64 local_gfn) override {
        if (i64 r = call("map_frames", domid, first_gfn, count, hex(local_gfn))) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (count == 0 || first_gfn + count > domain(domid).ram.size() / 4096) return -LAMINA_EINVAL;
        for (const auto& [local, m] : mappings)
            if (local < local_gfn + count && local_gfn < local + m.count) return -LAMINA_EEXIST;
        mappings[local_gfn] = {domid, first_gfn, count};
        return 0;
    }
    i64 unmap_frames(u64 local_gfn, u64 count) override {
        if (i64 r = call("unmap_frames", hex(local_gfn), count)) return r;
        auto m = mappings.find(local_gfn);
        if (m == mappings.end() || m->second.count != count) return -LAMINA_EINVAL;
        mappings.erase(m);
        return 0;
    }
    i64 set_vcpu_context(u16 domid, u32 vcpu, const lamina_vcpu_context& context) override {
        if (i64 r = call("set_vcpu_context", domid, vcpu)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        domain(domid).context = context;
        domain(domid).has_context = true;
        return 0;
    }
    i64 evtchn_alloc_unbound(u16 remote_domid) override {
        if (i64 r = call("evtchn_alloc_unbound", remote_domid)) return r;
        ports.insert(next_port);
        return next_port++;
    }
    i64 evtchn_send(u32 port) override {
        if (i64 r = call("evtchn_send", port)) return r;
        return ports.count(port) ? 0 : -LAMINA_EINVAL;
    }
    i64 evtchn_close(u32 port) override {
        if (i64 r = call("evtchn_close", port)) return r;
        return ports.erase(port) ? 0 : -LAMINA_EINVAL;
    }
    i64 set_console(u16 domid, u64 ring_gfn, u32 port) override {
        if (i64 r = call("set_console", domid, ring_gfn, port)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (ring_gfn >= domain(domid).ram.size() / 4096 || !ports.count(port)) return -LAMINA_EINVAL;
        domain(domid).console_gfn = ring_gfn;
        domain(domid).console_port = port;
        return 0;
    }
    i64 pause(u16 domid) override {
        if (i64 r = call("pause", domid)) return r;
        return change_state(domid, LAMINA_DOMAIN_RUNNING, LAMINA_DOMAIN_PAUSED);
    }
    i64 unpause(u16 domid) override {
        if (i64 r = call("unpause", domid)) return r;
        if (domains.count(domid) && domain(domid).state == LAMINA_DOMAIN_BUILDING) {
            if (!domain(domid).has_context) return -LAMINA_EINVAL;
            domain(domid).state = LAMINA_DOMAIN_PAUSED;
        }
        return change_state(domid, LAMINA_DOMAIN_PAUSED, LAMINA_DOMAIN_RUNNING);
    }
    i64 shutdown(u16 domid, u32 reason) override {
        if (i64 r = call("shutdown", domid, reason)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        end(domid, reason);
        return 0;
    }
    i64 destroy(u16 domid) override {
        if (i64 r = call("destroy", domid)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        for (const auto& [local, m] : mappings)
            if (m.domid == domid) return -LAMINA_EBUSY;
        domains.erase(domid);
        return 0;
    }
    i64 get_info(u16 domid, lamina_domain_info& info) override {
        if (i64 r = call("get_info", domid)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        const Domain& d = domain(domid);
        info = {};
        info.domid = domid;
        info.flags = d.faulted ? LAMINA_DOMAIN_FAULTED : 0;
        info.state = d.state;
        info.shutdown_reason = d.shutdown_reason;
        info.max_vcpus = d.max_vcpus;
        info.max_pages = d.max_pages;
        info.pages = d.ram.size() / 4096;
        info.cpu_time_ns = d.cpu_time_ns;
        std::snprintf(info.name, sizeof(info.name), "%s", d.name.c_str());
        return 0;
    }
    i64 get_fault_report(u16 domid, lamina_fault_report& report) override {
        if (i64 r = call("get_fault_report", domid)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (!domain(domid).faulted) return -LAMINA_ENOENT;
        report = {};
        std::snprintf(report.reason, sizeof(report.reason), "%s", domain(domid).fault_reason.c_str());
        return 0;
    }
    // As the hypervisor: -EINVAL for a weight or cap out of range, or a hard affinity without a
    // CPU of the host's `host_cpus`.
    i64 sched_set_domain(u16 domid, u32 weight, u32 cap) override {
        if (i64 r = call("sched_set_domain", domid, weight, cap)) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (weight < LAMINA_SCHED_WEIGHT_MIN || weight > LAMINA_SCHED_WEIGHT_MAX || cap > 100 * host_cpus)
            return -LAMINA_EINVAL;
        domain(domid).weight = weight;
        domain(domid).cap = cap;
        return 0;
    }
    i64 sched_set_affinity(u16 domid, u32 vcpu, const lamina_sched_affinity& affinity) override {
        if (i64 r = call("sched_set_affinity", domid, vcpu, cpu_words(affinity.hard))) return r;
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (vcpu >= domain(domid).affinity.size()) return -LAMINA_EINVAL;
        const toolstack::CpuSet hard = toolstack::cpu_set_of(affinity.hard);
        bool online = false;
        for (u32 cpu = 0; cpu < host_cpus; ++cpu) online = online || hard.contains(cpu);
        if (!online) return -LAMINA_EINVAL;
        domain(domid).affinity[vcpu] = affinity;
        return 0;
    }
    u8* local_frames(u64 local_gfn, u64 count) override {
        for (const auto& [local, m] : mappings)
            if (local <= local_gfn && local_gfn + count <= local + m.count)
                return ram(m.domid, (m.gfn + local_gfn - local) * 4096);
        return nullptr;
    }

    // The domain ends as its shutdown call with `reason` would end it.
    void end(u16 domid, u32 reason, const char* fault = nullptr) {
        domain(domid).state = LAMINA_DOMAIN_SHUTTING_DOWN;
        domain(domid).shutdown_reason = reason;
        domain(domid).faulted = fault != nullptr;
        domain(domid).fault_reason = fault ? fault : "";
    }
    // The calls from the last `since` on, by name only.
    std::vector<std::string> names(size_t since = 0) const {
        std::vector<std::string> out;
        for (size_t i = since; i < calls.size(); ++i) out.push_back(calls[i].substr(0, calls[i].find(' ')));
        return out;
    }

private:
    static std::string hex(u64 value) {
        char text[24];
        std::snprintf(text, sizeof(text), "%#llx", static_cast<unsigned long long>(value));
        return text;
    }
    // A bitmap as the calls record it: its words in hex, lowest first ("0xf,0,0,0").
    static std::string cpu_words(const u64 (&bitmap)[toolstack::CpuSet::kWords]) {
        std::string out;
        for (u64 word : bitmap) out += (out.empty() ? "" : ",") + hex(word);
        return out;
    }
    static std::string word(const std::string& s) { return s; }
    static std::string word(const char* s) { return s; }
    template <typename T>
    static std::string word(T value) {
        return std::to_string(value);
    }
    template <typename... Args>
    i64 call(const char* name, const Args&... args) {
        std::string line = name;
        ((line += " " + word(args)), ...);
        calls.push_back(line);
        auto failure = failures.find(name);
        return failure == failures.end() ? 0 : failure->second;
    }
    i64 change_state(u16 domid, u32 from, u32 to) {
        if (!domains.count(domid)) return -LAMINA_ESRCH;
        if (domain(domid).state != from) return -LAMINA_EINVAL;
        domain(domid).state = to;
        return 0;
    }
};

}  // namespace lamina::test
