// Dom0's toolstack in the running system: the hypercalls behind its DomainControl, the one
// Toolstack, and the servicing of its domains between inputs.
#pragma once

#include <dom0/toolstack/toolstack.h>
#include <lamina/format.h>

namespace lamina::dom0 {

toolstack::DomainControl& domain_control();
toolstack::Toolstack& toolstack();

// Moves new console output into each domain's history (and to the terminal if `console` follows
// one), and applies the config's action to domains that ended, with one line each on `notices`.
// The loops that wait call it at every wake.
void service_domains(Sink& notices);

}  // namespace lamina::dom0
