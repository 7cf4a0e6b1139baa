#include <dom0/toolstack/toolstack.h>

#include <dom0/toolstack/field_text.h>
#include <lamina/abi/errno.h>
#include <lamina/string.h>

namespace lamina::toolstack {
namespace {

template <typename... Args>
bool refuse(Diagnostics& diagnostics, const char* fmt, const Args&... args) {
    diagnostics.error.line = 0;
    format_to(diagnostics.error.text, sizeof(diagnostics.error.text), fmt, args...);
    return false;
}

// A key=value override the tool itself makes, checked as the user's are.
bool set_key(const char* key, const char* value, const Limits& limits, DomainConfig& config,
             Diagnostics& diagnostics) {
    char assignment[DomainConfig::kNameCapacity + 16];
    format_to(assignment, sizeof(assignment), "{}={}", key, value);
    return apply_override(assignment, limits, config, diagnostics);
}

const char* ending(u32 shutdown_reason) {
    switch (shutdown_reason) {
        case LAMINA_SHUTDOWN_POWEROFF: return "powered off";
        case LAMINA_SHUTDOWN_REBOOT: return "rebooted";
        default: return "crashed";
    }
}

Action action_for(const DomainConfig& config, u32 shutdown_reason) {
    switch (shutdown_reason) {
        case LAMINA_SHUTDOWN_POWEROFF: return config.on_poweroff;
        case LAMINA_SHUTDOWN_REBOOT: return config.on_reboot;
        default: return config.on_crash;
    }
}

// Lamina keeps no core dumps and renames nothing: those actions are their plain forms.
bool restarts(Action action) {
    return action == Action::Restart || action == Action::RenameRestart || action == Action::CoredumpRestart ||
           action == Action::SoftReset;
}

}  // namespace

bool prepare_config(const ImageDirectory& images, const char* source, const char* const* overrides,
                    usize override_count, const Limits& limits, DomainConfig& config, Diagnostics& diagnostics) {
    diagnostics = Diagnostics{};
    const BootImage* image = images.find(source);
    if (!image) return refuse(diagnostics, "no boot image named \"{}\" (images lists them)", source);
    switch (classify(*image)) {
        case ImageKind::Config:
            if (!parse_config(reinterpret_cast<const char*>(image->data), image->size, limits, config, diagnostics))
                return false;
            break;
        case ImageKind::PvhKernel:
            config = DomainConfig{};
            if (!set_key("name", image->name, limits, config, diagnostics) ||
                !set_key("kernel", image->name, limits, config, diagnostics))
                return false;
            break;
        case ImageKind::Other:
            return refuse(diagnostics, "\"{}\" is neither an xl config nor a PVH kernel", source);
    }
    for (usize i = 0; i < override_count; ++i)
        if (!apply_override(overrides[i], limits, config, diagnostics)) return false;
    return finish_config(limits, config, diagnostics);
}

ManagedDomain* Toolstack::create(const DomainConfig& config, bool paused, Message& error) {
    ManagedDomain* record = unused_record();
    if (!record) {
        error.set("Dom0 keeps at most {} domains of its own", kMaxDomains);
        return nullptr;
    }
    record->history = ConsoleHistory{};
    record->preserved = false;
    if (!build(*record, config, paused, error)) return nullptr;
    in_use_[record - records_] = true;
    return record;
}

ManagedDomain* Toolstack::find(u16 domid) {
    for (usize i = 0; i < kMaxDomains; ++i)
        if (in_use_[i] && records_[i].built.domid == domid) return &records_[i];
    return nullptr;
}

i64 Toolstack::destroy(u16 domid) {
    ManagedDomain* domain = find(domid);
    if (!domain) return control_.destroy(domid);
    drain(*domain);
    // Its console page is unmapped now, whatever domain_destroy says: forget it either way.
    const i64 result = release_domain(control_, domain->built);
    forget(*domain);
    return result;
}

void Toolstack::follow(ManagedDomain* domain, Sink* terminal) {
    followed_ = domain;
    terminal_ = terminal;
}

void Toolstack::drain_consoles() {
    for (usize i = 0; i < kMaxDomains; ++i)
        if (in_use_[i]) drain(records_[i]);
}

usize Toolstack::type_into(ManagedDomain& domain, const char* bytes, usize length) {
    const usize taken = domain.console.write_input(bytes, length);
    // Dropped while the domain has not bound its end; the bytes wait in the ring.
    if (taken) control_.evtchn_send(domain.built.console_port);
    return taken;
}

void Toolstack::handle_ended_domains(Sink& log) {
    for (usize i = 0; i < kMaxDomains; ++i) {
        ManagedDomain& domain = records_[i];
        if (!in_use_[i] || domain.preserved) continue;
        lamina_domain_info info;
        const i64 result = control_.get_info(domain.built.domid, info);
        if (result == -LAMINA_ESRCH) {
            // Destroyed behind the toolstack's back: only Dom0's side of its console is left.
            format(log, "domain {} ({}) is gone; its console is closed\n", domain.built.domid, domain.config.name);
            control_.unmap_frames(domain.built.console_slot, 1);
            control_.evtchn_close(domain.built.console_port);
            forget(domain);
        } else if (result >= 0 && info.state == LAMINA_DOMAIN_SHUTTING_DOWN) {
            act_on_end(domain, info, log);
        }
    }
}

ManagedDomain* Toolstack::unused_record() {
    for (usize i = 0; i < kMaxDomains; ++i)
        if (!in_use_[i]) return &records_[i];
    return nullptr;
}

bool Toolstack::build(ManagedDomain& record, const DomainConfig& config, bool paused, Message& error) {
    const BootImage* kernel = images_.find(config.kernel);
    if (!kernel) {
        error.set("kernel: no boot image named \"{}\"", config.kernel);
        return false;
    }
    const BootImage* ramdisk = config.ramdisk[0] ? images_.find(config.ramdisk) : nullptr;
    if (config.ramdisk[0] && !ramdisk) {
        error.set("ramdisk: no boot image named \"{}\"", config.ramdisk);
        return false;
    }
    if (!build_domain(control_, config, {*kernel, ramdisk}, paused, record.built, error)) return false;
    if (&record.config != &config) record.config = config;
    record.console.attach(record.built.console);
    return true;
}

void Toolstack::drain(ManagedDomain& domain) {
    Sink* terminal = &domain == followed_ ? terminal_ : nullptr;
    char chunk[256];
    // One ring's worth at most: a domain that keeps moving its index cannot keep Dom0 here.
    for (usize total = 0; total < LAMINA_CONSOLE_RING_OUT_SIZE;) {
        const usize count = domain.console.read_output(chunk, sizeof(chunk));
        if (count == 0) break;
        domain.history.append(chunk, count);
        if (terminal) terminal->write(chunk, count);
        total += count;
    }
}

void Toolstack::act_on_end(ManagedDomain& domain, const lamina_domain_info& info, Sink& log) {
    drain(domain);
    const u16 domid = domain.built.domid;
    format(log, "domain {} ({}) {}", domid, domain.config.name, ending(info.shutdown_reason));
    lamina_fault_report report;
    if ((info.flags & LAMINA_DOMAIN_FAULTED) && control_.get_fault_report(domid, report) >= 0)
        format(log, ": {}", FieldText(report.reason).text);
    const Action action = action_for(domain.config, info.shutdown_reason);
    if (action == Action::Preserve) {
        domain.preserved = true;
        format(log, "; preserved\n");
        return;
    }
    const i64 destroyed = release_domain(control_, domain.built);
    if (destroyed < 0) {
        format(log, "; domain_destroy: {}\n", lamina_errno_name(destroyed));
        forget(domain);
        return;
    }
    if (!restarts(action)) {
        format(log, "; destroyed\n");
        forget(domain);
        return;
    }
    Message error;
    if (!build(domain, domain.config, false, error)) {
        format(log, "; destroyed; restarting failed: {}\n", error.text());
        forget(domain);
        return;
    }
    format(log, "; restarted as domain {}\n", domain.built.domid);
}

void Toolstack::forget(ManagedDomain& domain) {
    in_use_[&domain - records_] = false;
    if (followed_ == &domain) follow(nullptr, nullptr);
}

}  // namespace lamina::toolstack
