#include <dom0/shell/shell.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::shell {
namespace {

constexpr Command kHelp = {"help", "help [command]", "list the commands, or show how to use one", nullptr};
constexpr Command kRepeat = {"repeat", "repeat <count> <command line>",
                             "run a command line (quoted; ; between commands) count times, stopping at a failure",
                             nullptr};
constexpr u64 kMaxRepeat = 100000;

}  // namespace

Shell::Shell(Sink& terminal, const Command* commands, usize command_count, DomainDirectory& domains)
    : terminal_(terminal), commands_(commands), command_count_(command_count), domains_(domains),
      editor_(terminal) {
    for (usize i = 0; i < command_count; ++i) {
        LAMINA_ASSERT(commands[i].name && commands[i].usage && commands[i].help && commands[i].handler);
        LAMINA_ASSERT(!builtin(commands[i].name));
        for (usize j = 0; j < i; ++j) LAMINA_ASSERT(!str::equal(commands[i].name, commands[j].name));
    }
}

void Shell::start() { editor_.begin(kPrompt); }

void Shell::input(u8 byte) {
    switch (editor_.feed(byte)) {
        case LineEditor::Event::None: return;
        case LineEditor::Event::Line: run(editor_.line()); break;
        case LineEditor::Event::Cancelled: break;
    }
    editor_.begin(kPrompt);
}

int Shell::run(const char* line) {
    last_status_ = run_line(line, words_);
    return last_status_;
}

// A word that is exactly ";" separates commands; the status is the last command's.
int Shell::run_line(const char* line, Words& words) {
    Message error;
    if (!split_words(line, str::length(line), words, error)) return fail("{}", error.text());
    int status = 0;
    int first = 0;
    for (int i = 0; i <= words.count; ++i) {
        if (i < words.count && !str::equal(words.word[i], ";")) continue;
        if (i > first) {
            words.word[i] = nullptr;  // each command's argv ends where it does
            status = dispatch(i - first, words.word + first);
        }
        first = i + 1;
    }
    return status;
}

int Shell::dispatch(int argc, const char* const* argv) {
    const char* name = argv[0];
    if (str::equal(name, kHelp.name)) return help(*this, argc, argv);
    if (str::equal(name, kRepeat.name)) return repeat(*this, argc, argv);
    if (const Command* command = find(name)) return command->handler(*this, argc, argv);
    return unknown_command(name);
}

int Shell::usage_error(const char* name) {
    const Command* command = builtin(name) ? builtin(name) : find(name);
    LAMINA_ASSERT(command);
    return fail("usage: {}", command->usage);
}

int Shell::unknown_command(const char* name) { return fail("unknown command \"{}\"; type help", name); }

const Command* Shell::builtin(const char* name) {
    if (str::equal(name, kHelp.name)) return &kHelp;
    if (str::equal(name, kRepeat.name)) return &kRepeat;
    return nullptr;
}

// For scripts and soak tests: `repeat 200 "create -p ticker name=s ; destroy s"`. The body has
// its own words, so the commands it runs may use the shell's.
int Shell::repeat(Shell& shell, int argc, const char* const* argv) {
    u64 count = 0;
    if (argc != 3) return shell.usage_error(kRepeat.name);
    if (!str::parse_u64(argv[1], str::length(argv[1]), &count) || count == 0 || count > kMaxRepeat)
        return shell.fail("repeat: {}: the count must be 1..{}", argv[1], kMaxRepeat);
    char body[Words::kMaxLineLength + 1];
    str::copy_bounded(body, argv[2], sizeof body);
    Words words;
    for (u64 run = 1; run <= count; ++run) {
        if (shell.run_line(body, words) != 0) return shell.fail("repeat: run {} of {} failed; stopped", run, count);
    }
    shell.print("repeat: {} runs\n", count);
    return 0;
}

const Command* Shell::find(const char* name) const {
    for (usize i = 0; i < command_count_; ++i)
        if (str::equal(commands_[i].name, name)) return &commands_[i];
    return nullptr;
}

int Shell::help(Shell& shell, int argc, const char* const* argv) {
    if (argc > 2) return shell.usage_error(kHelp.name);
    if (argc == 2) {
        const Command* command = builtin(argv[1]) ? builtin(argv[1]) : shell.find(argv[1]);
        if (!command) return shell.unknown_command(argv[1]);
        shell.print("usage: {}\n  {}\n", command->usage, command->help);
        return 0;
    }
    usize width = str::length(kRepeat.name);
    for (usize i = 0; i < shell.command_count_; ++i) width = max(width, str::length(shell.commands_[i].name));
    shell.print("Commands (help <command> shows how to use one):\n");
    auto line = [&](const Command& command) {
        shell.print("  {}", command.name);
        for (usize pad = str::length(command.name); pad < width + 2; ++pad) shell.print(" ");
        shell.print("{}\n", command.help);
    };
    line(kHelp);
    for (usize i = 0; i < shell.command_count_; ++i) line(shell.commands_[i]);
    line(kRepeat);
    return 0;
}

}  // namespace lamina::shell
