// What Dom0's shell does with a line once it is typed: splits it into words, finds the command,
// and gives the command parsers for its arguments (options, numbers in a range, domains) that
// explain a refusal in one line. CPU lists are the toolstack's (parse_cpu_list): configs have them too.
#pragma once

#include <dom0/toolstack/message.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::shell {

class Shell;

// Why a parser refused its input.
using toolstack::Message;

// ---- Words ----------------------------------------------------------------------------------

// A line split into words, as a POSIX shell splits them without expansions: blanks (space, tab)
// separate words; '...' keeps everything inside; "..." keeps everything but \" and \\, which
// stand for " and \; outside quotes, \ makes the next character plain; quotes and escapes may
// join in one word (a"b c"'d' is one word); "" is an empty word; # at the start of a word begins
// a comment to the end of the line.
struct Words {
    static constexpr usize kMaxWords = 32;
    static constexpr usize kMaxLineLength = 511;

    int count = 0;
    const char* word[kMaxWords + 1] = {};  // argv: word[count] is null
    // The words' text, NUL-terminated one after another. Quotes and escapes only shrink a word,
    // and two words have a blank between them, so a line of n bytes needs at most n + 1.
    char text[kMaxLineLength + 1] = {};
};

// Splits `line` (`length` bytes; a NUL ends it early). False, with `error`, on an unterminated
// quote, a backslash at the end, more than Words::kMaxWords words or a line over kMaxLineLength.
bool split_words(const char* line, usize length, Words& words, Message& error);

// ---- Commands -------------------------------------------------------------------------------

// Runs a command: argv[0] is its name, argv[argc] is null. Returns 0 on success; on failure it has
// printed one line saying why, and returns 1.
using CommandHandler = int (*)(Shell& shell, int argc, const char* const* argv);

struct Command {
    const char* name;
    const char* usage;  // the whole synopsis: "pause <domain>"
    const char* help;   // one line for `help`
    CommandHandler handler;
};

// ---- Options --------------------------------------------------------------------------------

// Walks a command's arguments as getopt(3) does, with GNU's order (options may come after
// operands): `spec` lists the option letters, each followed by ':' if it takes a value
// ("pd:w:"). "-w 5", "-w5" and "-pw5" are all fine; "--" ends the options; "-" is an operand.
class OptionParser {
public:
    OptionParser(int argc, const char* const* argv, const char* spec);

    // The next option's letter; 0 once there are none left (then the operands are complete); '?'
    // for an unknown option, a missing value or too many operands, with `error` saying which.
    char next(Message& error);
    // The value of the option next() returned, if it takes one.
    const char* value() const { return value_; }

    int operand_count() const { return operand_count_; }
    const char* operand(int index) const;

private:
    const char* const* argv_;
    int argc_;
    const char* spec_;
    int index_ = 1;                  // argv_[index_] is next
    const char* cluster_ = nullptr;  // the rest of "-abc" after the letters taken
    bool options_ended_ = false;
    const char* value_ = nullptr;
    const char* operands_[Words::kMaxWords] = {};
    int operand_count_ = 0;
};

// ---- Values ---------------------------------------------------------------------------------

// Reads `text` as a number (decimal, or hex with 0x) from `min` to `max`. `what` names it and
// `option` (or null) says where it came from, for the error: "-w 70000: weight must be 1..65535".
bool parse_number(const char* option, const char* text, const char* what, u64 min, u64 max, u64* out,
                  Message& error);

// Finds domains by name for parse_domain; the toolstack provides it.
class DomainDirectory {
public:
    // The id of the domain named `name`; -LAMINA_ESRCH when no domain has that name, another
    // negative LAMINA_E* when the lookup itself failed.
    virtual i64 find_by_name(const char* name) = 0;

protected:
    ~DomainDirectory() = default;
};

// A domain as the user names it: decimal digits are an id (0..LAMINA_DOMID_MAX), anything else
// is a name (domain names are never all digits). An id is not looked up: the call that uses it
// says whether the domain exists.
bool parse_domain(const char* text, DomainDirectory& directory, u16* domid, Message& error);

}  // namespace lamina::shell
