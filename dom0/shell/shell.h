// Dom0's shell: the prompt, the line editor, and a table of commands it dispatches to. It knows
// nothing of hypercalls: the commands (dom0/kernel/commands.cpp) and the domain directory come
// from outside, so the host tests run it against fakes.
//
// Every failure is one line and the shell goes on: a line that does not split, an unknown
// command, and whatever a command refuses (it prints its own line and returns non-zero).
#pragma once

#include <dom0/shell/command_line.h>
#include <dom0/shell/line_editor.h>

namespace lamina::shell {

class Shell {
public:
    static constexpr const char* kPrompt = "lamina> ";

    // `commands` must outlive the shell; their names must be unique and not "help" or "repeat",
    // which the shell brings itself.
    Shell(Sink& terminal, const Command* commands, usize command_count, DomainDirectory& domains);

    // Prints the first prompt.
    void start();
    // One byte from the terminal: edits the line, runs it on Enter, then prompts again.
    void input(u8 byte);
    // Splits and runs one line, as Enter does (without echo or prompt); a word ";" separates
    // commands.
    int run(const char* line);
    // Writes whole lines that come from elsewhere, between inputs: above the line being typed,
    // which is then shown again.
    void interject(const char* text, usize length) { editor_.interject(text, length); }

    // For the commands.
    Sink& out() { return terminal_; }
    DomainDirectory& domains() { return domains_; }
    template <typename... Args>
    void print(const char* fmt, const Args&... args) {
        format(terminal_, fmt, args...);
    }
    // Prints one line (fmt gets the newline) and returns 1, a command's failure.
    template <typename... Args>
    int fail(const char* fmt, const Args&... args) {
        format(terminal_, fmt, args...);
        terminal_.write("\n", 1);
        return 1;
    }
    // "usage: <synopsis>" of the command `name`, as a failure.
    int usage_error(const char* name);

    // What the last command returned (0 for an empty line).
    int last_status() const { return last_status_; }

private:
    int run_line(const char* line, Words& words);
    int dispatch(int argc, const char* const* argv);
    static const Command* builtin(const char* name);
    static int help(Shell& shell, int argc, const char* const* argv);
    static int repeat(Shell& shell, int argc, const char* const* argv);
    const Command* find(const char* name) const;
    int unknown_command(const char* name);

    Sink& terminal_;
    const Command* commands_;
    usize command_count_;
    DomainDirectory& domains_;
    LineEditor editor_;
    Words words_;
    int last_status_ = 0;
};

}  // namespace lamina::shell
