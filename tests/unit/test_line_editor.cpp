#include <catch2/catch.hpp>

#include <dom0/shell/line_editor.h>

#include <memory>
#include <string>
#include <vector>

using namespace lamina;
using lamina::shell::LineEditor;

namespace {

constexpr const char* kPrompt = "> ";
const std::string kUp = "\x1b[A", kDown = "\x1b[B", kRight = "\x1b[C", kLeft = "\x1b[D";
const std::string kHome = "\x1b[H", kEnd = "\x1b[F", kDelete = "\x1b[3~";

struct Terminal final : Sink {
    std::string out;
    void write(const char* text, usize length) override { out.append(text, length); }
};

// What a VT100 shows of the output: the rows and the cursor. The editor must use nothing but
// printable characters, CR, LF, BS, BEL and Ctrl-L's clear screen; anything else fails the test.
struct Screen {
    std::vector<std::string> rows{""};
    size_t column = 0;

    void apply(const std::string& output) {
        const std::string clear = "\x1b[H\x1b[2J";
        for (size_t i = 0; i < output.size(); ++i) {
            const char c = output[i];
            if (output.compare(i, clear.size(), clear) == 0) {
                rows = {""};
                column = 0;
                i += clear.size() - 1;
            } else if (c == '\r') {
                column = 0;
            } else if (c == '\n') {
                rows.emplace_back();
                column = 0;
            } else if (c == '\b') {
                if (column > 0) --column;
            } else if (c == '\a') {
            } else {
                REQUIRE(c >= 0x20);
                REQUIRE(c < 0x7f);
                std::string& row = rows.back();
                if (row.size() <= column) row.resize(column + 1, ' ');
                row[column++] = c;
            }
        }
    }
};

std::string trimmed(std::string text) {
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
}

struct Harness {
    Terminal terminal;
    Screen screen;
    size_t shown = 0;  // terminal.out bytes the screen has applied
    std::unique_ptr<LineEditor> editor = std::make_unique<LineEditor>(terminal);
    std::vector<std::string> lines;
    int cancels = 0;

    Harness() { editor->begin(kPrompt); }

    // Feeds `bytes`; returns what the editor wrote meanwhile.
    std::string type(const std::string& bytes) {
        const size_t before = terminal.out.size();
        for (unsigned char byte : bytes) {
            switch (editor->feed(byte)) {
                case LineEditor::Event::None: break;
                case LineEditor::Event::Line:
                    lines.emplace_back(editor->line(), editor->line_length());
                    editor->begin(kPrompt);
                    break;
                case LineEditor::Event::Cancelled:
                    ++cancels;
                    editor->begin(kPrompt);
                    break;
            }
        }
        return terminal.out.substr(before);
    }

    std::string text() const { return std::string(editor->text(), editor->length()); }

    // The screen's last row is the prompt and the line, the cursor where the editor says.
    void check_screen() {
        screen.apply(terminal.out.substr(shown));
        shown = terminal.out.size();
        CHECK(trimmed(screen.rows.back()) == trimmed(kPrompt + text()));
        CHECK(screen.column == std::string(kPrompt).size() + editor->cursor());
    }
};

}  // namespace

TEST_CASE("line editor: plain typing echoes exactly the bytes typed, Enter echoes CR LF") {
    Harness h;
    CHECK(h.terminal.out == "> ");
    CHECK(h.type("list -l") == "list -l");
    CHECK(h.editor->cursor() == 7);
    CHECK(h.type("\r") == "\r\n> ");
    REQUIRE(h.lines.size() == 1);
    CHECK(h.lines[0] == "list -l");
    CHECK(std::string(h.editor->line()) == "list -l");
    CHECK(h.editor->length() == 0);
}

TEST_CASE("line editor: CR, LF and CR LF each end one line; LF CR and CR CR end two") {
    Harness h;
    h.type("a\r\nb\nc\rd\n\re\r\r");
    CHECK(h.lines == std::vector<std::string>{"a", "b", "c", "d", "", "e", ""});
    // An LF only joins the CR right before it.
    Harness g;
    g.type("x\ry\n");
    CHECK(g.lines == std::vector<std::string>{"x", "y"});
    CHECK(g.terminal.out == "> x\r\n> y\r\n> ");
}

TEST_CASE("line editor: Backspace (DEL and BS) deletes before the cursor") {
    Harness h;
    h.type("helpp");
    CHECK(h.type("\x7f") == "\b \b");
    CHECK(h.text() == "help");
    CHECK(h.type("\x08") == "\b \b");
    CHECK(h.text() == "hel");
    h.check_screen();
    h.type("\x7f\x7f\x7f");
    CHECK(h.text().empty());
    CHECK(h.type("\x7f\x08").empty());  // at the start: nothing, not even a bell
    h.check_screen();
    // In the middle: the rest of the line moves left.
    h.type("abcd" + kLeft + kLeft + "\x7f");
    CHECK(h.text() == "acd");
    CHECK(h.editor->cursor() == 1);
    h.check_screen();
}

TEST_CASE("line editor: cursor keys move and typing inserts at the cursor") {
    Harness h;
    h.type("destroy web");
    h.type(kLeft + kLeft + kLeft);
    CHECK(h.editor->cursor() == 8);
    h.type("-f ");
    CHECK(h.text() == "destroy -f web");
    CHECK(h.editor->cursor() == 11);
    h.check_screen();
    h.type(kRight + kRight);
    CHECK(h.editor->cursor() == 13);
    h.type(kRight + kRight + kRight);  // stops at the end
    CHECK(h.editor->cursor() == 14);
    h.check_screen();
    h.type("\x02\x02\x06");  // Ctrl-B Ctrl-B Ctrl-F
    CHECK(h.editor->cursor() == 13);
    h.type(kHome);
    CHECK(h.editor->cursor() == 0);
    CHECK(h.type(kLeft).empty());  // at the start: nothing
    h.type("x");
    CHECK(h.text() == "xdestroy -f web");
    h.check_screen();
    h.type("\r");
    CHECK(h.lines.back() == "xdestroy -f web");
}

TEST_CASE("line editor: every Home and End key, Ctrl-A once included") {
    const std::vector<std::string> homes = {"\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~", "\x01"};
    const std::vector<std::string> ends = {"\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~", "\x05"};
    for (const auto& home : homes) {
        for (const auto& end : ends) {
            Harness h;
            h.type("info");
            h.type(home);
            CHECK(h.editor->cursor() == 0);
            h.check_screen();
            h.type(end);
            CHECK(h.editor->cursor() == 4);
            h.check_screen();
        }
    }
    // Application cursor mode (ESC O) arrows too.
    Harness h;
    h.type("ab\x1bOD");
    CHECK(h.editor->cursor() == 1);
    h.type("\x1bOC");
    CHECK(h.editor->cursor() == 2);
}

TEST_CASE("line editor: Delete and Ctrl-D delete at the cursor") {
    Harness h;
    h.type("pausee" + kLeft);
    h.type(kDelete);
    CHECK(h.text() == "pause");
    CHECK(h.editor->cursor() == 5);
    CHECK(h.type(kDelete).empty());  // at the end: nothing
    h.type(kHome + "\x04");
    CHECK(h.text() == "ause");
    CHECK(h.editor->cursor() == 0);
    h.check_screen();
    Harness empty;
    CHECK(empty.type("\x04").empty());  // Ctrl-D on an empty line is not end-of-file here
}

TEST_CASE("line editor: Ctrl-U, Ctrl-K and Ctrl-W delete the line, its end, a word") {
    Harness h;
    h.type("create web.cfg memory=64");
    h.type("\x17");  // Ctrl-W
    CHECK(h.text() == "create web.cfg ");
    h.check_screen();
    h.type("\x17");
    CHECK(h.text() == "create ");
    h.type("a.cfg  ");
    h.type("\x17");  // blanks before the cursor go with the word
    CHECK(h.text() == "create ");
    h.type("x y" + kLeft + kLeft + "\x0b");  // Ctrl-K
    CHECK(h.text() == "create x");
    CHECK(h.editor->cursor() == 8);
    h.check_screen();
    h.type(kLeft + kLeft + kLeft + "\x15");  // Ctrl-U takes the whole line, wherever the cursor is
    CHECK(h.text().empty());
    CHECK(h.editor->cursor() == 0);
    h.check_screen();
    CHECK(h.type("\x15\x0b\x17").empty());  // on an empty line: nothing
}

TEST_CASE("line editor: Ctrl-C abandons the line, and the next one is fresh") {
    Harness h;
    CHECK(h.type("destroy web\x03") == "destroy web^C\r\n> ");
    CHECK(h.cancels == 1);
    CHECK(h.lines.empty());
    h.type("list\r");
    CHECK(h.lines == std::vector<std::string>{"list"});
    h.type(kUp);  // a cancelled line is not history
    CHECK(h.text() == "list");
    h.type(kUp);
    CHECK(h.text() == "list");
}

TEST_CASE("line editor: Ctrl-L clears the screen and redraws prompt, line and cursor") {
    Harness h;
    h.type("info\r");
    h.type("dmesg" + kLeft + kLeft);
    CHECK(h.type("\x0c") == "\x1b[H\x1b[2J> dmesg\b\b");
    h.check_screen();
    CHECK(h.screen.rows.size() == 1);
    CHECK(h.editor->cursor() == 3);
}

TEST_CASE("line editor: an interjection goes above the line, which is shown again as it was") {
    Harness h;
    h.type("pause 3" + kLeft);
    const size_t before = h.terminal.out.size();
    h.editor->interject("domain 3 (web) crashed; destroyed\n", 34);
    CHECK(h.terminal.out.substr(before) == "\r\ndomain 3 (web) crashed; destroyed\n> pause 3\b");
    h.check_screen();
    CHECK(h.screen.rows[h.screen.rows.size() - 2] == "domain 3 (web) crashed; destroyed");
    h.type("4\r");
    CHECK(h.lines.back() == "pause 43");
}

TEST_CASE("line editor: Up and Down walk the history and come back to the draft") {
    Harness h;
    h.type("one\rtwo\rthree\r");
    h.type("dra");
    h.type(kUp);
    CHECK(h.text() == "three");
    h.check_screen();
    h.type(kUp);
    CHECK(h.text() == "two");
    h.check_screen();
    h.type(kUp);
    CHECK(h.text() == "one");
    CHECK(h.type(kUp).empty());  // the oldest: nothing
    CHECK(h.text() == "one");
    h.type(kDown + kDown);
    CHECK(h.text() == "three");
    h.check_screen();
    h.type(kDown);
    CHECK(h.text() == "dra");
    CHECK(h.editor->cursor() == 3);
    h.check_screen();
    CHECK(h.type(kDown).empty());  // past the draft: nothing
    h.type("\x10");  // Ctrl-P
    CHECK(h.text() == "three");
    h.type("\x0e");  // Ctrl-N
    CHECK(h.text() == "dra");
}

TEST_CASE("line editor: a recalled line is edited as a copy and entered as a new line") {
    Harness h;
    h.type("pause web\r");
    h.type(kUp + "\x17" + "db\r");
    CHECK(h.lines.back() == "pause db");
    h.type(kUp);
    CHECK(h.text() == "pause db");
    h.type(kUp);
    CHECK(h.text() == "pause web");  // the history kept the original
    // A shorter entry over a longer line: the old characters are gone from the screen.
    h.type("\x15" + std::string("a very long line that is then replaced"));
    h.type(kDown + kDown);
    h.check_screen();
    h.type(kUp);
    h.check_screen();
    CHECK(h.text() == "pause db");
}

TEST_CASE("line editor: the history skips blank lines and repeats of the newest") {
    Harness h;
    h.type("list\r\r   \r\t\rlist\rinfo\rlist\r");
    h.type(kUp);
    CHECK(h.text() == "list");
    h.type(kUp);
    CHECK(h.text() == "info");
    h.type(kUp);
    CHECK(h.text() == "list");
    CHECK(h.type(kUp).empty());
    CHECK(h.text() == "list");
}

TEST_CASE("line editor: the history keeps the newest 32 lines") {
    Harness h;
    for (int i = 0; i < 40; ++i) h.type("cmd" + std::to_string(i) + "\r");
    for (int i = 39; i >= 8; --i) {
        h.type(kUp);
        CHECK(h.text() == "cmd" + std::to_string(i));
    }
    h.type(kUp);
    CHECK(h.text() == "cmd8");
    for (int i = 0; i < 32; ++i) h.type(kDown);
    CHECK(h.text().empty());
}

TEST_CASE("line editor: a full line refuses more with a bell") {
    Harness h;
    const std::string full(LineEditor::kMaxLength, 'x');
    CHECK(h.type(full) == full);
    CHECK(h.type("yz") == "\a\a");
    CHECK(h.text() == full);
    h.type(kHome);
    CHECK(h.type("q") == "\a");  // in the middle too
    CHECK(h.text() == full);
    h.type("\x7f");  // at the start: nothing to delete
    h.type(kEnd + "\x7f" + "!");
    CHECK(h.text() == full.substr(0, LineEditor::kMaxLength - 1) + "!");
    h.type("\r");
    CHECK(h.lines.back().size() == LineEditor::kMaxLength);
    // The history holds a full line too.
    h.type(kUp);
    CHECK(h.text() == h.lines.back());
}

TEST_CASE("line editor: escape sequences split anywhere between feeds") {
    Harness h;
    h.type("ab");
    h.type("\x1b");
    CHECK(h.text() == "ab");
    h.type("[");
    h.type("D");
    CHECK(h.editor->cursor() == 1);
    h.type("\x1b");
    h.type("[3");
    h.type("~");
    CHECK(h.text() == "a");
    h.type("\x1b[1;5D");  // Ctrl-Left: the modifier does not matter
    CHECK(h.editor->cursor() == 0);
    h.check_screen();
}

TEST_CASE("line editor: unknown sequences, stray ESC and garbage bytes do no harm") {
    Harness h;
    h.type("ls");
    // Insert, PageUp, F5, F1 (SS3 P), Alt-x, a key code past the parameter limit, ESC [ ~ (no
    // parameter), ESC O ~.
    CHECK(h.type("\x1b[2~\x1b[5~\x1b[15~\x1bOP\x1bx\x1b[99999~\x1b[~\x1bO~").empty());
    CHECK(h.text() == "ls");
    // NUL, other controls, bytes above 0x7f: ignored.
    CHECK(h.type(std::string("\0\x12\x13\x1a\x1c\x1d\x1f\x80\xff\xe2\x82\xac", 12)).empty());
    CHECK(h.text() == "ls");
    // ESC ESC [ D: the second ESC starts over.
    h.type("\x1b\x1b[D");
    CHECK(h.editor->cursor() == 1);
    // A long CSI is still one sequence (the parameter saturates), ended by its final byte.
    CHECK(h.type("\x1b[" + std::string(400, '1') + ";" + std::string(400, '2') + "x").empty());
    h.type("\x1b[" + std::string(400, '9') + "3~");
    CHECK(h.text() == "ls");
    h.type("x");
    CHECK(h.text() == "lxs");
    // A byte above 0x7f ends a sequence.
    h.type("\x1b[\x90" "A");
    CHECK(h.text() == "lxAs");
    h.check_screen();
    // A control byte ends the sequence and acts: ESC then Enter is Enter.
    h.type("\x1b\r");
    CHECK(h.lines.back() == "lxAs");
    h.type("ab\x1b[\x7f");  // DEL as a final byte: ignored, not a Backspace
    CHECK(h.text() == "ab");
    h.type("\x1b[1\x08");  // BS inside a sequence: the sequence ends, BS deletes
    CHECK(h.text() == "a");
}

TEST_CASE("line editor: Tab is a space") {
    Harness h;
    CHECK(h.type("help\tinfo") == "help info");
    h.type("\r");
    CHECK(h.lines.back() == "help info");
}

TEST_CASE("line editor: a long edit session keeps screen and buffer in step") {
    Harness h;
    // Every editing key, mixed, against the VT model after each step.
    const std::vector<std::string> steps = {
        "vcpu-pin web all 0-3", kLeft, kLeft, kLeft, "\x7f", "1", kHome, kRight, kDelete, "V", kEnd, "\x17",
        "2,3", "\x01", "\x0b", "again", kLeft + kLeft, "\x15", "x", "\r", kUp, "yz", "\x0c", kLeft, "\x04", kDown,
        kUp, kUp, "\x7f\x7f\x7f"};
    for (const auto& step : steps) {
        h.type(step);
        h.check_screen();
    }
}
