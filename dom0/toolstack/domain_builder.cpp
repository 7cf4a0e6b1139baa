#include <dom0/toolstack/domain_builder.h>

#include <dom0/toolstack/scheduling.h>
#include <lamina/abi/errno.h>
#include <lamina/pvh_builder.h>
#include <lamina/string.h>

namespace lamina::toolstack {
namespace {

constexpr u64 kFramesPerMiB = MiB / kFrameSize;
constexpr u64 kRflagsReserved = 1u << 1;  // RFLAGS bit 1 reads as 1

// The new domain's RAM as Dom0 maps it in the build window.
class WindowWriter final : public pvh::GuestMemoryWriter {
public:
    WindowWriter(u8* window, u64 size) : window_(window), size_(size) {}

    bool write(u64 gpa, const void* data, usize size) override {
        if (!inside(gpa, size)) return false;
        str::copy_bytes(window_ + gpa, data, size);
        return true;
    }
    bool zero(u64 gpa, u64 size) override {
        if (!inside(gpa, size)) return false;
        str::fill_bytes(window_ + gpa, 0, size);
        return true;
    }

private:
    bool inside(u64 gpa, u64 size) const {
        u64 end;
        return !add_overflows(gpa, size, &end) && end <= size_;
    }

    u8* window_;
    u64 size_;
};

// One build: each step records what it made, so that a failure undoes exactly that.
class Build {
public:
    Build(DomainControl& control, Message& error) : control_(control), error_(error) {}

    bool run(const DomainConfig& config, const DomainImages& images, bool paused, BuiltDomain& built) {
        if (!check(config)) return false;
        const u64 frames = config.memory_mib * kFramesPerMiB;
        const u64 console_gfn = frames - 1;
        const i64 domid = control_.create(config.name, LAMINA_DOMAIN_PVH);
        if (domid == -static_cast<i64>(LAMINA_ENOSPC)) {
            error_.set("the host runs as many domains as it can (domain_create: ENOSPC; info shows max_domains)");
            return false;
        }
        if (domid == -static_cast<i64>(LAMINA_EEXIST)) {
            error_.set("a domain named \"{}\" exists (domain_create: EEXIST)", config.name);
            return false;
        }
        if (!succeeded("domain_create", domid)) return false;
        if (domid > LAMINA_DOMID_MAX) {  // not a domain this Dom0 could name, or destroy
            error_.set("domain_create: {} is not a domain id", domid);
            return false;
        }
        domid_ = static_cast<u16>(domid);
        created_ = true;
        if (!succeeded("set_max_memory", control_.set_max_memory(domid_, config.max_memory_mib * kFramesPerMiB)) ||
            !succeeded("populate_memory", control_.populate_memory(domid_, 0, frames)) ||
            !succeeded("set_max_vcpus", control_.set_max_vcpus(domid_, config.max_vcpus)) || !schedule(config) ||
            !map("map_frames (build window)", 0, frames, kBuildWindowGfn, &window_frames_))
            return false;
        lamina_vcpu_context context{};
        if (!load(config, images, frames, context) ||
            !succeeded("set_vcpu_context", control_.set_vcpu_context(domid_, 0, context)))
            return false;
        const i64 unmapped = control_.unmap_frames(kBuildWindowGfn, window_frames_);
        window_frames_ = 0;
        const u64 slot = kConsoleSlotBase + domid_;
        if (!succeeded("unmap_frames (build window)", unmapped) ||
            !map("map_frames (console page)", console_gfn, 1, slot, &slot_frames_))
            return false;
        const i64 port = control_.evtchn_alloc_unbound(domid_);
        if (!succeeded("evtchn_alloc_unbound", port)) return false;
        port_ = port;
        if (!succeeded("set_console", control_.set_console(domid_, console_gfn, static_cast<u32>(port))) ||
            (!paused && !succeeded("unpause", control_.unpause(domid_))))
            return false;
        built = {domid_, console_gfn, slot, reinterpret_cast<lamina_console_ring*>(control_.local_frames(slot, 1)),
                 static_cast<u32>(port)};
        return true;
    }

    // Undoes what the steps so far made, and says so in the error if that failed.
    void undo() {
        if (slot_frames_) control_.unmap_frames(kConsoleSlotBase + domid_, slot_frames_);
        if (window_frames_) control_.unmap_frames(kBuildWindowGfn, window_frames_);
        if (port_ >= 0) control_.evtchn_close(static_cast<u32>(port_));
        if (!created_) return;
        const i64 destroyed = control_.destroy(domid_);
        if (destroyed < 0) {
            Message first = error_;
            error_.set("{}; and domain_destroy: {}: domain {} is left", first.text(), lamina_errno_name(destroyed),
                       domid_);
        }
    }

private:
    bool check(const DomainConfig& config) {
        if (config.type != DomainType::Pvh) {
            error_.set("type: {} domains cannot be built yet; only pvh", domain_type_name(config.type));
            return false;
        }
        if (str::length(config.name) >= LAMINA_DOMAIN_NAME_SIZE) {
            error_.set("name: \"{}\" is longer than the {} characters a domain name may have", config.name,
                       LAMINA_DOMAIN_NAME_SIZE - 1);
            return false;
        }
        if (config.memory_mib > kBuildWindowFrames / kFramesPerMiB) {
            error_.set("memory: {} MiB is more than the {} MiB Dom0 can build a domain with", config.memory_mib,
                       kBuildWindowFrames / kFramesPerMiB);
            return false;
        }
        return true;
    }

    bool succeeded(const char* step, i64 result) {
        if (result >= 0) return true;
        error_.set("{}: {}", step, lamina_errno_name(result));
        return false;
    }

    // The config's cpu_weight and cap, and the hard affinity cpus gives every vCPU. A new vCPU has
    // no soft affinity, so none is written.
    bool schedule(const DomainConfig& config) {
        const i64 result = control_.sched_set_domain(domid_, config.cpu_weight, config.cap);
        if (result < 0) {
            error_.set("sched_set_domain (cpu_weight {}, cap {}%): {}", config.cpu_weight, config.cap,
                       lamina_errno_name(result));
            return false;
        }
        if (!config.cpus_pinned) return true;
        lamina_sched_affinity affinity{};
        store_cpu_set(config.cpus, affinity.hard);
        for (u32 vcpu = 0; vcpu < config.max_vcpus; ++vcpu) {
            const i64 pinned = control_.sched_set_affinity(domid_, vcpu, affinity);
            if (pinned < 0) {
                error_.set("sched_set_affinity (cpus, vCPU {}): {}", vcpu, lamina_errno_name(pinned));
                return false;
            }
        }
        return true;
    }

    bool map(const char* step, u64 gfn, u64 count, u64 local_gfn, u64* mapped) {
        if (!succeeded(step, control_.map_frames(domid_, gfn, count, local_gfn))) return false;
        *mapped = count;
        if (control_.local_frames(local_gfn, count)) return true;
        error_.set("{}: Dom0 cannot reach frames {:#x}+{:#x}", step, local_gfn, count);
        return false;
    }

    // The kernel, ramdisk and boot information into the build window; the entry into `context`.
    bool load(const DomainConfig& config, const DomainImages& images, u64 frames, lamina_vcpu_context& context) {
        const u64 ram_bytes = frames * kFrameSize;
        const pvh::Region console_page{ram_bytes - kFrameSize, kFrameSize, pvh::MemoryType::Reserved};
        pvh::Module ramdisk{};
        if (images.ramdisk) ramdisk = {images.ramdisk->data, images.ramdisk->size, images.ramdisk->name};
        pvh::BuildRequest request;
        request.kernel = images.kernel.data;
        request.kernel_size = images.kernel.size;
        request.ram_bytes = ram_bytes;
        request.modules = &ramdisk;
        request.module_count = images.ramdisk ? 1 : 0;
        request.command_line = config.command_line;
        request.regions = &console_page;
        request.region_count = 1;
        WindowWriter window(control_.local_frames(kBuildWindowGfn, frames), ram_bytes);
        pvh::Layout layout{};
        const pvh::Result result = pvh::build(request, window, layout);
        if (!result.ok()) {
            char reason[Message::kCapacity];
            BufferSink sink(reason, sizeof(reason));
            pvh::describe(sink, result);
            error_.set("loading {}: {}", images.kernel.name, reason);
            return false;
        }
        context.mode = LAMINA_VCPU_MODE_PROTECTED32;
        context.regs.rip = layout.entry.rip;
        context.regs.rbx = layout.entry.rbx;
        context.regs.rflags = kRflagsReserved;
        return true;
    }

    DomainControl& control_;
    Message& error_;
    bool created_ = false;
    u16 domid_ = 0;
    u64 window_frames_ = 0;
    u64 slot_frames_ = 0;
    i64 port_ = -1;
};

}  // namespace

bool build_domain(DomainControl& control, const DomainConfig& config, const DomainImages& images, bool paused,
                  BuiltDomain& built, Message& error) {
    Build build(control, error);
    if (build.run(config, images, paused, built)) return true;
    build.undo();
    return false;
}

i64 release_domain(DomainControl& control, const BuiltDomain& built) {
    control.unmap_frames(built.console_slot, 1);
    control.evtchn_close(built.console_port);
    return control.destroy(built.domid);
}

}  // namespace lamina::toolstack
