// The hypercalls a vCPU makes, answered for it and its domain (hypervisor/hypercall/dispatcher.h
// has already checked the caller and the argument widths). The ABI itself: docs/hypercall-abi.md.
// vcpu_hypercalls.cpp answers the calls about the caller itself, domain_control.cpp the control
// domain's calls about others. Shared pages and vcpu_up/vcpu_down answer -ENOSYS for now.
#pragma once

#include <hypervisor/hypercall/dispatcher.h>

namespace lamina {

class DomainVcpu;

class VcpuHypercalls final : public hypercall::HypercallHandlers {
public:
    explicit VcpuHypercalls(DomainVcpu& vcpu) : vcpu_(vcpu) {}

#define LAMINA_HC_PARAM_(index, arg) , u64 LAMINA_HC_ARG_NAME arg
#define LAMINA_HYPERCALL(number, name, who, argc, args, summary) \
    i64 name(const hypercall::Caller& caller LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_PARAM_, argc, args)) override;
#include <lamina/abi/hypercalls.def>
#undef LAMINA_HC_PARAM_

private:
    DomainVcpu& vcpu_;
};

}  // namespace lamina
