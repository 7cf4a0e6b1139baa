#include <dom0/shell/shell.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::shell {
namespace {

constexpr Command kHelp = {"help", "help [command]", "list the commands, or show how to use one", nullptr};

}  // namespace

Shell::Shell(Sink& terminal, const Command* commands, usize command_count, DomainDirectory& domains)
    : terminal_(terminal), commands_(commands), command_count_(command_count), domains_(domains),
      editor_(terminal) {
    for (usize i = 0; i < command_count; ++i) {
        LAMINA_ASSERT(commands[i].name && commands[i].usage && commands[i].help && commands[i].handler);
        LAMINA_ASSERT(!str::equal(commands[i].name, kHelp.name));
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
    Message error;
    if (!split_words(line, str::length(line), words_, error)) {
        last_status_ = fail("{}", error.text());
        return last_status_;
    }
    if (words_.count == 0) {
        last_status_ = 0;
        return last_status_;
    }
    const char* name = words_.word[0];
    if (str::equal(name, kHelp.name)) {
        last_status_ = help(*this, words_.count, words_.word);
    } else if (const Command* command = find(name)) {
        last_status_ = command->handler(*this, words_.count, words_.word);
    } else {
        last_status_ = unknown_command(name);
    }
    return last_status_;
}

int Shell::usage_error(const char* name) {
    const Command* command = str::equal(name, kHelp.name) ? &kHelp : find(name);
    LAMINA_ASSERT(command);
    return fail("usage: {}", command->usage);
}

int Shell::unknown_command(const char* name) { return fail("unknown command \"{}\"; type help", name); }

const Command* Shell::find(const char* name) const {
    for (usize i = 0; i < command_count_; ++i)
        if (str::equal(commands_[i].name, name)) return &commands_[i];
    return nullptr;
}

int Shell::help(Shell& shell, int argc, const char* const* argv) {
    if (argc > 2) return shell.usage_error(kHelp.name);
    if (argc == 2) {
        const Command* command = str::equal(argv[1], kHelp.name) ? &kHelp : shell.find(argv[1]);
        if (!command) return shell.unknown_command(argv[1]);
        shell.print("usage: {}\n  {}\n", command->usage, command->help);
        return 0;
    }
    usize width = str::length(kHelp.name);
    for (usize i = 0; i < shell.command_count_; ++i) width = max(width, str::length(shell.commands_[i].name));
    shell.print("Commands (help <command> shows how to use one):\n");
    auto line = [&](const Command& command) {
        shell.print("  {}", command.name);
        for (usize pad = str::length(command.name); pad < width + 2; ++pad) shell.print(" ");
        shell.print("{}\n", command.help);
    };
    line(kHelp);
    for (usize i = 0; i < shell.command_count_; ++i) line(shell.commands_[i]);
    return 0;
}

}  // namespace lamina::shell
