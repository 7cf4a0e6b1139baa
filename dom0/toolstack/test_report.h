// What a conformance test kernel (tests/conformance) says on its console, read line by line as
// it arrives: its category from the header, its check counts, and its one result line
// ("Test result: SUCCESS"). The runner's verdict adds what the kernel cannot say itself: CRASH
// when it died, hung or ended without a result line.
//
// Portable: the unit tests feed it text.
#pragma once

#include <lamina/types.h>

namespace lamina::toolstack {

// Test kernels are the boot images named test-<name>.
constexpr char kTestPrefix[] = "test-";

// Whether a test is chosen by `pattern` (null: all): matched against its name without "test-",
// as a glob (* any run, ? any one character) when it has either, else as a part of the name.
bool test_chosen(const char* image_name, const char* pattern);

// What the pages Dom0 grants each test domain hold (tests/conformance/framework/conformance.h).
constexpr u8 kGrantPattern = 0x5a;
constexpr u8 kGrantPatternReadOnly = 0xa5;

// Dom0 as the test domain's other domain (peer), for what needs a second domain that acts. The
// kernel prints a request line, "conformance-request: <request>", and waits about 5 s for one
// line of reply that Dom0 types into its console input:
//   port       Dom0 offers an event-channel port to the domain (once a test: asked again, the
//              same one) and echoes each event on it with one back -> "port <P>" or "port <-errno>"
//   map <ref>  Dom0 maps the domain's grant <ref> at a frame of its own and reads the first
//              byte -> "mapped 0 <byte as two hex digits>" or "mapped <-errno>"
//   unmap      Dom0 removes that mapping -> "unmapped <0 or -errno>"
//   other      -> "unknown"
// Dom0 answers at most one request per wake-up (the last one seen), echoes at most one event per
// wake-up, and when the test ends closes the port and undoes a mapping the test left (a FAILURE).
// The port is offered on request, not to every test: a test of Dom0's ports must find none it can bind.
constexpr char kPeerRequestPrefix[] = "conformance-request: ";

enum class PeerRequestKind : u8 { OfferPort, Map, Unmap, Unknown };
struct PeerRequest {
    PeerRequestKind kind = PeerRequestKind::Unknown;
    u32 ref = 0;  // Map's grant reference
};

// The request in `text`, what follows the prefix: exact words, a reference of at most 32 bits.
PeerRequest parse_peer_request(const char* text);

// In order of severity, as xtf-runner orders them.
enum class Verdict : u8 { Success, Skip, Error, Failure, Crash };

const char* verdict_name(Verdict verdict);
inline Verdict worst(Verdict a, Verdict b) { return a > b ? a : b; }

class TestReport {
public:
    static constexpr usize kLineCapacity = 160;  // longer lines are judged by their start
    static constexpr usize kCategoryCapacity = 16;

    void feed(const char* bytes, usize length);

    // The result line's verdict; false when there was none.
    bool result(Verdict* verdict) const;
    // How many result lines came: a kernel must print exactly one.
    u32 result_lines() const { return result_lines_; }
    // "functional", "security", "stress"; "" before the header.
    const char* category() const { return category_; }
    u64 checks() const { return checks_; }
    u64 failed() const { return failed_; }
    // The last request line since the last call (older ones are dropped); false when none came.
    bool take_request(PeerRequest* request);

private:
    void finish_line();

    char line_[kLineCapacity + 1] = {};
    usize length_ = 0;
    char category_[kCategoryCapacity] = {};
    Verdict verdict_ = Verdict::Success;
    u32 result_lines_ = 0;
    u64 checks_ = 0;
    u64 failed_ = 0;
    PeerRequest request_;
    bool request_waiting_ = false;
};

}  // namespace lamina::toolstack
