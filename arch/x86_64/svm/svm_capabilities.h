// AMD-V capabilities from CPUID Fn8000_000A (AMD APM Vol. 2 15.4 and Vol. 3 appendix E).
#pragma once

#include <lamina/types.h>

namespace lamina::svm {

struct Capabilities {
    u32 revision = 0;
    u32 asid_count = 0;
    u32 features = 0;  // EDX of Fn8000_000A
    bool disabled_by_firmware = false;  // VM_CR.SVMDIS
    bool npt = false, lbr_virt = false, svm_lock = false, nrip_save = false, tsc_rate = false,
         vmcb_clean = false, flush_by_asid = false, decode_assists = false, pause_filter = false,
         avic = false, vmsave_virt = false, vgif = false;
};

void read_capabilities(Capabilities& caps);
bool sufficient_for_lamina(const Capabilities& caps, const char** missing);

}  // namespace lamina::svm
