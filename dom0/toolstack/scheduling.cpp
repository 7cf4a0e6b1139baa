#include <dom0/toolstack/scheduling.h>

#include <lamina/string.h>

namespace lamina::toolstack {

bool check_domain_params(u64 weight, u64 cap, u32 host_cpus, Message& error) {
    if (weight < LAMINA_SCHED_WEIGHT_MIN || weight > LAMINA_SCHED_WEIGHT_MAX) {
        error.set("weight {} is out of range ({} to {})", weight, LAMINA_SCHED_WEIGHT_MIN, LAMINA_SCHED_WEIGHT_MAX);
        return false;
    }
    const u64 max_cap = 100 * u64{host_cpus};
    if (cap > max_cap) {
        error.set("cap {}% is out of range (0 to {}%)", cap, max_cap);
        return false;
    }
    return true;
}

bool check_pool_params(u64 timeslice_ms, u64 ratelimit_us, Message& error) {
    if (timeslice_ms < LAMINA_SCHED_TIMESLICE_MIN_MS || timeslice_ms > LAMINA_SCHED_TIMESLICE_MAX_MS) {
        error.set("time slice {} ms is out of range ({} to {} ms)", timeslice_ms, LAMINA_SCHED_TIMESLICE_MIN_MS,
                  LAMINA_SCHED_TIMESLICE_MAX_MS);
        return false;
    }
    const u64 max_ratelimit = timeslice_ms * 1000;
    if (ratelimit_us != 0 && (ratelimit_us < LAMINA_SCHED_RATELIMIT_MIN_US || ratelimit_us > max_ratelimit)) {
        error.set("rate limit {} us is out of range (0, or {} to {} us: the time slice)", ratelimit_us,
                  LAMINA_SCHED_RATELIMIT_MIN_US, max_ratelimit);
        return false;
    }
    return true;
}

CpuSet cpu_set_of(const u64 (&bitmap)[CpuSet::kWords]) {
    CpuSet cpus;
    str::copy_bytes(cpus.words, bitmap, sizeof(cpus.words));
    return cpus;
}

void store_cpu_set(const CpuSet& cpus, u64 (&bitmap)[CpuSet::kWords]) {
    str::copy_bytes(bitmap, cpus.words, sizeof(cpus.words));
}

void format_affinity(Sink& sink, const CpuSet& cpus, u32 host_cpus) {
    if (cpus.empty() || cpus.covers(host_cpus)) format(sink, "all");
    else format_cpu_list(sink, cpus);
}

// A running domain's vCPU may be halted, which the ABI does not say: it shows as running.
const char* vcpu_state(const lamina_domain_info& info, u32 vcpu) {
    if (vcpu >= info.online_vcpus) return "--p";
    switch (info.state) {
        case LAMINA_DOMAIN_RUNNING: return "r--";
        case LAMINA_DOMAIN_SHUTTING_DOWN:
        case LAMINA_DOMAIN_DYING: return "-b-";
        default: return "--p";
    }
}

}  // namespace lamina::toolstack
