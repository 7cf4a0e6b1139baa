// A line editor for Dom0's shell on a serial terminal (VT100/xterm), fed one byte at a time.
//
// Keys (what xterm and the Linux console send, ECMA-48 CSI/SS3 sequences):
//   printable ASCII, Tab    insert at the cursor (Tab as a space: the editor keeps one column per
//                           byte); a full line refuses it with a bell (0x07)
//   Backspace (0x7f, 0x08)  delete before the cursor        Ctrl-D, ESC [3~   delete at the cursor
//   Left, Right, Ctrl-B/F   ESC [D, ESC [C (or ESC O D/C)   Ctrl-W            delete the word before
//   Home: Ctrl-A, ESC [H, ESC O H, ESC [1~, ESC [7~         Ctrl-U            delete the whole line
//   End:  Ctrl-E, ESC [F, ESC O F, ESC [4~, ESC [8~         Ctrl-K            delete to the end
//   Up, Down, Ctrl-P/N      ESC [A, ESC [B: the history     Ctrl-L            clear screen, redraw
//   Enter                   CR or LF (CR LF counts once)    Ctrl-C            abandon the line
// A single Ctrl-A is Home: the hypervisor keeps only Ctrl-A pressed three times (console input
// switch) for itself, as Xen does. Unknown escape sequences (however long), other control bytes
// and bytes above 0x7f are ignored; a C0 control inside an escape sequence ends the sequence and
// acts (ECMA-48 5.4), so a stray ESC never swallows Enter.
//
// Output is deterministic and needs no terminal query: plain typing echoes exactly the bytes typed,
// Enter echoes "\r\n". The cursor moves left with BS and right by writing the characters over, and
// erasing writes spaces: the only escape sequence sent is Ctrl-L's clear screen. (A line longer
// than the terminal is wide may display wrongly while edited; its content is right.)
#pragma once

#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::shell {

class LineEditor {
public:
    static constexpr usize kMaxLength = 255;
    static constexpr usize kHistoryCapacity = 32;

    enum class Event : u8 {
        None,       // still editing
        Line,       // Enter: line() holds the line
        Cancelled,  // Ctrl-C: the line was abandoned
    };

    explicit LineEditor(Sink& terminal) : terminal_(terminal) {}

    // Writes `prompt` to start a line; the editor keeps the pointer to redraw it (Ctrl-L).
    void begin(const char* prompt);

    Event feed(u8 byte);

    // Output that is not the line's (a notice about a domain): `text`, whole lines, goes on lines
    // of its own below the line being edited, then the prompt and the line again, the cursor
    // where it was.
    void interject(const char* text, usize length);

    // The line the last Enter finished (NUL-terminated), until the next Enter.
    const char* line() const { return accepted_; }
    usize line_length() const { return accepted_length_; }

    // The line being edited, for tests and redraws.
    const char* text() const { return text_; }
    usize length() const { return length_; }
    usize cursor() const { return cursor_; }

private:
    enum class Escape : u8 { None, Start, Csi, Ss3 };
    enum class Key : u8 { Up, Down, Right, Left, Home, End, Delete };

    Event control(u8 byte);
    void escape_byte(u8 byte);
    void key(Key key);

    void insert(char c);
    void erase(usize from, usize to);
    void replace(const char* text, usize length);
    void move_left(usize count);
    void write_from_cursor(usize to);
    void redraw();
    void write_prompt_and_line();
    void recall(usize age);
    Event accept();
    void remember(const char* line, usize length);
    const char* history_entry(usize age) const;
    void write(const char* text, usize length) { terminal_.write(text, length); }

    Sink& terminal_;
    const char* prompt_ = "";
    char text_[kMaxLength + 1] = {};
    usize length_ = 0;
    usize cursor_ = 0;
    char accepted_[kMaxLength + 1] = {};
    usize accepted_length_ = 0;

    Escape escape_ = Escape::None;
    u32 parameter_ = 0;        // the first CSI parameter; later ones are ignored
    bool first_parameter_ = true;
    bool after_cr_ = false;    // an LF right after a CR is the same Enter

    // A ring of the newest lines, entry age 0 the newest; `browsing_` is the age shown + 1 (0: the
    // line being typed, kept in `draft_` while the history is shown).
    char history_[kHistoryCapacity][kMaxLength + 1] = {};
    usize history_next_ = 0;
    usize history_count_ = 0;
    usize browsing_ = 0;
    char draft_[kMaxLength + 1] = {};
    usize draft_length_ = 0;
};

}  // namespace lamina::shell
