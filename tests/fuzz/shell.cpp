// Feeds terminal bytes to Dom0's line editor and each line through Shell::run into commands parsing
// their arguments as Dom0's do; checks the line and cursor after every byte against what a terminal
// shows, that split_words lays words out one after another in its text, and argv null-ended.
#include "fuzz_support.h"
#include "elf_builder.h"

#include <dom0/shell/shell.h>
#include <dom0/toolstack/toolstack.h>
#include <lamina/abi/errno.h>

#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::shell;

namespace {

constexpr u32 kHostCpus = 8;
constexpr toolstack::Limits kLimits{4096, 16, kHostCpus};

// Ends an input whose output outgrew kOutputBudget: `repeat` runs a line up to 100000 times,
// far more work than one fuzz run should take.
struct OutputBudgetSpent {};
constexpr usize kOutputBudget = 64 * KiB;

constexpr char kNotice[] = "domain 3 (ticker) crashed: triple fault; destroyed\nsecond line\n";

// The serial terminal, as far as the editor drives it: the row the cursor is on and its column.
// BS moves left, CR to column 0, LF (the shell's output ends lines with it alone) to a new row,
// ESC [H ESC [2J clears. Rows do not wrap, so the row shows exactly what the editor meant.
class Terminal final : public Sink {
public:
    // Not coverage-guided: the model's branches say nothing about the code under test.
    __attribute__((no_sanitize("coverage"))) void write(const char* text, usize length) override {
        written_ += length;
        if (written_ > kOutputBudget) throw OutputBudgetSpent{};
        for (usize i = 0; i < length; ++i) put(text[i]);
    }

    const std::string& row() const { return row_; }
    usize column() const { return column_; }

private:
    __attribute__((no_sanitize("coverage"))) void put(char c) {
        if (in_escape_) {
            // The editor's only sequences are cursor home and erase display.
            if (c >= 0x40 && c <= 0x7e && c != '[') {
                in_escape_ = false;
                row_.clear();
                column_ = 0;
            }
            return;
        }
        switch (c) {
            case '\x1b': in_escape_ = true; return;
            case '\a': return;
            case '\b':
                FUZZ_CHECK(column_ > 0);  // a BS at column 0: the editor lost track of its cursor
                --column_;
                return;
            case '\r': column_ = 0; return;
            case '\n':
                row_.clear();
                column_ = 0;
                return;
        }
        if (column_ < row_.size()) row_[column_] = c;
        else row_.append(column_ - row_.size(), ' ').push_back(c);
        ++column_;
    }

    usize written_ = 0;
    std::string row_;
    usize column_ = 0;
    bool in_escape_ = false;
};

struct Domains final : DomainDirectory {
    i64 find_by_name(const char* name) override {
        if (std::strcmp(name, "web") == 0) return 3;
        if (std::strcmp(name, "lost") == 0) return -LAMINA_EFAULT;
        return -LAMINA_ESRCH;
    }
};

// Dom0's boot images as its start info lists them: a config and the PVH kernel it names.
class BootImages {
public:
    BootImages() {
        test::ElfBuilder kernel;
        kernel.load(0x100000, 64, 0x2000);
        kernel.pvh_note(0x100000);
        const std::vector<u8> kernel_bytes = kernel.build();
        const char config[] = "name = \"ticker\"\nmemory = 8\nkernel = \"ticker\"\n";
        add("ticker.cfg", reinterpret_cast<const u8*>(config), sizeof(config) - 1);
        add("ticker", kernel_bytes.data(), kernel_bytes.size());

        // The module list first, then each module's name and bytes.
        memory_.resize(modules_.size() * sizeof(pvh::ModuleEntry));
        for (usize i = 0; i < modules_.size(); ++i) {
            const u64 name_at = kGpa + memory_.size();
            memory_.insert(memory_.end(), modules_[i].name.begin(), modules_[i].name.end());
            memory_.push_back(0);
            const pvh::ModuleEntry entry{kGpa + memory_.size(), modules_[i].bytes.size(), name_at, 0};
            memory_.insert(memory_.end(), modules_[i].bytes.begin(), modules_[i].bytes.end());
            std::memcpy(memory_.data() + i * sizeof(entry), &entry, sizeof(entry));
        }
        pvh::StartInfo start{};
        start.magic = pvh::kStartInfoMagic;
        start.module_count = static_cast<u32>(modules_.size());
        start.module_list = kGpa;
        Terminal log;
        directory.load(start, {kGpa, memory_.size(), reinterpret_cast<uptr>(memory_.data())}, log);
        FUZZ_CHECK(directory.count() == modules_.size());
    }

    toolstack::ImageDirectory directory;

private:
    static constexpr u64 kGpa = 0x10000;
    struct Module {
        std::string name;
        std::vector<u8> bytes;
    };
    void add(const char* name, const u8* bytes, usize size) { modules_.push_back({name, {bytes, bytes + size}}); }

    std::vector<Module> modules_;
    std::vector<u8> memory_;
};

const BootImages& boot_images() {
    static const BootImages images;
    return images;
}

int succeed(Shell& shell) {
    shell.print("ok\n");  // every success prints, so the output budget bounds `repeat`
    return 0;
}

void check_argv(int argc, const char* const* argv) {
    FUZZ_CHECK(argc >= 1 && argc <= static_cast<int>(Words::kMaxWords) && argv[argc] == nullptr);
    for (int i = 0; i < argc; ++i) FUZZ_CHECK(std::strlen(argv[i]) <= Words::kMaxLineLength);
}

// A command whose operands are `least` to `most`, the first a domain.
int domain_operands(Shell& shell, int argc, const char* const* argv, int least, int most) {
    check_argv(argc, argv);
    if (argc - 1 < least || argc - 1 > most) return shell.usage_error(argv[0]);
    Message error;
    u16 domid = 0;
    if (argc > 1 && !parse_domain(argv[1], shell.domains(), &domid, error))
        return shell.fail("{}: {}", argv[0], error.text());
    FUZZ_CHECK(domid <= LAMINA_DOMID_MAX);
    return succeed(shell);
}

int list_command(Shell& shell, int argc, const char* const* argv) { return domain_operands(shell, argc, argv, 0, 1); }
int domain_command(Shell& shell, int argc, const char* const* argv) { return domain_operands(shell, argc, argv, 1, 1); }

// Walks the options of `spec`: the value of `domain_letter` is a domain, the others numbers in
// 1..65535.
int options_command(Shell& shell, int argc, const char* const* argv, const char* spec, char domain_letter,
                    int most_operands) {
    check_argv(argc, argv);
    OptionParser options(argc, argv, spec);
    Message error;
    for (char letter; (letter = options.next(error)) != 0;) {
        if (letter == '?') return shell.fail("{}: {}", argv[0], error.text());
        FUZZ_CHECK(std::strchr(spec, letter) != nullptr && letter != ':');
        if (!options.value()) continue;
        u16 domid;
        u64 value;
        const char option[3] = {'-', letter, '\0'};
        const bool parsed = letter == domain_letter
                                ? parse_domain(options.value(), shell.domains(), &domid, error)
                                : parse_number(option, options.value(), "the value", 1, 65535, &value, error);
        if (!parsed) return shell.fail("{}: {}", argv[0], error.text());
    }
    FUZZ_CHECK(options.operand_count() <= argc - 1);
    if (options.operand_count() > most_operands) return shell.usage_error(argv[0]);
    for (int i = 0; i < options.operand_count(); ++i) FUZZ_CHECK(options.operand(i) != nullptr);
    return succeed(shell);
}

int top_command(Shell& shell, int argc, const char* const* argv) {
    return options_command(shell, argc, argv, "n:d:", 0, 0);
}
int sched_credit_command(Shell& shell, int argc, const char* const* argv) {
    return options_command(shell, argc, argv, "d:w:c:st:r:", 'd', 0);
}
int console_command(Shell& shell, int argc, const char* const* argv) {
    return options_command(shell, argc, argv, "n", 0, 1);
}

int vcpu_pin_command(Shell& shell, int argc, const char* const* argv) {
    check_argv(argc, argv);
    if (argc != 4) return shell.usage_error(argv[0]);
    Message error;
    u16 domid;
    u64 vcpu;
    if (!parse_domain(argv[1], shell.domains(), &domid, error)) return shell.fail("vcpu-pin: {}", error.text());
    if (std::strcmp(argv[2], "all") != 0 && !parse_number(nullptr, argv[2], "vcpu", 0, 15, &vcpu, error))
        return shell.fail("vcpu-pin: {}", error.text());
    toolstack::CpuSet cpus;
    if (!toolstack::parse_cpu_list(argv[3], kHostCpus, cpus, error)) return shell.fail("vcpu-pin: {}", error.text());
    FUZZ_CHECK(!cpus.empty());
    for (u32 cpu = kHostCpus; cpu < toolstack::CpuSet::kMaxCpus; ++cpu) FUZZ_CHECK(!cpus.contains(cpu));
    return succeed(shell);
}

int create_command(Shell& shell, int argc, const char* const* argv) {
    check_argv(argc, argv);
    OptionParser options(argc, argv, "p");
    Message error;
    for (char letter; (letter = options.next(error)) != 0;)
        if (letter == '?') return shell.fail("create: {}", error.text());
    if (options.operand_count() < 1) return shell.usage_error(argv[0]);
    const char* overrides[Words::kMaxWords];
    for (int i = 1; i < options.operand_count(); ++i) overrides[i - 1] = options.operand(i);
    static toolstack::DomainConfig config;  // a few KiB
    toolstack::Diagnostics diagnostics;
    if (!toolstack::prepare_config(boot_images().directory, options.operand(0), overrides,
                                   static_cast<usize>(options.operand_count() - 1), kLimits, config, diagnostics))
        return shell.fail("create: {}", diagnostics.error.text);
    FUZZ_CHECK(config.name[0] && config.kernel[0] && config.max_vcpus >= config.vcpus);
    return succeed(shell);
}

const Command kCommands[] = {
    {"list", "list [domain]", "list the domains", list_command},
    {"create", "create [-p] <config|image> [key=value...]", "create a domain", create_command},
    {"destroy", "destroy <domain>", "end a domain", domain_command},
    {"pause", "pause <domain>", "stop a domain's vCPUs", domain_command},
    {"console", "console [-n] <domain>", "attach to a console", console_command},
    {"top", "top [-n iterations] [-d seconds]", "show the load", top_command},
    {"sched-credit", "sched-credit [-d <domain> [-w <weight>] [-c <cap>]] [-s [-t <ms>] [-r <us>]]",
     "scheduler parameters", sched_credit_command},
    {"vcpu-pin", "vcpu-pin <domain> <vcpu|all> <cpus>", "pin a vCPU", vcpu_pin_command},
};

// The line is printable text, and the terminal shows the prompt, the line and blanks where an
// older, longer line was, with the cursor where the editor has it.
void check_editor(const LineEditor& editor, const Terminal& terminal) {
    FUZZ_CHECK(editor.cursor() <= editor.length() && editor.length() <= LineEditor::kMaxLength);
    FUZZ_CHECK(std::strlen(editor.text()) == editor.length());
    for (usize i = 0; i < editor.length(); ++i) FUZZ_CHECK(editor.text()[i] >= ' ' && editor.text()[i] <= '~');

    const std::string& row = terminal.row();
    const usize prompt_length = std::strlen(Shell::kPrompt);
    FUZZ_CHECK(row.compare(0, prompt_length, Shell::kPrompt) == 0);
    FUZZ_CHECK(row.compare(prompt_length, editor.length(), editor.text()) == 0);
    FUZZ_CHECK(row.find_first_not_of(' ', prompt_length + editor.length()) == std::string::npos);
    FUZZ_CHECK(terminal.column() == prompt_length + editor.cursor());
}

// Nested repeats multiply (100000 runs of 100000 runs) into work that prints nothing: no fault of
// the shell's, which does what it is told, but no input to spend a fuzzer's seconds on. Splitting
// only removes quotes and backslashes, so without them a nested repeat shows its name twice.
bool nests_repeat(const char* line) {
    std::string kept;
    for (; *line; ++line)
        if (*line != '\'' && *line != '"' && *line != '\\') kept.push_back(*line);
    const usize first = kept.find("repeat");
    return first != std::string::npos && kept.find("repeat", first + 1) != std::string::npos;
}

// The words of a line lie one after another in Words::text, each NUL-terminated there.
void check_words(const char* line) {
    static Words words;
    Message error;
    if (!split_words(line, std::strlen(line), words, error)) {
        FUZZ_CHECK(words.count == 0 && error.text()[0]);
        return;
    }
    FUZZ_CHECK(words.count >= 0 && words.count <= static_cast<int>(Words::kMaxWords));
    FUZZ_CHECK(words.word[words.count] == nullptr);
    const char* text_end = words.text + sizeof(words.text);
    const char* next = words.text;
    for (int i = 0; i < words.count; ++i) {
        FUZZ_CHECK(words.word[i] == next && fuzz::string_inside(next, words.text, text_end));
        next += std::strlen(next) + 1;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Terminal terminal;
    Domains domains;
    Shell shell(terminal, kCommands, array_size(kCommands), domains);
    LineEditor editor(terminal);
    try {
        editor.begin(Shell::kPrompt);
        for (usize i = 0; i < size; ++i) {
            // The editor ignores 0xff; here it also stands for a notice from a domain.
            if (data[i] == 0xff) {
                editor.interject(kNotice, sizeof(kNotice) - 1);
                check_editor(editor, terminal);
            }
            const LineEditor::Event event = editor.feed(data[i]);
            if (event == LineEditor::Event::Line) {
                FUZZ_CHECK(std::strlen(editor.line()) == editor.line_length());
                check_words(editor.line());
                if (!nests_repeat(editor.line())) {
                    const int status = shell.run(editor.line());
                    FUZZ_CHECK(status == shell.last_status() && (status == 0 || status == 1));
                }
            }
            if (event != LineEditor::Event::None) editor.begin(Shell::kPrompt);
            check_editor(editor, terminal);
        }
    } catch (const OutputBudgetSpent&) {
    }
    return 0;
}
