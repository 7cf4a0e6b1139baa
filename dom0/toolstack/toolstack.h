// Dom0's toolstack: the domains this Dom0 created, each with the config it was built from and its
// console (the ring, Dom0's port, the last 4 KiB of output), and what happens when one ends: the
// config's on_poweroff, on_reboot or on_crash, as xl applies them.
//
// Portable: it acts only through a DomainControl, so the tests run it against a fake hypervisor.
#pragma once

#include <dom0/toolstack/console_ring.h>
#include <dom0/toolstack/domain_builder.h>
#include <dom0/toolstack/images.h>
#include <dom0/toolstack/message.h>
#include <dom0/toolstack/xl_config.h>

namespace lamina::toolstack {

struct ManagedDomain {
    BuiltDomain built;
    DomainConfig config;  // finished: what a restart builds again
    ConsoleRing console;
    ConsoleHistory history;
    bool preserved;       // it ended and the config said to leave it
};

// The config `create <source> [key=value...]` builds: the image `source` is an xl config, or a
// PVH kernel that gets the defaults with its own name as the domain's name and kernel; then
// each override; then finish_config. False with diagnostics.error; warnings either way.
bool prepare_config(const ImageDirectory& images, const char* source, const char* const* overrides,
                    usize override_count, const Limits& limits, DomainConfig& config, Diagnostics& diagnostics);

class Toolstack {
public:
    // More than the hypervisor allows besides Dom0 on any host (hypervisor/domain/domain_table.h:
    // 64 in all), so that the host's limit is the one an operator meets, with its own message.
    static constexpr usize kMaxDomains = 64;

    Toolstack(DomainControl& control, const ImageDirectory& images) : control_(control), images_(images) {}

    // Builds a domain from a finished config, its kernel and ramdisk found among the images.
    ManagedDomain* create(const DomainConfig& config, bool paused, Message& error);

    // A domain this Dom0 created; null for any other.
    ManagedDomain* find(u16 domid);

    // Destroys a domain (one of ours after unmapping its console). The result of domain_destroy.
    i64 destroy(u16 domid);

    // Also writes the output of `domain` to `terminal` from now on (null: no domain's), until
    // it is destroyed without a restart. The domain followed now, if any.
    void follow(ManagedDomain* domain, Sink* terminal);
    ManagedDomain* followed() const { return followed_; }

    // Moves new output of every console into its history (and the terminal, if followed).
    void drain_consoles();

    // Puts typed bytes into a domain's console and signals it; how many fit.
    usize type_into(ManagedDomain& domain, const char* bytes, usize length);

    // Applies the configured action to each domain of ours that has ended, one line each on `log`:
    // "domain 3 (ticker) crashed: triple fault; destroyed".
    void handle_ended_domains(Sink& log);

private:
    ManagedDomain* unused_record();
    bool build(ManagedDomain& record, const DomainConfig& config, bool paused, Message& error);
    void drain(ManagedDomain& domain);
    void act_on_end(ManagedDomain& domain, const lamina_domain_info& info, Sink& log);
    void forget(ManagedDomain& domain);

    DomainControl& control_;
    const ImageDirectory& images_;
    ManagedDomain records_[kMaxDomains] = {};
    bool in_use_[kMaxDomains] = {};
    ManagedDomain* followed_ = nullptr;
    Sink* terminal_ = nullptr;
};

}  // namespace lamina::toolstack
