#include <dom0/toolstack/test_report.h>

#include <lamina/string.h>

namespace lamina::toolstack {
namespace {

constexpr const char* kVerdictNames[] = {"SUCCESS", "SKIP", "ERROR", "FAILURE", "CRASH"};
constexpr char kHeader[] = "--- Lamina conformance: ";
constexpr char kResult[] = "Test result: ";

bool starts_with(const char* text, const char* prefix) {
    for (; *prefix; ++text, ++prefix) {
        if (*text != *prefix) return false;  // text's NUL included
    }
    return true;
}

// The number at `text`, and where it ends; false if there is none.
bool leading_number(const char* text, u64* value, const char** end) {
    usize digits = 0;
    while (text[digits] >= '0' && text[digits] <= '9') ++digits;
    *end = text + digits;
    return digits && str::parse_u64(text, digits, value);
}

// Iterative, backtracking only to the last star: linear-ish time for any pattern an operator types.
bool glob_match(const char* pattern, const char* text) {
    const char* star = nullptr;
    const char* resume = nullptr;
    while (*text) {
        if (*pattern == '?' || (*pattern && *pattern != '*' && *pattern == *text)) {
            ++pattern;
            ++text;
        } else if (*pattern == '*') {
            star = pattern++;
            resume = text;
        } else if (star) {
            pattern = star + 1;
            text = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*') ++pattern;
    return !*pattern;
}

}  // namespace

bool test_chosen(const char* image_name, const char* pattern) {
    if (!pattern) return true;
    const usize prefix = str::length(kTestPrefix);
    const char* name = starts_with(image_name, kTestPrefix) ? image_name + prefix : image_name;
    for (const char* c = pattern; *c; ++c) {
        if (*c == '*' || *c == '?') return glob_match(pattern, name);
    }
    for (const char* at = name; *at; ++at) {
        if (starts_with(at, pattern)) return true;
    }
    return !*pattern;
}

PeerRequest parse_peer_request(const char* text) {
    if (str::equal(text, "port")) return {PeerRequestKind::OfferPort, 0};
    if (str::equal(text, "unmap")) return {PeerRequestKind::Unmap, 0};
    u64 ref;
    const char* end;
    if (starts_with(text, "map ") && leading_number(text + 4, &ref, &end) && !*end && ref <= 0xffffffff)
        return {PeerRequestKind::Map, static_cast<u32>(ref)};
    return {};
}

const char* verdict_name(Verdict verdict) { return kVerdictNames[static_cast<u8>(verdict)]; }

void TestReport::feed(const char* bytes, usize length) {
    for (usize i = 0; i < length; ++i) {
        if (bytes[i] == '\n') {
            finish_line();
        } else if (bytes[i] != '\r' && length_ < kLineCapacity) {
            line_[length_++] = bytes[i];
        }
    }
}

bool TestReport::result(Verdict* verdict) const {
    if (result_lines_ == 0) return false;
    *verdict = verdict_;
    return true;
}

bool TestReport::take_request(PeerRequest* request) {
    if (!request_waiting_) return false;
    request_waiting_ = false;
    *request = request_;
    return true;
}

void TestReport::finish_line() {
    line_[length_] = '\0';
    length_ = 0;
    if (starts_with(line_, kPeerRequestPrefix)) {
        request_ = parse_peer_request(line_ + str::length(kPeerRequestPrefix));
        request_waiting_ = true;
        return;
    }
    if (starts_with(line_, kResult)) {
        const char* word = line_ + str::length(kResult);
        ++result_lines_;
        verdict_ = Verdict::Error;  // a result line that names no result is the kernel's error
        for (u8 v = 0; v < static_cast<u8>(Verdict::Crash); ++v) {
            if (str::equal(word, kVerdictNames[v])) verdict_ = static_cast<Verdict>(v);
        }
        return;
    }
    if (starts_with(line_, kHeader)) {
        // "--- Lamina conformance: <name> (<category>), ..."
        const char* open = line_ + str::length(kHeader);
        while (*open && *open != '(') ++open;
        usize n = 0;
        if (*open) {
            for (++open; open[n] && open[n] != ')' && n + 1 < kCategoryCapacity; ++n) category_[n] = open[n];
        }
        category_[n] = '\0';
        return;
    }
    // "<checks> checks, <failed> failed"
    u64 checks, failed;
    const char* at;
    if (leading_number(line_, &checks, &at) && starts_with(at, " checks, ") &&
        leading_number(at + 9, &failed, &at) && str::equal(at, " failed")) {
        checks_ = checks;
        failed_ = failed;
    }
}

}  // namespace lamina::toolstack
