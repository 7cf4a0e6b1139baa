// The hypercalls a guest makes, answered for that guest (hypervisor/hypercall/dispatcher.h has
// already checked the caller and the argument widths). The ABI itself: docs/hypercall-abi.md.
// What works so far: the ABI's version and features, the control domain's console, the log,
// host information, the vCPU's timer, yield, block and shutdown, and event channels (within the
// domain: interdomain channels wait for the domain table). Domain control, shared pages and the
// scheduler's calls answer -ENOSYS until the domain table and the scheduler are in (issues 4, 5).
#pragma once

#include <hypervisor/hypercall/dispatcher.h>

namespace lamina {

class Guest;

class GuestHypercalls final : public hypercall::HypercallHandlers {
public:
    explicit GuestHypercalls(Guest& guest) : guest_(guest) {}

#define LAMINA_HC_PARAM_(index, arg) , u64 LAMINA_HC_ARG_NAME arg
#define LAMINA_HYPERCALL(number, name, who, argc, args, summary) \
    i64 name(const hypercall::Caller& caller LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_PARAM_, argc, args)) override;
#include <lamina/abi/hypercalls.def>
#undef LAMINA_HC_PARAM_

private:
    Guest& guest_;
};

}  // namespace lamina
