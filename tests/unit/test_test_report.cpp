#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include <dom0/toolstack/test_report.h>

using namespace lamina;
using toolstack::TestReport;
using toolstack::Verdict;

namespace {

void feed(TestReport& report, const char* text) { report.feed(text, std::strlen(text)); }
void feed(TestReport& report, const std::string& text) { report.feed(text.data(), text.size()); }

}  // namespace

TEST_CASE("a test kernel's output gives its category, counts and result") {
    TestReport report;
    feed(report, "--- Lamina conformance: evtchn (functional), unprivileged domain ---\nok 1 - x\n");
    feed(report, "FAIL 2 - y: returned -22\n2 checks, 1 fa");
    feed(report, "iled\r\nTest result: FAIL");  // split across reads, with a CR
    Verdict v = Verdict::Success;
    CHECK_FALSE(report.result(&v));
    feed(report, "URE\n");
    REQUIRE(report.result(&v));
    CHECK(v == Verdict::Failure);
    CHECK(report.result_lines() == 1);
    CHECK(std::strcmp(report.category(), "functional") == 0);
    CHECK(report.checks() == 2);
    CHECK(report.failed() == 1);
}

TEST_CASE("a result line's word decides; an unknown word is the kernel's error") {
    for (auto [line, expected] : {std::pair{"Test result: SUCCESS\n", Verdict::Success},
                                  std::pair{"Test result: SKIP\n", Verdict::Skip},
                                  std::pair{"Test result: ERROR\n", Verdict::Error},
                                  std::pair{"Test result: CRASH\n", Verdict::Error},  // not the kernel's to say
                                  std::pair{"Test result: SUCCESSFUL\n", Verdict::Error}}) {
        TestReport report;
        feed(report, line);
        Verdict v = Verdict::Success;
        REQUIRE(report.result(&v));
        CHECK(v == expected);
    }
}

TEST_CASE("every result line is counted; the last one is the verdict") {
    TestReport report;
    feed(report, "Test result: SUCCESS\nTest result: SKIP\n");
    Verdict v;
    REQUIRE(report.result(&v));
    CHECK(v == Verdict::Skip);
    CHECK(report.result_lines() == 2);
}

TEST_CASE("hostile output neither overflows nor fakes a header") {
    TestReport report;
    std::string long_line(10000, 'x');
    long_line += "\n--- Lamina conformance: t (" + std::string(100, 'c') + "\n";
    feed(report, long_line.c_str());
    CHECK(std::strlen(report.category()) < TestReport::kCategoryCapacity);
    feed(report, "--- Lamina conformance: no parenthesis\n12 checks, x failed\n99999999999999999999999 checks, 1 failed\n");
    CHECK(report.checks() == 0);
    Verdict v;
    CHECK_FALSE(report.result(&v));
}

TEST_CASE("verdicts order by severity as xtf-runner's do") {
    CHECK(toolstack::worst(Verdict::Skip, Verdict::Success) == Verdict::Skip);
    CHECK(toolstack::worst(Verdict::Failure, Verdict::Crash) == Verdict::Crash);
    CHECK(std::strcmp(toolstack::verdict_name(Verdict::Failure), "FAILURE") == 0);
}

TEST_CASE("tests are chosen by glob or by a part of the name without test-") {
    CHECK(toolstack::test_chosen("test-evtchn", nullptr));
    CHECK(toolstack::test_chosen("test-evtchn", "evt"));
    CHECK(toolstack::test_chosen("test-evtchn", "evtchn"));
    CHECK_FALSE(toolstack::test_chosen("test-evtchn", "test-"));
    CHECK(toolstack::test_chosen("test-control-host", "control-*"));
    CHECK_FALSE(toolstack::test_chosen("test-evtchn", "e?t"));
    CHECK(toolstack::test_chosen("test-evtchn", "e?tchn"));
    CHECK(toolstack::test_chosen("test-abi", "*"));
    CHECK(toolstack::test_chosen("test-abi", ""));
    CHECK_FALSE(toolstack::test_chosen("test-abi", "abix"));
    // Many stars against a long name finish at once.
    CHECK_FALSE(toolstack::test_chosen("test-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                       "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"));
}

TEST_CASE("request lines for Dom0 as the peer are parsed strictly; the last one waits") {
    using toolstack::PeerRequestKind;
    const auto parse = toolstack::parse_peer_request;
    CHECK(parse("port").kind == PeerRequestKind::OfferPort);
    CHECK(parse("unmap").kind == PeerRequestKind::Unmap);
    CHECK(parse("map 7").kind == PeerRequestKind::Map);
    CHECK(parse("map 7").ref == 7);
    CHECK(parse("map 4294967295").ref == 0xffffffffu);
    for (const char* bad : {"", "map", "map ", "map 4294967296", "map 99999999999999999999999", "map -1", "map 7 ",
                            "map 0x7", "map 7x", "unmap 3", "port 1", "Map 7", " map 7"})
        CHECK(parse(bad).kind == PeerRequestKind::Unknown);

    TestReport report;
    toolstack::PeerRequest request;
    CHECK_FALSE(report.take_request(&request));
    feed(report, "conformance-request: map 3\nok 1 - x\nconformance-request: unm");
    feed(report, "ap\r\n");
    REQUIRE(report.take_request(&request));
    CHECK(request.kind == PeerRequestKind::Unmap);  // the older request was dropped
    CHECK_FALSE(report.take_request(&request));
    feed(report, "# conformance-request: map 3\nconformance-request: what\n");
    REQUIRE(report.take_request(&request));
    CHECK(request.kind == PeerRequestKind::Unknown);  // only at a line's start, and unknown words are answered
    feed(report, std::string("conformance-request: map 1") + std::string(500, '0') + "\n");
    REQUIRE(report.take_request(&request));
    CHECK(request.kind == PeerRequestKind::Unknown);  // cut at the line's capacity: no number
    CHECK(report.checks() == 0);
}
