#include <dom0/kernel/domains.h>

#include <dom0/kernel/commands.h>
#include <dom0/kernel/events.h>
#include <dom0/kernel/memory.h>
#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {
namespace {

class HypercallDomainControl final : public toolstack::DomainControl {
public:
    i64 create(const char* name, u32 kind) override {
        lamina_domain_create params{};
        str::copy_bounded(params.name, name, sizeof(params.name));
        params.kind = kind;
        return lamina_hc_domain_create(gpa(&params));
    }
    i64 set_max_memory(u16 domid, u64 max_pages) override { return lamina_hc_domain_set_max_memory(domid, max_pages); }
    i64 populate_memory(u16 domid, u64 first_gfn, u64 count) override {
        return lamina_hc_domain_populate_memory(domid, first_gfn, count);
    }
    i64 set_max_vcpus(u16 domid, u32 count) override { return lamina_hc_domain_set_max_vcpus(domid, count); }
    i64 map_frames(u16 domid, u64 first_gfn, u64 count, u64 local_gfn) override {
        return lamina_hc_domain_map_frames(domid, first_gfn, count, local_gfn);
    }
    i64 unmap_frames(u64 local_gfn, u64 count) override { return lamina_hc_domain_unmap_frames(local_gfn, count); }
    i64 set_vcpu_context(u16 domid, u32 vcpu, const lamina_vcpu_context& context) override {
        return lamina_hc_domain_set_vcpu_context(domid, vcpu, gpa(&context));
    }
    i64 evtchn_alloc_unbound(u16 remote_domid) override { return lamina_hc_evtchn_alloc_unbound(remote_domid); }
    i64 evtchn_send(u32 port) override { return lamina_hc_evtchn_send(port); }
    i64 evtchn_close(u32 port) override { return lamina_hc_evtchn_close(port); }
    i64 set_console(u16 domid, u64 ring_gfn, u32 port) override {
        return lamina_hc_domain_set_console(domid, ring_gfn, port);
    }
    i64 pause(u16 domid) override { return lamina_hc_domain_pause(domid); }
    i64 unpause(u16 domid) override { return lamina_hc_domain_unpause(domid); }
    i64 shutdown(u16 domid, u32 reason) override { return lamina_hc_domain_shutdown(domid, reason); }
    i64 destroy(u16 domid) override { return lamina_hc_domain_destroy(domid); }
    i64 get_info(u16 domid, lamina_domain_info& info) override {
        return lamina_hc_domain_get_info(domid, gpa(&info));
    }
    i64 get_fault_report(u16 domid, lamina_fault_report& report) override {
        return lamina_hc_domain_get_fault_report(domid, gpa(&report));
    }
    i64 sched_set_domain(u16 domid, u32 weight, u32 cap) override {
        return lamina_hc_sched_set_domain(domid, weight, cap);
    }
    i64 sched_set_affinity(u16 domid, u32 vcpu, const lamina_sched_affinity& affinity) override {
        return lamina_hc_sched_set_affinity(domid, vcpu, gpa(&affinity));
    }
    // Dom0's page tables map its first 4 GiB 1:1: frame G is at G * 4096.
    u8* local_frames(u64 local_gfn, u64 count) override {
        constexpr u64 kMappedFrames = kOwnMemory.size / toolstack::kFrameSize;
        if (local_gfn > kMappedFrames || count > kMappedFrames) return nullptr;
        return const_cast<u8*>(kOwnMemory.find(local_gfn * toolstack::kFrameSize, count * toolstack::kFrameSize));
    }
};

}  // namespace

toolstack::DomainControl& domain_control() {
    static HypercallDomainControl control;
    return control;
}

toolstack::Toolstack& toolstack() {
    static toolstack::Toolstack instance(domain_control(), boot_images());
    return instance;
}

void service_domains(Sink& notices) {
    toolstack().drain_consoles();
    if (take_domain_died()) toolstack().handle_ended_domains(notices);
}

}  // namespace lamina::dom0
