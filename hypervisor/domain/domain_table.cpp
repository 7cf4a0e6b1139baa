#include <hypervisor/domain/domain_table.h>

#include <hypervisor/log.h>
#include <hypervisor/sched/cpu_scheduler.h>
#include <hypervisor/virt.h>
#include <lamina/abi/errno.h>
#include <lamina/abi/event_channel.h>
#include <lamina/string.h>

namespace lamina {
namespace {

constexpr i64 error(u32 code) { return -static_cast<i64>(code); }

DomainTable table;

bool name_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

}  // namespace

DomainTable& domains() { return table; }

bool valid_domain_name(const char* name, usize capacity) {
    const usize length = str::length_bounded(name, capacity);
    if (length == 0 || length == capacity) return false;
    bool all_digits = true;
    for (usize i = 0; i < length; ++i) {
        if (!name_character(name[i])) return false;
        all_digits = all_digits && name[i] >= '0' && name[i] <= '9';
    }
    return !all_digits;
}

void DomainTable::init() {
    // Each domain has its own TLB tag, 1 to slot count.
    max_domains_ = min<u32>(kMaxDomains, virt::summary().tlb_tags);
    if (max_domains_ == 0) max_domains_ = 1;
}

i64 DomainTable::create(const char* name, bool control, bool scheduled, Domain** created) {
    if (!valid_domain_name(name, LAMINA_DOMAIN_NAME_SIZE)) return error(LAMINA_EINVAL);
    LockGuard guard(lock_);
    if (by_name_locked(name)) return error(LAMINA_EEXIST);
    if (control && control_) return error(LAMINA_EEXIST);
    u32 slot = 0;
    while (slot < max_domains_ && slots_[slot]) ++slot;
    if (slot == max_domains_) return error(LAMINA_ENOSPC);
    u16 id = 0;
    if (!control) {
        // The next id going up that no domain has.
        while (next_id_ == 0 || next_id_ > LAMINA_DOMID_MAX || find_locked(next_id_)) {
            next_id_ = next_id_ >= LAMINA_DOMID_MAX ? 1 : static_cast<u16>(next_id_ + 1);
        }
        id = next_id_;
        next_id_ = id >= LAMINA_DOMID_MAX ? 1 : static_cast<u16>(id + 1);
    }
    Domain* domain = Domain::create({.id = id, .name = name, .control = control, .scheduled = scheduled,
                                     .tlb_tag = static_cast<u16>(slot + 1)});
    if (!domain) return error(LAMINA_ENOMEM);
    if (scheduled && !(scheduler::add(*domain) && scheduler::add_vcpu(*domain->vcpu(0)))) {
        Domain::destroy(domain);
        return error(LAMINA_ENOMEM);
    }
    slots_[slot] = domain;
    ++count_;
    if (control) control_ = domain;
    *created = domain;
    return id;
}

// Out of the table first (no new lookup finds it), its vCPUs stopped, every CPU past anything
// it found before (scheduler::quiesce), and only then freed.
void DomainTable::destroy(Domain& domain) {
    {
        LockGuard guard(lock_);
        for (Domain* other : slots_) {
            if (other && other != &domain) other->drop_mappings_of(domain);
        }
        for (Domain*& slot : slots_) {
            if (slot != &domain) continue;
            slot = nullptr;
            --count_;
            if (control_ == &domain) control_ = nullptr;
        }
    }
    if (domain.is_scheduled()) {
        domain.begin_dying();
        scheduler::quiesce(domain);
    }
    Domain::destroy(&domain);
}

Domain* DomainTable::by_id(u16 id) const {
    LockGuard guard(lock_);
    return find_locked(id);
}

Domain* DomainTable::find_locked(u16 id) const {
    for (Domain* domain : slots_) {
        if (domain && domain->id() == id) return domain;
    }
    return nullptr;
}

Domain* DomainTable::by_name(const char* name) const {
    LockGuard guard(lock_);
    return by_name_locked(name);
}

Domain* DomainTable::by_name_locked(const char* name) const {
    for (Domain* domain : slots_) {
        if (domain && str::equal(domain->name(), name)) return domain;
    }
    return nullptr;
}

Domain* DomainTable::next_from(u16 first_id) const {
    LockGuard guard(lock_);
    Domain* best = nullptr;
    for (Domain* domain : slots_) {
        if (domain && domain->id() >= first_id && (!best || domain->id() < best->id())) best = domain;
    }
    return best;
}

void DomainTable::domain_shut_down(Domain& domain) {
    if (&domain == control_) {
        if (control_domain_ended_) control_domain_ended_(domain);
        return;
    }
    if (control_) control_->events().raise_virq(LAMINA_VIRQ_DOMAIN_DIED, 0);
}

event::EventChannels* DomainTable::find(u16 domid) {
    Domain* domain = by_id(domid);
    return domain && domain->state() != LAMINA_DOMAIN_DYING ? &domain->events() : nullptr;
}

}  // namespace lamina
