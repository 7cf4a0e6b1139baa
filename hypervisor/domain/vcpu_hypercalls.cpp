#include <hypervisor/domain/vcpu_hypercalls.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/cpu_features.h>
#include <hypervisor/console.h>
#include <hypervisor/domain/domain.h>
#include <hypervisor/domain/domain_table.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/mm/frame_allocator.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <arch/x86_64/smp.h>
#include <lamina/abi/console.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/event_channel.h>
#include <lamina/abi/errno.h>
#include <lamina/abi/host.h>
#include <lamina/abi/version.h>
#include <lamina/string.h>

namespace lamina {

using hypercall::Caller;

namespace {

constexpr i64 kFault = -static_cast<i64>(LAMINA_EFAULT);
constexpr i64 kTooBig = -static_cast<i64>(LAMINA_E2BIG);
constexpr i64 kInvalid = -static_cast<i64>(LAMINA_EINVAL);

constexpr char kVersion[] = LAMINA_VERSION;

}  // namespace

i64 VcpuHypercalls::version(const Caller&) { return LAMINA_ABI_VERSION; }

i64 VcpuHypercalls::features(const Caller& caller, u64 word) {
    if (word != LAMINA_FEATURES_WORD0) return 0;
    return caller.control_domain ? LAMINA_FEATURE_CONTROL_DOMAIN : 0;
}

i64 VcpuHypercalls::console_write(const Caller&, u64 buf_gpa, u64 length) {
    if (length > LAMINA_CONSOLE_IO_MAX) return kTooBig;
    const auto* text = static_cast<const char*>(vcpu_.domain().guest_memory(buf_gpa, length));
    if (!text) return kFault;
    log::write_console(text, length);
    return 0;
}

i64 VcpuHypercalls::console_read(const Caller&, u64 buf_gpa, u64 length) {
    if (length > LAMINA_CONSOLE_IO_MAX) return kTooBig;
    auto* out = static_cast<char*>(vcpu_.domain().guest_memory(buf_gpa, length));
    if (!out) return kFault;
    return static_cast<i64>(console::read(out, length));
}

i64 VcpuHypercalls::vcpu_yield(const Caller&) {
    if (vcpu_.domain().is_scheduled()) vcpu_.request(GuestEnd::Yielded);
    return 0;
}

i64 VcpuHypercalls::vcpu_block(const Caller&) {
    if (!vcpu_.take_event()) vcpu_.request(GuestEnd::Blocked);
    return 0;
}

i64 VcpuHypercalls::vcpu_set_timer(const Caller&, u64 timeout_ns) {
    const u64 now = time::now_ns();
    u64 deadline = 0;
    if (timeout_ns && add_overflows(now, timeout_ns, &deadline)) return kInvalid;
    vcpu_.set_timer(deadline, 0);
    return 0;
}

i64 VcpuHypercalls::shutdown(const Caller&, u64 reason) {
    if (reason > LAMINA_SHUTDOWN_CRASH) return kInvalid;
    vcpu_.domain().shutdown(static_cast<u32>(reason));
    vcpu_.request(GuestEnd::Shutdown);
    return 0;
}

// Event channels: hypervisor/event/event_channels.h does the work; these only translate the
// guest's addresses.
i64 VcpuHypercalls::evtchn_init(const Caller&, u64 shared_gpa) {
    auto* page = static_cast<lamina_evtchn_shared*>(vcpu_.domain().guest_memory(shared_gpa, sizeof(lamina_evtchn_shared)));
    return page ? vcpu_.domain().events().init(page) : kFault;
}

i64 VcpuHypercalls::evtchn_alloc_unbound(const Caller&, u64 remote_domid) {
    return vcpu_.domain().events().alloc_unbound(static_cast<u16>(remote_domid));
}

i64 VcpuHypercalls::evtchn_bind_interdomain(const Caller&, u64 remote_domid, u64 remote_port) {
    return vcpu_.domain().events().bind_interdomain(static_cast<u16>(remote_domid), static_cast<u32>(remote_port));
}

i64 VcpuHypercalls::evtchn_bind_virq(const Caller& caller, u64 virq, u64 vcpu) {
    return vcpu_.domain().events().bind_virq(static_cast<u32>(virq), static_cast<u32>(vcpu), caller.control_domain);
}

i64 VcpuHypercalls::evtchn_send(const Caller&, u64 port) { return vcpu_.domain().events().send(static_cast<u32>(port)); }
i64 VcpuHypercalls::evtchn_close(const Caller&, u64 port) { return vcpu_.domain().events().close(static_cast<u32>(port)); }
i64 VcpuHypercalls::evtchn_unmask(const Caller&, u64 port) { return vcpu_.domain().events().unmask(static_cast<u32>(port)); }

i64 VcpuHypercalls::evtchn_status(const Caller&, u64 port, u64 status_gpa) {
    auto* out = static_cast<lamina_evtchn_status*>(vcpu_.domain().guest_memory(status_gpa, sizeof(lamina_evtchn_status)));
    return out ? vcpu_.domain().events().status(static_cast<u32>(port), out) : kFault;
}

i64 VcpuHypercalls::evtchn_set_upcall_vector(const Caller&, u64 vcpu, u64 vector) {
    return vcpu_.domain().events().set_upcall_vector(static_cast<u32>(vcpu), static_cast<u8>(vector));
}

i64 VcpuHypercalls::host_info(const Caller&, u64 info_gpa) {
    lamina_host_info answer{};
    answer.abi_version = LAMINA_ABI_VERSION;
    answer.virtualization = virt::summary().vendor == virt::Vendor::Vmx ? LAMINA_HOST_VMX : LAMINA_HOST_SVM;
    answer.features = x86::cpu_features().x2apic ? LAMINA_HOST_X2APIC : 0;
    answer.cpus = smp::online_count();
    answer.tsc_khz = static_cast<u32>(time::tsc_frequency() / 1000);
    answer.max_domains = domains().max_domains();
    answer.max_vcpus = domains().max_vcpus();
    const memory::Stats stats = memory::stats();
    answer.total_pages = stats.usable_bytes / kFrameSize;
    answer.free_pages = stats.free_bytes / kFrameSize;
    answer.uptime_ns = time::now_ns();
    str::copy_bounded(answer.version, kVersion, sizeof answer.version);
    str::copy_bounded(answer.cpu_brand, x86::cpu_features().brand, sizeof answer.cpu_brand);
    return vcpu_.domain().copy_to_guest(info_gpa, answer) ? 0 : kFault;
}

i64 VcpuHypercalls::log_read(const Caller&, u64 buf_gpa, u64 length, u64 position_gpa) {
    if (length > LAMINA_LOG_READ_MAX) return kTooBig;
    auto* out = static_cast<char*>(vcpu_.domain().guest_memory(buf_gpa, length));
    auto* position = static_cast<u64*>(vcpu_.domain().guest_memory(position_gpa, sizeof(u64)));
    if (!out || !position) return kFault;
    u64 from = *position;
    const usize count = log::read_from(&from, out, length);
    *position = from;
    return static_cast<i64>(count);
}


// Shared pages: the granting domain keeps the page; the other maps it by reference.
i64 VcpuHypercalls::shared_page_grant(const Caller&, u64 gfn, u64 remote_domid, u64 flags) {
    return vcpu_.domain().grant(gfn, static_cast<u16>(remote_domid), static_cast<u32>(flags));
}

i64 VcpuHypercalls::shared_page_revoke(const Caller&, u64 ref) { return vcpu_.domain().revoke(static_cast<u32>(ref)); }

i64 VcpuHypercalls::shared_page_map(const Caller&, u64 remote_domid, u64 ref, u64 gfn) {
    Domain* granter = domains().by_id(static_cast<u16>(remote_domid));
    if (!granter || granter->state() == LAMINA_DOMAIN_DYING) return -static_cast<i64>(LAMINA_ESRCH);
    return vcpu_.domain().map_grant(*granter, static_cast<u32>(ref), gfn);
}

i64 VcpuHypercalls::shared_page_unmap(const Caller&, u64 gfn) { return vcpu_.domain().unmap_grant(gfn); }

i64 VcpuHypercalls::vcpu_up(const Caller&, u64 vcpu, u64 context_gpa) {
    lamina_vcpu_context context;
    if (!vcpu_.domain().copy_from_guest(context_gpa, &context)) return kFault;
    return vcpu_.domain().vcpu_up(static_cast<u32>(vcpu), context);
}

i64 VcpuHypercalls::vcpu_down(const Caller&, u64 vcpu) {
    const i64 result = vcpu_.domain().vcpu_down(static_cast<u32>(vcpu));
    if (result == 0 && vcpu == vcpu_.index()) vcpu_.request(GuestEnd::Yielded);  // it stops here
    return result;
}

}  // namespace lamina
