#include <catch2/catch.hpp>

#include "test_support.h"

#include <dom0/shell/command_line.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::shell;

namespace {

struct Split {
    bool ok;
    std::vector<std::string> words;
    std::string error;
};

Split split(const std::string& line) {
    auto words = std::make_unique<Words>();
    Message error;
    Split result{split_words(line.data(), line.size(), *words, error), {}, error.text()};
    for (int i = 0; i < words->count; ++i) result.words.emplace_back(words->word[i]);
    CHECK(words->word[words->count] == nullptr);
    return result;
}

std::vector<std::string> words_of(const std::string& line) {
    Split s = split(line);
    CHECK(s.ok);
    return s.words;
}

std::string split_error(const std::string& line) {
    Split s = split(line);
    CHECK_FALSE(s.ok);
    CHECK(s.words.empty());
    return s.error;
}

using W = std::vector<std::string>;

}  // namespace

TEST_CASE("split_words: blanks separate words") {
    CHECK(words_of("") == W{});
    CHECK(words_of("   \t  ") == W{});
    CHECK(words_of("list") == W{"list"});
    CHECK(words_of("  sched-credit\t-d  web -w 512  ") == W{"sched-credit", "-d", "web", "-w", "512"});
}

TEST_CASE("split_words: quotes and backslashes") {
    CHECK(words_of("create 'my file.cfg' name=\"web 1\"") == W{"create", "my file.cfg", "name=web 1"});
    CHECK(words_of("a\"b c\"'d e'f") == W{"ab cd ef"});
    CHECK(words_of("'' \"\" x") == W{"", "", "x"});
    CHECK(words_of("'a \\ \" b'") == W{"a \\ \" b"});          // nothing is special in '...'
    CHECK(words_of("\"a \\\" \\\\ \\n ' b\"") == W{"a \" \\ \\n ' b"});  // only \" and \\ in "..."
    CHECK(words_of("a\\ b \\'c\\\" \\\\") == W{"a b", "'c\"", "\\"});
    CHECK(words_of("cmdline=\"console=hvc0 root=/dev/vda\"") == W{"cmdline=console=hvc0 root=/dev/vda"});
    CHECK(words_of("x\\#y") == W{"x#y"});
}

TEST_CASE("split_words: # at the start of a word begins a comment") {
    CHECK(words_of("# a whole comment") == W{});
    CHECK(words_of("list # the domains") == W{"list"});
    CHECK(words_of("name=a#b") == W{"name=a#b"});
    CHECK(words_of("'#x' \"#y\" \\#z") == W{"#x", "#y", "#z"});
}

TEST_CASE("split_words: unterminated quotes, a final backslash") {
    CHECK(split_error("create 'web.cfg") == "unterminated ' quote");
    CHECK(split_error("create \"web.cfg") == "unterminated \" quote");
    CHECK(split_error("echo \"a\\\"") == "unterminated \" quote");
    CHECK(split_error("echo '") == "unterminated ' quote");
    CHECK(split_error("list \\") == "the line ends in a backslash");
    CHECK(split_error("a b c \"'\" '\"") == "unterminated ' quote");
}

TEST_CASE("split_words: at most 32 words, 511 characters; a NUL ends the line") {
    std::string line;
    for (int i = 0; i < 32; ++i) line += "w" + std::to_string(i) + " ";
    CHECK(words_of(line).size() == 32);
    CHECK(split_error(line + "one-more") == "too many words (at most 32)");
    CHECK(words_of(line + "# but a comment is fine").size() == 32);

    // The longest line, as many one-letter words as fit: the text storage holds them all.
    std::string dense;
    for (int i = 0; i < 31; ++i) dense += "a ";
    dense += std::string(Words::kMaxLineLength - dense.size(), 'b');
    REQUIRE(dense.size() == Words::kMaxLineLength);
    CHECK(words_of(dense).back().size() == Words::kMaxLineLength - 62);
    CHECK(split_error(dense + "b") == "the line is longer than 511 characters");

    CHECK(words_of(std::string("info\0destroy 1", 14)) == W{"info"});
}

TEST_CASE("split_words: a failed split leaves no words") {
    auto words = std::make_unique<Words>();
    Message error;
    REQUIRE(split_words("a b", 3, *words, error));
    CHECK(words->count == 2);
    CHECK_FALSE(split_words("a 'b", 4, *words, error));
    CHECK(words->count == 0);
    CHECK(words->word[0] == nullptr);
}

// ---- Options --------------------------------------------------------------------------------

namespace {

struct Options {
    std::vector<std::string> seen;  // "w=512", "p"
    std::vector<std::string> operands;
    std::string error;
};

Options walk(const W& args, const char* spec) {
    std::vector<const char*> argv{"cmd"};
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    OptionParser parser(static_cast<int>(argv.size() - 1), argv.data(), spec);
    Options out;
    Message error;
    for (;;) {
        const char letter = parser.next(error);
        if (letter == 0) break;
        if (letter == '?') {
            out.error = error.text();
            return out;
        }
        out.seen.push_back(parser.value() ? std::string(1, letter) + "=" + parser.value() : std::string(1, letter));
    }
    for (int i = 0; i < parser.operand_count(); ++i) out.operands.emplace_back(parser.operand(i));
    CHECK(parser.next(error) == 0);  // and it stays done
    return out;
}

}  // namespace

TEST_CASE("options: values separate or attached, flags clustered, operands anywhere") {
    Options o = walk({"-d", "web", "-w512", "-pc", "50", "x", "-t", "-5", "y"}, "pd:w:c:t:");
    CHECK(o.error.empty());
    CHECK(o.seen == W{"d=web", "w=512", "p", "c=50", "t=-5"});
    CHECK(o.operands == W{"x", "y"});

    o = walk({"web.cfg", "-p", "memory=64"}, "p");
    CHECK(o.seen == W{"p"});
    CHECK(o.operands == W{"web.cfg", "memory=64"});

    o = walk({"-p", "--", "-w", "-"}, "pw:");
    CHECK(o.seen == W{"p"});
    CHECK(o.operands == W{"-w", "-"});

    o = walk({}, "p");
    CHECK(o.seen.empty());
    CHECK(o.operands.empty());
}

TEST_CASE("options: unknown options and missing values are errors") {
    CHECK(walk({"-x"}, "pw:").error == "unknown option -x");
    CHECK(walk({"-px"}, "pw:").error == "unknown option -x");
    CHECK(walk({"-w"}, "pw:").error == "option -w needs a value");
    CHECK(walk({"a", "-pw"}, "pw:").error == "option -w needs a value");
    CHECK(walk({"--weight=5"}, "pw:").error == "unknown option --weight=5");
    CHECK(walk({"-:"}, "w:").error == "unknown option -:");  // ':' is spec syntax, not a letter
}

TEST_CASE("options: too many operands") {
    W many(Words::kMaxWords + 1, "x");
    CHECK(walk(many, "").error == "too many arguments (at most 32)");
    W fits(Words::kMaxWords, "x");
    CHECK(walk(fits, "").operands.size() == Words::kMaxWords);
}

// ---- Values ---------------------------------------------------------------------------------

TEST_CASE("parse_number: in range, out of range, not a number") {
    Message error;
    u64 v = 0;
    CHECK(parse_number("-w", "512", "weight", 1, 65535, &v, error));
    CHECK(v == 512);
    CHECK(parse_number("-w", "0x10", "weight", 1, 65535, &v, error));
    CHECK(v == 16);
    CHECK(parse_number(nullptr, "65535", "weight", 1, 65535, &v, error));
    CHECK(v == 65535);
    CHECK(parse_number(nullptr, "0", "cap", 0, 100, &v, error));
    CHECK(v == 0);

    v = 7;
    CHECK_FALSE(parse_number("-w", "70000", "weight", 1, 65535, &v, error));
    CHECK(std::string(error.text()) == "-w 70000: weight must be 1..65535");
    CHECK(v == 7);
    CHECK_FALSE(parse_number("-w", "0", "weight", 1, 65535, &v, error));
    CHECK(std::string(error.text()) == "-w 0: weight must be 1..65535");
    CHECK_FALSE(parse_number("-t", "abc", "the time slice", 1, 1000, &v, error));
    CHECK(std::string(error.text()) == "-t abc: the time slice must be 1..1000");
    CHECK_FALSE(parse_number(nullptr, "-1", "vcpu", 0, 3, &v, error));
    CHECK(std::string(error.text()) == "-1: vcpu must be 0..3");
    CHECK_FALSE(parse_number(nullptr, "", "vcpu", 0, 3, &v, error));
    CHECK_FALSE(parse_number(nullptr, "12k", "vcpu", 0, 1u << 20, &v, error));  // no size suffixes
    CHECK_FALSE(parse_number(nullptr, "99999999999999999999999", "x", 0, ~u64{0}, &v, error));  // overflow
    CHECK(v == 7);
}

namespace {

struct FakeDirectory final : DomainDirectory {
    std::map<std::string, u16> domains;
    i64 failure = 0;  // a lookup error to return instead
    int lookups = 0;

    i64 find_by_name(const char* name) override {
        ++lookups;
        if (failure) return failure;
        auto it = domains.find(name);
        return it == domains.end() ? -LAMINA_ESRCH : it->second;
    }
};

}  // namespace

TEST_CASE("parse_domain: ids, names, and what names no domain") {
    FakeDirectory directory;
    directory.domains = {{"Domain-0", 0}, {"web", 3}, {"1a", 4}};
    Message error;
    u16 id = 99;
    CHECK(parse_domain("0", directory, &id, error));
    CHECK(id == 0);
    CHECK(parse_domain("32751", directory, &id, error));
    CHECK(id == LAMINA_DOMID_MAX);
    CHECK(parse_domain("007", directory, &id, error));
    CHECK(id == 7);
    CHECK(directory.lookups == 0);  // an id is not looked up

    CHECK(parse_domain("web", directory, &id, error));
    CHECK(id == 3);
    CHECK(parse_domain("1a", directory, &id, error));
    CHECK(id == 4);
    CHECK(parse_domain("Domain-0", directory, &id, error));
    CHECK(id == 0);

    id = 99;
    CHECK_FALSE(parse_domain("32752", directory, &id, error));
    CHECK(std::string(error.text()) == "32752: domain id must be 0..32751");
    CHECK_FALSE(parse_domain("99999999999999999999999", directory, &id, error));
    CHECK_FALSE(parse_domain("db", directory, &id, error));
    CHECK(std::string(error.text()) == "no domain named \"db\"");
    CHECK_FALSE(parse_domain("0x3", directory, &id, error));  // not decimal: a name
    CHECK(std::string(error.text()) == "no domain named \"0x3\"");
    CHECK_FALSE(parse_domain("", directory, &id, error));
    CHECK(id == 99);

    // A name longer than the ABI's field cannot be a domain's; the directory is not asked.
    const int before = directory.lookups;
    const std::string long_name(LAMINA_DOMAIN_NAME_SIZE, 'n');
    CHECK_FALSE(parse_domain(long_name.c_str(), directory, &id, error));
    CHECK(std::string(error.text()) == "no domain named \"" + long_name + "\"");
    CHECK(directory.lookups == before);
    directory.domains[long_name.substr(1)] = 9;
    CHECK(parse_domain(long_name.c_str() + 1, directory, &id, error));
    CHECK(id == 9);
}

TEST_CASE("parse_domain: a failed lookup says why") {
    FakeDirectory directory;
    directory.failure = -LAMINA_EPERM;
    Message error;
    u16 id = 0;
    CHECK_FALSE(parse_domain("web", directory, &id, error));
    CHECK(std::string(error.text()) == "looking up domain \"web\": EPERM");
    directory.failure = -1000;
    CHECK_FALSE(parse_domain("web", directory, &id, error));
    CHECK(std::string(error.text()) == "looking up domain \"web\": E?");
}
