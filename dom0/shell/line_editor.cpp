#include <dom0/shell/line_editor.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::shell {
namespace {

constexpr u8 kEscape = 0x1b;
constexpr u8 kDelete = 0x7f;
constexpr char kBell = '\a';
// Key codes are small: a larger CSI parameter saturates just above this and names no key.
constexpr u32 kMaxParameter = 9999;

constexpr u8 ctrl(char letter) { return static_cast<u8>(letter - '@'); }

bool is_blank(const char* text, usize length) {
    for (usize i = 0; i < length; ++i)
        if (text[i] != ' ' && text[i] != '\t') return false;
    return true;
}

}  // namespace

void LineEditor::begin(const char* prompt) {
    prompt_ = prompt;
    write(prompt, str::length(prompt));
}

LineEditor::Event LineEditor::feed(u8 byte) {
    const bool after_cr = after_cr_;
    after_cr_ = false;
    if (escape_ != Escape::None) {
        // A C0 control ends the sequence and is then itself; ESC starts a new one.
        if (byte >= 0x20 || byte == kEscape) {
            escape_byte(byte);
            return Event::None;
        }
        escape_ = Escape::None;
    }
    if (byte == '\n' && after_cr) return Event::None;
    if (byte >= 0x20 && byte < kDelete) {
        insert(static_cast<char>(byte));
        return Event::None;
    }
    return control(byte);
}

LineEditor::Event LineEditor::control(u8 byte) {
    switch (byte) {
        case '\r':
            after_cr_ = true;
            return accept();
        case '\n': return accept();
        case '\t': insert(' '); break;
        case kDelete:
        case ctrl('H'):
            if (cursor_ > 0) erase(cursor_ - 1, cursor_);
            break;
        case ctrl('D'): key(Key::Delete); break;
        case ctrl('A'): key(Key::Home); break;
        case ctrl('E'): key(Key::End); break;
        case ctrl('B'): key(Key::Left); break;
        case ctrl('F'): key(Key::Right); break;
        case ctrl('P'): key(Key::Up); break;
        case ctrl('N'): key(Key::Down); break;
        case ctrl('K'): erase(cursor_, length_); break;
        case ctrl('U'): erase(0, length_); break;
        case ctrl('W'): {
            usize start = cursor_;
            while (start > 0 && text_[start - 1] == ' ') --start;
            while (start > 0 && text_[start - 1] != ' ') --start;
            erase(start, cursor_);
            break;
        }
        case ctrl('L'): redraw(); break;
        case ctrl('C'):
            write("^C\r\n", 4);
            length_ = cursor_ = 0;
            text_[0] = '\0';
            browsing_ = 0;
            return Event::Cancelled;
        case kEscape:
            escape_ = Escape::Start;
            break;
        default: break;  // other controls, and bytes above 0x7f: not for a command line
    }
    return Event::None;
}

void LineEditor::escape_byte(u8 byte) {
    if (byte == kEscape) {
        escape_ = Escape::Start;
        return;
    }
    if (byte >= 0x80) {
        escape_ = Escape::None;
        return;
    }
    switch (escape_) {
        case Escape::Start:
            // ESC [ is CSI, ESC O is SS3 (cursor keys in application mode); ESC x (Alt-x) is ignored.
            escape_ = byte == '[' ? Escape::Csi : byte == 'O' ? Escape::Ss3 : Escape::None;
            parameter_ = 0;
            first_parameter_ = true;
            return;
        case Escape::Csi:
            if (byte >= '0' && byte <= '9') {
                if (first_parameter_) parameter_ = min(parameter_ * 10 + (byte - '0'), kMaxParameter + 1);
                return;
            }
            if (byte == ';') {
                first_parameter_ = false;
                return;
            }
            if (byte < 0x40) return;  // other parameter and intermediate bytes (ECMA-48 5.4)
            break;
        case Escape::Ss3:
        case Escape::None: break;
    }
    // A final byte: modifiers (ESC [1;5C) do not change which key it is.
    const Escape kind = escape_;
    escape_ = Escape::None;
    switch (byte) {
        case 'A': return key(Key::Up);
        case 'B': return key(Key::Down);
        case 'C': return key(Key::Right);
        case 'D': return key(Key::Left);
        case 'H': return key(Key::Home);
        case 'F': return key(Key::End);
        case '~':
            if (kind != Escape::Csi) return;
            // VT220 editing keys: 1 and 7 Home, 4 and 8 End (rxvt and the Linux console), 3 Delete.
            if (parameter_ == 1 || parameter_ == 7) return key(Key::Home);
            if (parameter_ == 4 || parameter_ == 8) return key(Key::End);
            if (parameter_ == 3) return key(Key::Delete);
            return;
        default: return;
    }
}

void LineEditor::key(Key key) {
    switch (key) {
        case Key::Left:
            if (cursor_ > 0) move_left(1);
            return;
        case Key::Right:
            if (cursor_ < length_) write_from_cursor(cursor_ + 1);
            return;
        case Key::Home: return move_left(cursor_);
        case Key::End: return write_from_cursor(length_);
        case Key::Delete:
            if (cursor_ < length_) erase(cursor_, cursor_ + 1);
            return;
        case Key::Up:
            if (browsing_ < history_count_) recall(browsing_ + 1);
            return;
        case Key::Down:
            if (browsing_ > 0) recall(browsing_ - 1);
            return;
    }
}

void LineEditor::insert(char c) {
    if (length_ == kMaxLength) {
        write(&kBell, 1);
        return;
    }
    str::move_bytes(text_ + cursor_ + 1, text_ + cursor_, length_ - cursor_);
    text_[cursor_] = c;
    text_[++length_] = '\0';
    // Writes the new character and the rest of the line, then steps back to just after it.
    const usize after = cursor_ + 1;
    write_from_cursor(length_);
    move_left(length_ - after);
}

// Removes text_[from, to) and leaves the cursor at `from`. The screen: back to `from`, the rest of
// the line written over, spaces over what is left of the old end, back to `from`.
void LineEditor::erase(usize from, usize to) {
    LAMINA_ASSERT(from <= cursor_ && cursor_ <= to && to <= length_);
    if (from == to) return;
    move_left(cursor_ - from);
    const usize removed = to - from;
    str::move_bytes(text_ + from, text_ + to, length_ - to);
    length_ -= removed;
    text_[length_] = '\0';
    write(text_ + from, length_ - from);
    for (usize i = 0; i < removed; ++i) write(" ", 1);
    cursor_ = length_ + removed;
    move_left(cursor_ - from);
}

// Shows `text` in place of the line, the cursor at its end.
void LineEditor::replace(const char* text, usize length) {
    const usize old_length = length_;
    move_left(cursor_);
    str::copy_bytes(text_, text, length);
    length_ = length;
    text_[length_] = '\0';
    write_from_cursor(length_);
    if (old_length > length_) {
        for (usize i = length_; i < old_length; ++i) write(" ", 1);
        cursor_ = old_length;
        move_left(old_length - length_);
    }
}

void LineEditor::move_left(usize count) {
    for (usize i = 0; i < count; ++i) write("\b", 1);
    cursor_ -= count;
}

// Moves the cursor right to `to` by writing the characters it passes.
void LineEditor::write_from_cursor(usize to) {
    write(text_ + cursor_, to - cursor_);
    cursor_ = to;
}

void LineEditor::redraw() {
    // ED 2 (erase display) and CUP (cursor home), ECMA-48 8.3.39 and 8.3.21.
    write("\x1b[H\x1b[2J", 7);
    write_prompt_and_line();
}

void LineEditor::interject(const char* text, usize length) {
    write("\r\n", 2);
    write(text, length);
    write_prompt_and_line();
}

void LineEditor::write_prompt_and_line() {
    write(prompt_, str::length(prompt_));
    const usize cursor = cursor_;
    cursor_ = 0;
    write_from_cursor(length_);
    move_left(length_ - cursor);
}

// Shows the history entry of `age` - 1, or the draft for 0.
void LineEditor::recall(usize age) {
    if (browsing_ == 0) {
        str::copy_bytes(draft_, text_, length_ + 1);
        draft_length_ = length_;
    }
    browsing_ = age;
    if (age == 0) {
        replace(draft_, draft_length_);
        return;
    }
    const char* entry = history_entry(age - 1);
    replace(entry, str::length(entry));
}

LineEditor::Event LineEditor::accept() {
    write("\r\n", 2);
    str::copy_bytes(accepted_, text_, length_ + 1);
    accepted_length_ = length_;
    remember(text_, length_);
    length_ = cursor_ = 0;
    text_[0] = '\0';
    browsing_ = 0;
    return Event::Line;
}

// Keeps a line for Up, unless it is blank or the same as the newest.
void LineEditor::remember(const char* line, usize length) {
    if (is_blank(line, length)) return;
    if (history_count_ > 0 && str::equal(history_entry(0), line)) return;
    str::copy_bytes(history_[history_next_], line, length + 1);
    history_next_ = (history_next_ + 1) % kHistoryCapacity;
    if (history_count_ < kHistoryCapacity) ++history_count_;
}

const char* LineEditor::history_entry(usize age) const {
    LAMINA_ASSERT(age < history_count_);
    return history_[(history_next_ + kHistoryCapacity - 1 - age) % kHistoryCapacity];
}

}  // namespace lamina::shell
