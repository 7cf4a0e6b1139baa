// A vCPU in host memory for tests of the core: every register the interface reaches is a plain
// field, and what the core asked of it (steps, injected exceptions) is recorded.
#pragma once

#include <hypervisor/vcpu.h>

#include <vector>

namespace lamina::testing {

class FakeVcpu final : public Vcpu {
public:
    struct Injected {
        u8 vector;
        bool has_error_code;
        u32 error_code;
        bool operator==(const Injected&) const = default;
    };

    ExitInfo run() override { return next_exit; }
    u64 rip() const override { return rip_value; }
    void set_rip(u64 rip) override { rip_value = rip; }
    u64 rflags() const override { return rflags_value; }
    void set_rflags(u64 rflags) override { rflags_value = rflags; }
    u64 control_register(ControlRegister cr) const override { return cr_values[static_cast<u8>(cr)]; }
    void set_control_register(ControlRegister cr, u64 value) override { cr_values[static_cast<u8>(cr)] = value; }
    u64 efer() const override { return efer_value; }
    void set_efer(u64 efer) override { efer_value = efer; }
    Segment segment(SegmentRegister s) const override { return segments[static_cast<u8>(s)]; }
    void set_segment(SegmentRegister s, const Segment& value) override { segments[static_cast<u8>(s)] = value; }
    DescriptorTable gdtr() const override { return gdtr_value; }
    DescriptorTable idtr() const override { return idtr_value; }
    // As the VMX backend derives it: SS.DPL, and EFER.LMA with CS.L.
    ExecutionMode execution_mode() const override {
        return {static_cast<u8>((segments[static_cast<u8>(SegmentRegister::Ss)].attributes >> 5) & 3),
                (efer_value & (1u << 10)) && (segments[static_cast<u8>(SegmentRegister::Cs)].attributes & (1u << 13))};
    }
    void advance_rip() override { ++advanced; }
    void inject_exception(u8 vector, bool has_error_code, u32 error_code) override {
        injected.push_back({vector, has_error_code, error_code});
    }
    bool can_inject_interrupt() const override { return interruptible; }
    void inject_interrupt(u8 vector) override { injected_interrupts.push_back(vector); }
    void request_interrupt_window(bool on) override { interrupt_window_requested = on; }
    u64 pat() const override { return pat_value; }
    void set_pat(u64 pat) override { pat_value = pat; }
    u64 flushed_stage2_generation() const override { return stage2_generation; }
    void release() override {}

    Segment& seg(SegmentRegister s) { return segments[static_cast<u8>(s)]; }
    std::vector<u8> injected_vectors() const {
        std::vector<u8> vectors;
        for (const Injected& i : injected) vectors.push_back(i.vector);
        return vectors;
    }

    ExitInfo next_exit{};
    u64 rip_value = 0;
    u64 rflags_value = 2;  // bit 1 always reads as one
    u64 cr_values[9] = {};  // indexed by ControlRegister (CR0, CR2, CR3, CR4, CR8)
    u64 efer_value = 0;
    Segment segments[8] = {};  // indexed by SegmentRegister
    DescriptorTable gdtr_value{};
    DescriptorTable idtr_value{};
    bool interruptible = true;
    u64 pat_value = 0x0007040600070406;  // the power-on PAT
    u64 stage2_generation = 0;

    int advanced = 0;  // advance_rip() calls
    std::vector<Injected> injected;
    std::vector<u8> injected_interrupts;
    bool interrupt_window_requested = false;
};

}  // namespace lamina::testing
