// The control domain's hypercalls about other domains: building, running, inspecting and
// ending them, and the scheduler's parameters. The dispatcher has checked that the caller is the
// control domain; these check the target and every value.
#include <hypervisor/domain/domain.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/domain/vcpu_hypercalls.h>
#include <hypervisor/log.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <lamina/abi/errno.h>
#include <lamina/abi/sched.h>
#include <lamina/string.h>

namespace lamina {

using hypercall::Caller;

namespace {

constexpr i64 error(u32 code) { return -static_cast<i64>(code); }
constexpr i64 kFault = error(LAMINA_EFAULT);

// The domain `domid` names for a call that acts on another domain: -ESRCH when there is none
// (or it is being destroyed), -EINVAL when it is the caller.
Domain* other_domain(const Domain& caller, u64 domid, i64* result) {
    Domain* target = domains().by_id(static_cast<u16>(domid));
    if (!target || target->state() == LAMINA_DOMAIN_DYING) {
        *result = error(LAMINA_ESRCH);
        return nullptr;
    }
    if (target == &caller) {
        *result = error(LAMINA_EINVAL);
        return nullptr;
    }
    return target;
}

// Any domain, the caller included (for the calls that only read).
Domain* any_domain(u64 domid, i64* result) {
    Domain* target = domains().by_id(static_cast<u16>(domid));
    if (!target) *result = error(LAMINA_ESRCH);
    return target;
}

// The calls that write a record about any domain: finds it, fills the record, copies it out.
template <typename Record, typename Fill>
i64 report_on(const Domain& caller, u64 domid, u64 out_gpa, Fill fill) {
    i64 result = 0;
    const Domain* target = any_domain(domid, &result);
    if (!target) return result;
    Record record;
    fill(*target, record);
    return caller.copy_to_guest(out_gpa, record) ? 0 : kFault;
}

}  // namespace

i64 VcpuHypercalls::domain_create(const Caller&, u64 params_gpa) {
    lamina_domain_create params;
    if (!vcpu_.domain().copy_from_guest(params_gpa, &params)) return kFault;
    if (params.flags != 0) return error(LAMINA_EINVAL);
    // HVM is a kind of the ABI that this hypervisor cannot build yet.
    if (params.kind == LAMINA_DOMAIN_HVM) return error(LAMINA_EOPNOTSUPP);
    if (params.kind != LAMINA_DOMAIN_PVH) return error(LAMINA_EINVAL);
    Domain* created = nullptr;
    const i64 id = domains().create(params.name, false, true, &created);
    if (id >= 0) log::info("domain {} ({}): created", id, created->name());
    return id;
}

i64 VcpuHypercalls::domain_destroy(const Caller&, u64 domid) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    if (!target) return result;
    // The toolstack unmaps a domain's frames before it destroys it; other domains lose theirs.
    if (vcpu_.domain().maps_frames_of(*target)) return error(LAMINA_EBUSY);
    log::info("domain {} ({}): destroyed", target->id(), target->name());
    domains().destroy(*target);
    return 0;
}

i64 VcpuHypercalls::domain_pause(const Caller&, u64 domid) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? target->pause() : result;
}

i64 VcpuHypercalls::domain_unpause(const Caller&, u64 domid) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? target->unpause() : result;
}

i64 VcpuHypercalls::domain_shutdown(const Caller&, u64 domid, u64 reason) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    if (!target) return result;
    if (reason > LAMINA_SHUTDOWN_CRASH) return error(LAMINA_EINVAL);
    if (target->state() != LAMINA_DOMAIN_RUNNING && target->state() != LAMINA_DOMAIN_PAUSED) return error(LAMINA_EINVAL);
    target->shutdown(static_cast<u32>(reason));
    return 0;
}

i64 VcpuHypercalls::domain_get_info(const Caller&, u64 domid, u64 info_gpa) {
    return report_on<lamina_domain_info>(vcpu_.domain(), domid, info_gpa,
                                         [](const Domain& target, lamina_domain_info& info) { target.info(info); });
}

i64 VcpuHypercalls::domain_list(const Caller&, u64 first_domid, u64 infos_gpa, u64 max_count) {
    if (max_count > LAMINA_DOMAIN_LIST_MAX) return error(LAMINA_E2BIG);
    auto* out = static_cast<lamina_domain_info*>(
        vcpu_.domain().guest_memory(infos_gpa, max_count * sizeof(lamina_domain_info)));
    if (!out && max_count) return kFault;
    u64 count = 0;
    u32 next = static_cast<u32>(first_domid);
    while (count < max_count && next <= LAMINA_DOMID_MAX) {
        const Domain* domain = domains().next_from(static_cast<u16>(next));
        if (!domain) break;
        lamina_domain_info info;
        domain->info(info);
        str::copy_bytes(&out[count++], &info, sizeof info);
        next = u32{domain->id()} + 1;
    }
    return static_cast<i64>(count);
}

i64 VcpuHypercalls::domain_set_max_memory(const Caller&, u64 domid, u64 max_pages) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? target->memory().set_max_frames(max_pages) : result;
}

i64 VcpuHypercalls::domain_populate_memory(const Caller& caller, u64 domid, u64 first_gfn, u64 count) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    if (!target) return result;
    if (target->state() != LAMINA_DOMAIN_BUILDING) return error(LAMINA_EBUSY);
    const i64 added = target->memory().populate_step(first_gfn, count);
    if (added < 0) return added;
    const u64 done = static_cast<u64>(added);
    return done == count ? 0 : caller.continue_with({domid, first_gfn + done, count - done});
}

i64 VcpuHypercalls::domain_set_max_vcpus(const Caller&, u64 domid, u64 count) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? target->set_max_vcpus(static_cast<u32>(count)) : result;
}

i64 VcpuHypercalls::domain_set_vcpu_context(const Caller&, u64 domid, u64 vcpu, u64 context_gpa) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    if (!target) return result;
    lamina_vcpu_context context;
    if (!vcpu_.domain().copy_from_guest(context_gpa, &context)) return kFault;
    return target->set_vcpu_context(static_cast<u32>(vcpu), context);
}

i64 VcpuHypercalls::domain_map_frames(const Caller&, u64 domid, u64 first_gfn, u64 count, u64 local_gfn) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? vcpu_.domain().map_foreign(*target, first_gfn, count, local_gfn) : result;
}

i64 VcpuHypercalls::domain_unmap_frames(const Caller&, u64 local_gfn, u64 count) {
    return vcpu_.domain().unmap_foreign(local_gfn, count);
}

i64 VcpuHypercalls::domain_get_fault_report(const Caller&, u64 domid, u64 report_gpa) {
    i64 result = 0;
    const Domain* target = any_domain(domid, &result);
    if (!target) return result;
    if (!target->faulted()) return error(LAMINA_ENOENT);
    return vcpu_.domain().copy_to_guest(report_gpa, target->fault_report()) ? 0 : kFault;
}

i64 VcpuHypercalls::domain_set_console(const Caller&, u64 domid, u64 ring_gfn, u64 port) {
    i64 result = 0;
    Domain* target = other_domain(vcpu_.domain(), domid, &result);
    return target ? target->set_console(ring_gfn, static_cast<u32>(port)) : result;
}

i64 VcpuHypercalls::domain_exit_stats(const Caller&, u64 domid, u64 stats_gpa) {
    return report_on<lamina_exit_stats>(
        vcpu_.domain(), domid, stats_gpa, [](const Domain& target, lamina_exit_stats& stats) { target.exit_stats(stats); });
}

// The scheduler's parameters. Its refusals name the range; the ABI's answer is -EINVAL.

i64 VcpuHypercalls::sched_get_domain(const Caller&, u64 domid, u64 params_gpa) {
    i64 result = 0;
    Domain* target = any_domain(domid, &result);
    if (!target) return result;
    if (!target->is_scheduled()) return error(LAMINA_EINVAL);
    const lamina_sched_domain params{scheduler::policy().weight(target->sched), scheduler::policy().cap(target->sched)};
    return vcpu_.domain().copy_to_guest(params_gpa, params) ? 0 : kFault;
}

i64 VcpuHypercalls::sched_set_domain(const Caller&, u64 domid, u64 weight, u64 cap) {
    i64 result = 0;
    Domain* target = any_domain(domid, &result);
    if (!target) return result;
    sched::CreditScheduler& policy = scheduler::policy();
    if (weight < LAMINA_SCHED_WEIGHT_MIN || cap > policy.cap_range().max) return error(LAMINA_EINVAL);
    if (!policy.set_weight(target->sched, static_cast<u32>(weight)).ok()) return error(LAMINA_EINVAL);
    return policy.set_cap(target->sched, static_cast<u32>(cap)).ok() ? 0 : error(LAMINA_EINVAL);
}

i64 VcpuHypercalls::sched_get_pool(const Caller&, u64 params_gpa) {
    const sched::PoolParams pool = scheduler::policy().pool_params();
    const lamina_sched_pool params{static_cast<u32>(pool.timeslice_ns / sched::kNsPerMs),
                                   static_cast<u32>(pool.ratelimit_ns / sched::kNsPerUs)};
    return vcpu_.domain().copy_to_guest(params_gpa, params) ? 0 : kFault;
}

static_assert(sched::CreditScheduler::kMinSliceNs == LAMINA_SCHED_RATELIMIT_MIN_US * sched::kNsPerUs,
              "the ABI's shortest rate limit is the scheduler's shortest slice");

i64 VcpuHypercalls::sched_set_pool(const Caller&, u64 timeslice_ms, u64 ratelimit_us) {
    const sched::PoolParams pool{timeslice_ms * sched::kNsPerMs, ratelimit_us * sched::kNsPerUs};
    return scheduler::policy().set_pool_params(pool).ok() ? 0 : error(LAMINA_EINVAL);
}

i64 VcpuHypercalls::sched_get_affinity(const Caller&, u64 domid, u64 vcpu, u64 affinity_gpa) {
    i64 result = 0;
    Domain* target = any_domain(domid, &result);
    if (!target) return result;
    DomainVcpu* v = target->vcpu(static_cast<u32>(vcpu));
    if (!v || !target->is_scheduled()) return error(LAMINA_EINVAL);
    const sched::CpuSet hard = scheduler::policy().hard_affinity(v->sched);
    const sched::CpuSet soft = scheduler::policy().soft_affinity(v->sched);
    lamina_sched_affinity affinity{};
    for (u32 i = 0; i < LAMINA_MAX_HOST_CPUS / 64; ++i) {
        affinity.hard[i] = hard.word(i);
        affinity.soft[i] = soft.word(i);
    }
    return vcpu_.domain().copy_to_guest(affinity_gpa, affinity) ? 0 : kFault;
}

i64 VcpuHypercalls::sched_set_affinity(const Caller&, u64 domid, u64 vcpu, u64 affinity_gpa) {
    i64 result = 0;
    Domain* target = any_domain(domid, &result);
    if (!target) return result;
    DomainVcpu* v = target->vcpu(static_cast<u32>(vcpu));
    if (!v || !target->is_scheduled()) return error(LAMINA_EINVAL);
    lamina_sched_affinity affinity;
    if (!vcpu_.domain().copy_from_guest(affinity_gpa, &affinity)) return kFault;
    sched::CpuSet hard, soft;
    for (u32 i = 0; i < LAMINA_MAX_HOST_CPUS / 64; ++i) {
        hard.set_word(i, affinity.hard[i]);
        soft.set_word(i, affinity.soft[i]);
    }
    return scheduler::set_affinity(*v, hard, soft).ok() ? 0 : error(LAMINA_EINVAL);
}

}  // namespace lamina
