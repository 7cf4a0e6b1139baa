#include <catch2/catch.hpp>

#include <dom0/toolstack/scheduling.h>

#include <string>

using namespace lamina;
using namespace lamina::toolstack;

namespace {

std::string domain_refusal(u64 weight, u64 cap, u32 host_cpus = 1) {
    Message error;
    CHECK_FALSE(check_domain_params(weight, cap, host_cpus, error));
    return error.text();
}

std::string pool_refusal(u64 timeslice_ms, u64 ratelimit_us) {
    Message error;
    CHECK_FALSE(check_pool_params(timeslice_ms, ratelimit_us, error));
    return error.text();
}

std::string affinity(const CpuSet& cpus, u32 host_cpus) {
    char text[Message::kCapacity];
    BufferSink sink(text, sizeof(text));
    format_affinity(sink, cpus, host_cpus);
    return text;
}

}  // namespace

TEST_CASE("scheduling: a domain's weight and cap, within the hypervisor's ranges") {
    Message error;
    CHECK(check_domain_params(1, 0, 1, error));
    CHECK(check_domain_params(65535, 100, 1, error));
    CHECK(check_domain_params(256, 400, 4, error));
    CHECK(domain_refusal(0, 0) == "weight 0 is out of range (1 to 65535)");
    CHECK(domain_refusal(65536, 0) == "weight 65536 is out of range (1 to 65535)");
    CHECK(domain_refusal(256, 101) == "cap 101% is out of range (0 to 100%)");
    CHECK(domain_refusal(256, 401, 4) == "cap 401% is out of range (0 to 400%)");
    CHECK(domain_refusal(~u64{0}, 0) == "weight 18446744073709551615 is out of range (1 to 65535)");
}

TEST_CASE("scheduling: the pool's time slice and rate limit, within the hypervisor's ranges") {
    Message error;
    CHECK(check_pool_params(1, 0, error));
    CHECK(check_pool_params(1000, 1'000'000, error));
    CHECK(check_pool_params(30, 100, error));
    CHECK(check_pool_params(1, 1000, error));
    CHECK(pool_refusal(0, 0) == "time slice 0 ms is out of range (1 to 1000 ms)");
    CHECK(pool_refusal(1001, 0) == "time slice 1001 ms is out of range (1 to 1000 ms)");
    CHECK(pool_refusal(30, 99) == "rate limit 99 us is out of range (0, or 100 to 30000 us: the time slice)");
    CHECK(pool_refusal(1, 1001) == "rate limit 1001 us is out of range (0, or 100 to 1000 us: the time slice)");
}

TEST_CASE("scheduling: affinity bitmaps and CPU sets are the same bits") {
    lamina_sched_affinity bitmaps{};
    bitmaps.hard[0] = 0x5;
    bitmaps.hard[3] = u64{1} << 63;
    const CpuSet cpus = cpu_set_of(bitmaps.hard);
    CHECK(cpus.contains(0));
    CHECK_FALSE(cpus.contains(1));
    CHECK(cpus.contains(2));
    CHECK(cpus.contains(255));
    lamina_sched_affinity back{};
    store_cpu_set(cpus, back.soft);
    CHECK(back.soft[0] == 0x5);
    CHECK(back.soft[1] == 0);
    CHECK(back.soft[3] == u64{1} << 63);
}

TEST_CASE("scheduling: affinities as vcpu-list shows them") {
    CpuSet cpus;
    CHECK(affinity(cpus, 4) == "all");  // no soft preference
    cpus.add(1);
    cpus.add(2);
    CHECK(affinity(cpus, 4) == "1-2");
    cpus.add(0);
    cpus.add(3);
    CHECK(affinity(cpus, 4) == "all");
    CHECK(affinity(cpus, 8) == "0-3");
    cpus.add(200);  // beyond the host: every host CPU is there all the same
    CHECK(affinity(cpus, 4) == "all");
}

TEST_CASE("scheduling: a vCPU's state from its domain's") {
    lamina_domain_info info{};
    info.online_vcpus = 1;
    info.state = LAMINA_DOMAIN_RUNNING;
    CHECK(std::string(vcpu_state(info, 0)) == "r--");
    CHECK(std::string(vcpu_state(info, 1)) == "--p");  // not up
    info.state = LAMINA_DOMAIN_PAUSED;
    CHECK(std::string(vcpu_state(info, 0)) == "--p");
    info.state = LAMINA_DOMAIN_BUILDING;
    CHECK(std::string(vcpu_state(info, 0)) == "--p");
    info.state = LAMINA_DOMAIN_SHUTTING_DOWN;
    CHECK(std::string(vcpu_state(info, 0)) == "-b-");
    info.state = LAMINA_DOMAIN_DYING;
    CHECK(std::string(vcpu_state(info, 0)) == "-b-");
}
