// Every domain the hypervisor has, by id: creation with the host's limits (domain count, vCPUs
// per domain, memory), lookup by id and name, the listing in id order, and the event channels'
// view of the other domains. Ids are handed out going up (wrapping below LAMINA_DOMID_MAX), so
// that a destroyed domain's id is not reused at once, as Xen does.
#pragma once

#include <hypervisor/domain/domain.h>
#include <hypervisor/event/event_channels.h>
#include <lamina/spinlock.h>

namespace lamina {

class DomainTable final : public event::EventDomains {
public:
    // At most this many at once, the control domain included (fewer when the CPU has fewer TLB
    // tags: each domain has its own).
    static constexpr u32 kMaxDomains = 64;

    // The limits, from what the machine has. Called once at boot.
    void init();
    u32 max_domains() const { return max_domains_; }
    u32 max_vcpus() const { return Domain::kMaxVcpus; }

    // A new BUILDING domain, or a negative errno: -EEXIST (the name is taken), -EINVAL (not a
    // valid name), -ENOSPC (the domain limit), -ENOMEM.
    i64 create(const char* name, bool control, bool scheduled, Domain** created);
    // Takes it out of the table and frees it. Its vCPUs are off every run queue.
    void destroy(Domain& domain);

    Domain* by_id(u16 id) const;
    Domain* by_name(const char* name) const;
    Domain* control_domain() const { return control_; }
    // The domain with the lowest id at or above `first_id`, or null: the listing walks with it.
    Domain* next_from(u16 first_id) const;
    u32 count() const { return count_; }

    // What the control domain is told when a domain shuts down, and what ends the machine
    // when the control domain itself does.
    void domain_shut_down(Domain& domain);
    void set_control_domain_ended(void (*ended)(Domain& control)) { control_domain_ended_ = ended; }

    // event::EventDomains
    event::EventChannels* find(u16 domid) override;

private:
    Domain* find_locked(u16 id) const;
    Domain* by_name_locked(const char* name) const;

    // Guards the slots (the self-test creates domains on two CPUs at once). A domain found stays
    // valid as long as its creator does not destroy it: only the control domain and the self-test
    // that made a domain destroy it.
    mutable SpinLock lock_;
    Domain* slots_[kMaxDomains] = {};
    u32 max_domains_ = 1;
    u32 count_ = 0;
    u16 next_id_ = 1;
    Domain* control_ = nullptr;
    void (*control_domain_ended_)(Domain& control) = nullptr;
};

DomainTable& domains();

// Whether `name` may name a domain: 1 to LAMINA_DOMAIN_NAME_SIZE - 1 printable ASCII characters
// from [A-Za-z0-9_.-], not all digits (the shell takes a number as an id).
bool valid_domain_name(const char* name, usize capacity);

}  // namespace lamina
