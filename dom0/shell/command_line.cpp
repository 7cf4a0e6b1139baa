#include <dom0/shell/command_line.h>

#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>
#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::shell {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool is_digits(const char* text) {
    if (!*text) return false;
    for (; *text; ++text)
        if (*text < '0' || *text > '9') return false;
    return true;
}

// Appends to the words' text; split_words' size argument (Words) says it always fits.
struct WordWriter {
    Words& words;
    usize used = 0;

    void put(char c) {
        LAMINA_ASSERT(used < sizeof(words.text));
        words.text[used++] = c;
    }
    const char* position() const { return words.text + used; }
};

// split_words without the checks of the whole line.
bool split(const char* line, usize n, Words& words, Message& error) {
    WordWriter out{words};
    usize i = 0;
    for (;;) {
        while (i < n && is_blank(line[i])) ++i;
        if (i == n || line[i] == '#') break;
        if (words.count == static_cast<int>(Words::kMaxWords)) {
            error.set("too many words (at most {})", Words::kMaxWords);
            return false;
        }
        words.word[words.count++] = out.position();
        while (i < n && !is_blank(line[i])) {
            const char c = line[i++];
            if (c == '\'') {
                while (i < n && line[i] != '\'') out.put(line[i++]);
                if (i == n) {
                    error.set("unterminated ' quote");
                    return false;
                }
                ++i;
            } else if (c == '"') {
                while (i < n && line[i] != '"') {
                    // POSIX keeps \ inside "..." but before " and \ (and $ ` newline, which have
                    // no meaning here).
                    if (line[i] == '\\' && i + 1 < n && (line[i + 1] == '"' || line[i + 1] == '\\')) ++i;
                    out.put(line[i++]);
                }
                if (i == n) {
                    error.set("unterminated \" quote");
                    return false;
                }
                ++i;
            } else if (c == '\\') {
                if (i == n) {
                    error.set("the line ends in a backslash");
                    return false;
                }
                out.put(line[i++]);
            } else {
                out.put(c);
            }
        }
        out.put('\0');
    }
    words.word[words.count] = nullptr;
    return true;
}

}  // namespace

bool split_words(const char* line, usize length, Words& words, Message& error) {
    words.count = 0;
    words.word[0] = nullptr;
    const usize n = str::length_bounded(line, length);
    if (n > Words::kMaxLineLength) {
        error.set("the line is longer than {} characters", Words::kMaxLineLength);
        return false;
    }
    if (split(line, n, words, error)) return true;
    words.count = 0;
    words.word[0] = nullptr;
    return false;
}

// ---- Options --------------------------------------------------------------------------------

OptionParser::OptionParser(int argc, const char* const* argv, const char* spec)
    : argv_(argv), argc_(argc), spec_(spec) {
    LAMINA_ASSERT(argc >= 1);
}

char OptionParser::next(Message& error) {
    value_ = nullptr;
    for (;;) {
        if (cluster_ && *cluster_) {
            const char letter = *cluster_++;
            const char* at = spec_;
            while (*at && (*at != letter || letter == ':')) ++at;
            if (!*at) {
                error.set("unknown option -{}", letter);
                return '?';
            }
            if (at[1] == ':') {
                if (*cluster_) value_ = cluster_;
                else if (index_ < argc_) value_ = argv_[index_++];
                else {
                    error.set("option -{} needs a value", letter);
                    return '?';
                }
                cluster_ = nullptr;
            }
            return letter;
        }
        cluster_ = nullptr;
        if (index_ >= argc_) return 0;
        const char* argument = argv_[index_++];
        if (!options_ended_ && argument[0] == '-' && argument[1] != '\0') {
            if (argument[1] == '-') {
                if (argument[2] == '\0') {
                    options_ended_ = true;
                    continue;
                }
                error.set("unknown option {}", argument);
                return '?';
            }
            cluster_ = argument + 1;
            continue;
        }
        if (operand_count_ == static_cast<int>(Words::kMaxWords)) {
            error.set("too many arguments (at most {})", Words::kMaxWords);
            return '?';
        }
        operands_[operand_count_++] = argument;
    }
}

const char* OptionParser::operand(int index) const {
    LAMINA_ASSERT(index >= 0 && index < operand_count_);
    return operands_[index];
}

// ---- Values ---------------------------------------------------------------------------------

bool parse_number(const char* option, const char* text, const char* what, u64 min, u64 max, u64* out,
                  Message& error) {
    u64 value = 0;
    if (str::parse_u64(text, str::length(text), &value) && value >= min && value <= max) {
        *out = value;
        return true;
    }
    if (option) error.set("{} {}: {} must be {}..{}", option, text, what, min, max);
    else error.set("{}: {} must be {}..{}", text, what, min, max);
    return false;
}

bool parse_domain(const char* text, DomainDirectory& directory, u16* domid, Message& error) {
    if (is_digits(text)) {
        u64 id = 0;
        if (!parse_number(nullptr, text, "domain id", 0, LAMINA_DOMID_MAX, &id, error)) return false;
        *domid = static_cast<u16>(id);
        return true;
    }
    // A name that does not fit the ABI's field names no domain; the directory need not see it.
    if (str::length_bounded(text, LAMINA_DOMAIN_NAME_SIZE) == LAMINA_DOMAIN_NAME_SIZE) {
        error.set("no domain named \"{}\"", text);
        return false;
    }
    const i64 found = directory.find_by_name(text);
    if (found == -LAMINA_ESRCH) {
        error.set("no domain named \"{}\"", text);
        return false;
    }
    if (found < 0) {
        error.set("looking up domain \"{}\": {}", text, lamina_errno_name(found));
        return false;
    }
    LAMINA_ASSERT(found <= LAMINA_DOMID_MAX);
    *domid = static_cast<u16>(found);
    return true;
}

}  // namespace lamina::shell
