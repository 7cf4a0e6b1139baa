#include <dom0/kernel/conformance.h>

#include <dom0/kernel/commands.h>
#include <dom0/kernel/console.h>
#include <dom0/kernel/domains.h>
#include <dom0/kernel/events.h>
#include <dom0/kernel/memory.h>
#include <dom0/toolstack/domain_builder.h>
#include <dom0/toolstack/test_report.h>
#include <lamina/abi/hypercall.h>
#include <lamina/string.h>

namespace lamina::dom0 {
namespace {

using toolstack::Verdict;

constexpr u64 kDefaultTimeoutS = 120;
constexpr u64 kPollNs = 100'000'000;
// Every test domain gets these; an end is kept (preserved) so that its state can be read.
constexpr const char* kTestKeys[] = {"memory=32", "vcpus=2", "on_poweroff=preserve", "on_reboot=preserve",
                                     "on_crash=preserve"};

// What a test must leave as it found it.
struct HostState {
    u64 free_pages;
    u32 dom0_ports;   // Dom0's event channels in use
    u32 domains;
    u64 domain_pages; // all domains' pages together
};

u32 dom0_ports_in_use() {
    u32 used = 0;
    lamina_evtchn_status status;
    for (u32 port = 1; port < LAMINA_EVTCHN_PORTS; ++port) {
        if (lamina_hc_evtchn_status(port, gpa(&status)) == 0 && status.state != LAMINA_EVTCHN_CLOSED) ++used;
    }
    return used;
}

bool read_host_state(HostState* state) {
    lamina_host_info host;
    if (lamina_hc_host_info(gpa(&host)) < 0) return false;
    *state = {host.free_pages, dom0_ports_in_use(), 0, 0};
    static lamina_domain_info infos[LAMINA_DOMAIN_LIST_MAX];
    for (u32 first = 0;;) {
        const i64 count = lamina_hc_domain_list(static_cast<u16>(first), gpa(infos), LAMINA_DOMAIN_LIST_MAX);
        if (count < 0) return false;
        for (i64 i = 0; i < count; ++i) {
            ++state->domains;
            state->domain_pages += infos[i].pages;
        }
        if (count < LAMINA_DOMAIN_LIST_MAX) return true;
        first = infos[count - 1].domid + 1u;
    }
}

u64 now_ns() {
    lamina_host_info host;
    return lamina_hc_host_info(gpa(&host)) < 0 ? 0 : host.uptime_ns;
}

bool is_test_kernel(const toolstack::BootImage& image) {
    return str::compare_bytes(image.name, toolstack::kTestPrefix, str::length(toolstack::kTestPrefix)) == 0 &&
           toolstack::classify(image) == toolstack::ImageKind::PvhKernel;
}

// The test's console: into its report, and onto the terminal indented.
class TestOutput final : public Sink {
public:
    TestOutput(Sink& terminal, bool quiet) : terminal_(terminal), quiet_(quiet) {}
    void write(const char* text, usize length) override {
        report.feed(text, length);
        if (quiet_) return;
        for (usize i = 0; i < length; ++i) {
            if (line_start_) terminal_.write("  ", 2);
            terminal_.write(text + i, 1);
            line_start_ = text[i] == '\n';
        }
    }
    toolstack::TestReport report;

private:
    Sink& terminal_;
    bool quiet_;
    bool line_start_ = true;
};

// Builds test kernel `name` as a paused domain with the suite's keys and `command_line`; null,
// with why in `detail`, when it cannot.
toolstack::ManagedDomain* create_paused(const char* name, const char* command_line, char* detail, usize detail_size) {
    lamina_host_info host;
    if (lamina_hc_host_info(gpa(&host)) < 0) {
        format_to(detail, detail_size, "host_info failed");
        return nullptr;
    }
    const toolstack::Limits limits = toolstack::limits_of(host);
    char command_line_key[160];
    format_to(command_line_key, sizeof(command_line_key), "cmdline={}", command_line);
    const char* keys[array_size(kTestKeys) + 1];
    for (usize i = 0; i < array_size(kTestKeys); ++i) keys[i] = kTestKeys[i];
    keys[array_size(kTestKeys)] = command_line_key;
    const usize key_count = command_line[0] ? array_size(keys) : array_size(kTestKeys);
    static toolstack::DomainConfig config;
    static toolstack::Diagnostics diagnostics;
    if (!toolstack::prepare_config(boot_images(), name, keys, key_count, limits, config, diagnostics)) {
        format_to(detail, detail_size, "config: {}", diagnostics.error.text);
        return nullptr;
    }
    toolstack::Message error;
    toolstack::ManagedDomain* domain = toolstack().create(config, true, error);
    if (!domain) format_to(detail, detail_size, "create: {}", error.text());
    return domain;
}

// The two pages Dom0 offers each test domain, writable and read-only: the shared-page tests
// map them; afterwards the read-only one must be as it was and both grants revocable.
alignas(4096) u8 granted_pages[2][4096];

struct Grants {
    i64 writable = -1;
    i64 read_only = -1;
};

Grants offer_pages(toolstack::ManagedDomain& domain) {
    str::fill_bytes(granted_pages[0], toolstack::kGrantPattern, 4096);
    str::fill_bytes(granted_pages[1], toolstack::kGrantPatternReadOnly, 4096);
    const u16 domid = domain.built.domid;
    Grants grants;
    grants.writable = lamina_hc_shared_page_grant(gpa(granted_pages[0]) / 4096, domid, 0);
    grants.read_only = lamina_hc_shared_page_grant(gpa(granted_pages[1]) / 4096, domid, LAMINA_SHARE_READONLY);
    if (grants.writable >= 0 && grants.read_only >= 0) {
        char line[96];
        const usize length = format_to(line, sizeof(line), "granter={} grant_rw={} grant_ro={}\n",
                                       LAMINA_DOMID_CONTROL, grants.writable, grants.read_only);
        toolstack().type_into(domain, line, min(length, sizeof(line) - 1));
    }
    return grants;
}

// Takes the grants back; why not, if they would not come back or the read-only page changed.
bool withdraw_pages(const Grants& grants, char* detail, usize detail_size) {
    const i64 writable = grants.writable >= 0 ? lamina_hc_shared_page_revoke(static_cast<u32>(grants.writable)) : 0;
    const i64 read_only = grants.read_only >= 0 ? lamina_hc_shared_page_revoke(static_cast<u32>(grants.read_only)) : 0;
    if (writable < 0 || read_only < 0) {
        format_to(detail, detail_size, "revoking the grants after the domain was destroyed: {}, {}",
                  lamina_errno_name(writable), lamina_errno_name(read_only));
        return false;
    }
    for (u8 byte : granted_pages[1]) {
        if (byte != toolstack::kGrantPatternReadOnly) {
            format_to(detail, detail_size, "the page granted read-only was written");
            return false;
        }
    }
    return true;
}

// Where Dom0 maps a grant the test asks it to: the console slot of domain 0, which the toolstack
// never builds, so the frame is in no other use, not RAM, not mapped as a device
// (hypervisor/main.cpp leaves the toolstack's window out), and shares its page tables with the
// running test's console slot: mapping it allocates none that would show in the accounting.
constexpr u64 kPeerMapGfn = toolstack::kConsoleSlotBase + LAMINA_DOMID_CONTROL;

// Dom0 as the test domain's other domain, answering its requests (the protocol is in
// dom0/toolstack/test_report.h). Everything the domain sends is untrusted: at most one request
// and one echo per wake-up of Dom0's, whatever it floods Dom0 with.
class Peer {
public:
    explicit Peer(toolstack::ManagedDomain& domain) : domain_(domain) {}

    // One wake-up while the test runs: echo an event on the offered port, answer the last request.
    void serve(toolstack::TestReport& report) {
        if (port_ > 0 && take_event(static_cast<u32>(port_))) {
            ++echoes_;
            lamina_hc_evtchn_send(static_cast<u32>(port_));
        }
        toolstack::PeerRequest request;
        if (report.take_request(&request)) answer(request);
    }

    // Before the domain is destroyed (a mapping of its page would keep it): closes the port and
    // removes a mapping the test left, which is a failure; false with why then.
    bool disconnect(char* detail, usize detail_size) {
        if (port_ > 0) lamina_hc_evtchn_close(static_cast<u32>(port_));
        port_ = -1;
        if (!mapped_) return true;
        mapped_ = false;
        format_to(detail, detail_size, "the test left its grant mapped by Dom0 (unmapped: {})",
                  lamina_errno_name(lamina_hc_shared_page_unmap(kPeerMapGfn)));
        return false;
    }

    u32 answered() const { return answered_; }
    u32 echoes() const { return echoes_; }

private:
    void answer(const toolstack::PeerRequest& request) {
        const u16 domid = domain_.built.domid;
        char reply[48];
        usize length = 0;
        switch (request.kind) {
            case toolstack::PeerRequestKind::OfferPort:
                if (port_ <= 0) {
                    port_ = lamina_hc_evtchn_alloc_unbound(domid);
                    if (port_ > 0) take_event(static_cast<u32>(port_));  // a bit left by a port of that number before
                }
                length = format_to(reply, sizeof(reply), "port {}\n", port_);
                break;
            case toolstack::PeerRequestKind::Map: {
                const i64 result = lamina_hc_shared_page_map(domid, request.ref, kPeerMapGfn);
                mapped_ = mapped_ || result == 0;
                length = result == 0 ? format_to(reply, sizeof(reply), "mapped 0 {:02x}\n",
                                                 *reinterpret_cast<const volatile u8*>(kPeerMapGfn * toolstack::kFrameSize))
                                     : format_to(reply, sizeof(reply), "mapped {}\n", result);
                break;
            }
            case toolstack::PeerRequestKind::Unmap: {
                const i64 result = lamina_hc_shared_page_unmap(kPeerMapGfn);
                mapped_ = mapped_ && result != 0;
                length = format_to(reply, sizeof(reply), "unmapped {}\n", result);
                break;
            }
            case toolstack::PeerRequestKind::Unknown:
                length = format_to(reply, sizeof(reply), "unknown\n");
                break;
        }
        ++answered_;
        toolstack().type_into(domain_, reply, min(length, sizeof(reply) - 1));
    }

    toolstack::ManagedDomain& domain_;
    i64 port_ = -1;  // the port offered to the domain, once it asked
    bool mapped_ = false;
    u32 answered_ = 0;
    u32 echoes_ = 0;
};

struct Outcome {
    Verdict verdict;
    char detail[160];
};

// Runs one test kernel start to end; the verdict and, unless it is SUCCESS, why.
Outcome run_test(const char* name, const char* command_line, u64 timeout_s, bool quiet,
                 TestOutput& output) {
    Outcome outcome{Verdict::Error, ""};
    toolstack::ManagedDomain* domain = create_paused(name, command_line, outcome.detail, sizeof(outcome.detail));
    if (!domain) return outcome;
    const u16 domid = domain->built.domid;
    const Grants grants = offer_pages(*domain);
    Peer peer(*domain);
    toolstack().follow(domain, &output);
    const u64 deadline = now_ns() + timeout_s * 1'000'000'000;
    const i64 unpaused = domain_control().unpause(domid);
    // The toolstack's line about the end ("domain 3 (test-x) crashed: triple fault; preserved").
    char ending[160];
    BufferSink notices(ending, sizeof(ending));
    lamina_domain_info info{};
    bool ended = false, timed_out = false;
    while (unpaused >= 0) {
        service_domains(notices);
        peer.serve(output.report);
        ended = domain_control().get_info(domid, info) >= 0 && info.state >= LAMINA_DOMAIN_SHUTTING_DOWN;
        if (ended) break;
        const u64 now = now_ns();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        console().flush();
        wait_for_event(min(deadline - now, kPollNs));
    }
    toolstack().drain_consoles();
    toolstack().handle_ended_domains(notices);  // in case DOMAIN_DIED has not come yet
    toolstack().follow(nullptr, nullptr);
    if (!quiet) console().flush();
    char peer_detail[sizeof(outcome.detail)];
    const bool peer_clean = peer.disconnect(peer_detail, sizeof(peer_detail));
    if (peer.answered() || peer.echoes())  // TestOutput leaves it off the terminal when quiet
        format(output, "peer: Dom0 answered {} requests, echoed {} events\n", peer.answered(), peer.echoes());
    const i64 destroyed = toolstack().destroy(domid);

    Verdict verdict;
    const bool has_result = output.report.result(&verdict);
    if (unpaused < 0) {
        format_to(outcome.detail, sizeof(outcome.detail), "domain_unpause: {}", lamina_errno_name(unpaused));
    } else if (timed_out) {
        outcome.verdict = Verdict::Crash;
        format_to(outcome.detail, sizeof(outcome.detail), "still running after {} s", timeout_s);
    } else if (!ended || info.shutdown_reason != LAMINA_SHUTDOWN_POWEROFF || !has_result) {
        outcome.verdict = Verdict::Crash;
        usize length = str::length(ending);
        while (length && ending[length - 1] == '\n') ending[--length] = '\0';
        format_to(outcome.detail, sizeof(outcome.detail), "{}{}", ending[0] ? ending : "ended",
                  has_result ? "" : ", without a result line");
    } else if (output.report.result_lines() != 1) {
        outcome.verdict = worst(verdict, Verdict::Error);
        format_to(outcome.detail, sizeof(outcome.detail), "{} result lines", output.report.result_lines());
    } else {
        outcome.verdict = verdict;
    }
    if (destroyed < 0) {
        outcome.verdict = worst(outcome.verdict, Verdict::Error);
        format_to(outcome.detail, sizeof(outcome.detail), "domain_destroy: {}", lamina_errno_name(destroyed));
    } else if (!withdraw_pages(grants, outcome.detail, sizeof(outcome.detail))) {
        outcome.verdict = worst(outcome.verdict, Verdict::Failure);
    } else if (!peer_clean) {
        outcome.verdict = worst(outcome.verdict, Verdict::Failure);
        str::copy_bounded(outcome.detail, peer_detail, sizeof(outcome.detail));
    }
    return outcome;
}

}  // namespace

int conformance_command(shell::Shell& shell, int argc, const char* const* argv) {
    shell::OptionParser options(argc, argv, "t:a:q");
    toolstack::Message error;
    u64 timeout_s = kDefaultTimeoutS;
    const char* command_line = "";
    bool quiet = false;
    for (char letter; (letter = options.next(error)) != 0;) {
        if (letter == '?') return shell.fail("conformance: {}", error.text());
        if (letter == 't' && !shell::parse_number("-t", options.value(), "the time-out", 1, 86400, &timeout_s, error))
            return shell.fail("conformance: {}", error.text());
        if (letter == 'a') command_line = options.value();
        if (letter == 'q') quiet = true;
    }
    if (options.operand_count() > 1) return shell.usage_error(argv[0]);
    const char* pattern = options.operand_count() == 1 ? options.operand(0) : nullptr;
    if (str::length(command_line) > 140) return shell.fail("conformance: -a: at most 140 characters");

    // The first domain built and the first grant make tables that stay (Dom0's mapping of
    // console pages, its grant table): one built, offered pages and destroyed first keeps them
    // out of the first test's accounting.
    for (const toolstack::BootImage& image : boot_images()) {
        if (!is_test_kernel(image) || !toolstack::test_chosen(image.name, pattern)) continue;
        char ignored[160];
        if (toolstack::ManagedDomain* warm = create_paused(image.name, "", ignored, sizeof(ignored))) {
            const Grants grants = offer_pages(*warm);
            toolstack().destroy(warm->built.domid);
            withdraw_pages(grants, ignored, sizeof(ignored));
        }
        break;
    }
    u32 counts[static_cast<u8>(Verdict::Crash) + 1] = {};
    u32 total = 0;
    Verdict overall = Verdict::Success;
    for (const toolstack::BootImage& image : boot_images()) {
        if (!is_test_kernel(image) || !toolstack::test_chosen(image.name, pattern)) continue;
        HostState before, after;
        if (!read_host_state(&before)) return shell.fail("conformance: cannot read the host's state");
        shell.print("CONFORMANCE BEGIN {}\n", image.name);
        TestOutput output(shell.out(), quiet);
        const u64 start = now_ns();
        Outcome outcome = run_test(image.name, command_line, timeout_s, quiet, output);
        const u64 elapsed_ms = (now_ns() - start) / 1'000'000;
        // What the test left behind is a failure of the hypervisor, whatever the kernel said.
        if (!read_host_state(&after)) return shell.fail("conformance: cannot read the host's state");
        if (after.free_pages != before.free_pages || after.dom0_ports != before.dom0_ports ||
            after.domains != before.domains || after.domain_pages != before.domain_pages) {
            outcome.verdict = worst(outcome.verdict, Verdict::Failure);
            format_to(outcome.detail, sizeof(outcome.detail),
                      "host state changed: free pages {} -> {}, Dom0 ports {} -> {}, domains {} -> {} ({} -> {} pages)",
                      before.free_pages, after.free_pages, before.dom0_ports, after.dom0_ports, before.domains,
                      after.domains, before.domain_pages, after.domain_pages);
        }
        shell.print("CONFORMANCE RESULT name={} category={} result={} checks={} failed={} time_ms={}{}{}\n",
                    image.name, output.report.category()[0] ? output.report.category() : "unknown",
                    toolstack::verdict_name(outcome.verdict), output.report.checks(), output.report.failed(),
                    elapsed_ms, outcome.detail[0] ? " detail=" : "", outcome.detail);
        ++counts[static_cast<u8>(outcome.verdict)];
        ++total;
        overall = worst(overall, outcome.verdict);
    }
    if (total == 0) return shell.fail("conformance: no test kernel{}{}", pattern ? " matches " : "", pattern ? pattern : "");
    shell.print("CONFORMANCE SUMMARY tests={} success={} skip={} error={} failure={} crash={} result={}\n", total,
                counts[0], counts[1], counts[2], counts[3], counts[4], toolstack::verdict_name(overall));
    return overall <= Verdict::Skip ? 0 : 1;
}

}  // namespace lamina::dom0
