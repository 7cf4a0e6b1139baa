// Dom0's domain builder: makes a running PVH domain from a config and a kernel image through the
// domain-control hypercalls, as libxl's domain builder does through Xen's domctls.
//
//   domain_create(name, PVH) -> set_max_memory(maxmem) -> populate_memory(0, memory)
//   -> set_max_vcpus(maxvcpus) -> sched_set_domain(cpu_weight, cap)
//   -> sched_set_affinity(each vCPU, if cpus pins them) -> map_frames(all of its RAM at the build window)
//   -> pvh::build (kernel, ramdisk module, command line; the last page of RAM reserved)
//   -> set_vcpu_context(vCPU 0, the PVH entry) -> unmap_frames(the build window)
//   -> map_frames(the last page at the domain's console slot, kept mapped)
//   -> evtchn_alloc_unbound(domain) -> set_console(last page, port) -> unpause (unless paused)
//
// A step that fails undoes what came before (unmapping first, then the port, then
// domain_destroy) and gives one line naming the step and the error.
#pragma once

#include <dom0/toolstack/images.h>
#include <dom0/toolstack/message.h>
#include <dom0/toolstack/xl_config.h>
#include <lamina/abi/console.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/sched.h>
#include <lamina/abi/vcpu.h>
#include <lamina/types.h>

namespace lamina::toolstack {

constexpr u64 kFrameSize = 4096;

// Where Dom0 maps other domains' frames, in its guest-physical space (never its RAM). Dom0 maps
// its first 4 GiB 1:1, so the frame G it maps is at address G * kFrameSize.
constexpr u64 kBuildWindowGfn = 0x80000;    // 2 GiB: a new domain's RAM while it is built
constexpr u64 kBuildWindowFrames = 0x20000;  // 512 MiB: the most RAM a domain built here may have
constexpr u64 kConsoleSlotBase = 0xa0000;    // 2.5 GiB: domain d's console page at frame + d
static_assert(kBuildWindowGfn + kBuildWindowFrames <= kConsoleSlotBase);
static_assert((kConsoleSlotBase + LAMINA_DOMID_MAX + 1) * kFrameSize <= 4 * GiB);

// The hypercalls the toolstack makes about other domains, one method each with the hypercall's
// arguments and result (a value >= 0, or a negative LAMINA_E*). Dom0's kernel implements them
// with the real hypercalls; the tests with a fake that keeps domains' memory in host buffers.
class DomainControl {
public:
    virtual i64 create(const char* name, u32 kind) = 0;
    virtual i64 set_max_memory(u16 domid, u64 max_pages) = 0;
    virtual i64 populate_memory(u16 domid, u64 first_gfn, u64 count) = 0;
    virtual i64 set_max_vcpus(u16 domid, u32 count) = 0;
    virtual i64 map_frames(u16 domid, u64 first_gfn, u64 count, u64 local_gfn) = 0;
    virtual i64 unmap_frames(u64 local_gfn, u64 count) = 0;
    virtual i64 set_vcpu_context(u16 domid, u32 vcpu, const lamina_vcpu_context& context) = 0;
    virtual i64 evtchn_alloc_unbound(u16 remote_domid) = 0;
    virtual i64 evtchn_send(u32 port) = 0;
    virtual i64 evtchn_close(u32 port) = 0;
    virtual i64 set_console(u16 domid, u64 ring_gfn, u32 port) = 0;
    virtual i64 pause(u16 domid) = 0;
    virtual i64 unpause(u16 domid) = 0;
    virtual i64 shutdown(u16 domid, u32 reason) = 0;
    virtual i64 destroy(u16 domid) = 0;
    virtual i64 get_info(u16 domid, lamina_domain_info& info) = 0;
    virtual i64 get_fault_report(u16 domid, lamina_fault_report& report) = 0;
    virtual i64 sched_set_domain(u16 domid, u32 weight, u32 cap) = 0;
    virtual i64 sched_set_affinity(u16 domid, u32 vcpu, const lamina_sched_affinity& affinity) = 0;

    // Where Dom0 reaches `count` frames from `local_gfn` once map_frames mapped them there; null
    // if it cannot.
    virtual u8* local_frames(u64 local_gfn, u64 count) = 0;

protected:
    ~DomainControl() = default;
};

struct DomainImages {
    const BootImage& kernel;
    const BootImage* ramdisk;  // null: none
};

// What Dom0 keeps of a domain it built.
struct BuiltDomain {
    u16 domid;
    u64 console_gfn;               // the domain's frame of its console ring: the last of its RAM
    u64 console_slot;              // Dom0's frame where that page stays mapped
    lamina_console_ring* console;  // the page, as Dom0 reaches it
    u32 console_port;              // Dom0's port, signalled when the domain's console has output
};

// Builds and (unless `paused`) starts a domain from a finished config (finish_config). False,
// with `error`, if any step failed; nothing of the domain is left then, unless undoing failed
// too, which `error` says.
bool build_domain(DomainControl& control, const DomainConfig& config, const DomainImages& images, bool paused,
                  BuiltDomain& built, Message& error);

// Ends a domain build_domain made: unmaps its console page, closes the port, destroys it.
// The result of domain_destroy (the other steps cannot leave anything behind that matters).
i64 release_domain(DomainControl& control, const BuiltDomain& built);

}  // namespace lamina::toolstack
