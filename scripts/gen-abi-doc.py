#!/usr/bin/env python3
"""Writes docs/hypercall-abi.md from the public ABI headers (lib/include/lamina/abi/).

The table of hypercalls comes from hypercalls.def, the rest from the headers themselves: their
comments become the prose, their #defines, enums and structs become tables, with the offsets of
every field computed here. The generator refuses what it cannot lay out exactly (implicit padding,
a size that disagrees with the header's LAMINA_ABI_SIZE, a malformed table entry), so a document
that was written is one that matches the code.

    gen-abi-doc.py                                  rewrite docs/hypercall-abi.md
    gen-abi-doc.py --output F --check docs/hypercall-abi.md
                                                    write F; fail with a diff if it differs
    gen-abi-doc.py --layout-check F.c               also write C assertions of what it shows:
                                                    values, numbers, sizes and offsets
"""

import argparse
import difflib
import pathlib
import re
import sys

ABI_DIR = pathlib.Path("lib/include/lamina/abi")
DOC = pathlib.Path("docs/hypercall-abi.md")

# The headers whose types and constants the document shows, in its order.
TYPE_HEADERS = ["console.h", "domain.h", "vcpu.h", "event_channel.h", "shared_page.h", "sched.h", "host.h",
                "stats.h"]
SCALARS = {"uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8, "int8_t": 1, "int16_t": 2, "int32_t": 4,
           "int64_t": 8, "char": 1}
UNSIGNED = {"uint8_t", "uint16_t", "uint32_t", "uint64_t"}
KINDS = {"VAL", "IN", "OUT", "INOUT", "PAGE"}
CALLERS = {"ANY": "any", "CONTROL": "control"}


class AbiError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Reading the headers


class Define:
    def __init__(self, name, expression, comment, doc):
        self.name, self.expression, self.comment, self.doc = name, expression, comment, doc
        self.value = None  # an int, a str, or None when not a constant


class Member:
    def __init__(self, name, expression, comment):
        self.name, self.expression, self.comment = name, expression, comment
        self.value = None


class Enum:
    def __init__(self, name, members, doc):
        self.name, self.members, self.doc = name, members, doc


class Field:
    def __init__(self, ctype, name, dimension, comment):
        self.ctype, self.name, self.dimension, self.comment = ctype, name, dimension, comment
        self.count = 1
        self.offset = self.size = None


class Struct:
    def __init__(self, name, fields, doc, header):
        self.name, self.fields, self.doc, self.header = name, fields, doc, header
        self.size = self.align = None
        self.declared_size = None


class Header:
    def __init__(self, name):
        self.name = name
        self.description = []  # the opening comment's lines
        self.items = []  # Define, Enum, Struct, or a comment's lines (a paragraph), in file order


def comment_text(comment):
    """The text of a /* */ comment, one string per line, the leading ' * ' removed."""
    body = comment[2:-2]
    lines = body.split("\n")
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            stripped = stripped[1:] if stripped.startswith(" ") else stripped
        out.append(stripped.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def split_trailing_comment(text):
    match = re.search(r"/\*(.*?)\*/\s*$", text)
    if not match:
        return text.strip(), ""
    return text[: match.start()].strip(), match.group(1).strip()


def parse_header(path):
    header = Header(path.name)
    text = path.read_text()
    lines = text.split("\n")
    i = 0
    pending_doc = None  # a comment that ended on the line just before
    first_comment = True

    def block_end(start):
        """The line that closes the first brace opened from the line `start` on."""
        depth, opened = 0, False
        for j in range(start, len(lines)):
            opened = opened or "{" in lines[j]
            depth += lines[j].count("{") - lines[j].count("}")
            if opened and depth == 0:
                return j
        raise AbiError(f"{path}: unterminated block from line {start + 1}")

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            if pending_doc is not None:
                header.items.append(pending_doc)
                pending_doc = None
            i += 1
            continue
        if stripped.startswith("/*"):
            j = i
            while "*/" not in lines[j]:
                j += 1
            comment = "\n".join(lines[i:j + 1]).strip()
            text_lines = comment_text(comment)
            if first_comment:
                header.description = text_lines
                first_comment = False
            else:
                if pending_doc is not None:
                    header.items.append(pending_doc)
                pending_doc = text_lines
            i = j + 1
            continue
        doc, pending_doc = pending_doc, None
        if stripped.startswith("#define"):
            j = i
            while lines[j].rstrip().endswith("\\"):
                j += 1
            full = " ".join(l.rstrip().rstrip("\\") for l in lines[i:j + 1])
            match = re.match(r"#define\s+(\w+)(\(?)\s*(.*)$", full.strip())
            if match and not match.group(2) and match.group(3):
                expression, comment = split_trailing_comment(match.group(3))
                header.items.append(Define(match.group(1), expression, comment, doc))
            i = j + 1
            continue
        if re.match(r"(enum|struct)\s+\w+\s*\{", stripped):
            j = block_end(i)
            kind, name = re.match(r"(enum|struct)\s+(\w+)", stripped).groups()
            body = lines[i + 1:j]
            if kind == "enum":
                header.items.append(Enum(name, parse_enum(path, body), doc))
            else:
                header.items.append(Struct(name, parse_struct(path, name, body), doc, header.name))
            i = j + 1
            continue
        size_match = re.match(r"LAMINA_ABI_SIZE\(struct\s+(\w+),\s*(\d+)\);", stripped)
        if size_match:
            for item in header.items:
                if isinstance(item, Struct) and item.name == size_match.group(1):
                    item.declared_size = int(size_match.group(2))
            i += 1
            continue
        if stripped.startswith("static inline"):
            i = block_end(i) + 1
            continue
        i += 1
    if pending_doc is not None:
        header.items.append(pending_doc)
    return header


def parse_enum(path, body):
    members = []
    for line in body:
        code, comment = split_trailing_comment(line)
        code = code.rstrip(",").strip()
        if not code or code.startswith("#") or re.fullmatch(r"\w+\(.*\)", code):
            continue  # an enum an X-macro expands (errno.h, hypercalls.h): shown from its table
        match = re.match(r"(\w+)\s*=\s*(.+)$", code)
        if not match:
            raise AbiError(f"{path}: enum member without an explicit value: {line.strip()}")
        members.append(Member(match.group(1), match.group(2).strip(), comment))
    return members


def parse_struct(path, name, body):
    fields = []
    for line in body:
        code, comment = split_trailing_comment(line)
        if not code:
            continue
        match = re.match(r"((?:struct\s+)?\w+)\s+(\w+)(?:\[([^\]]+)\])?\s*;$", code)
        if not match:
            raise AbiError(f"{path}: struct {name}: cannot read the field `{line.strip()}`")
        fields.append(Field(match.group(1), match.group(2), match.group(3), comment))
    return fields


# ---------------------------------------------------------------------------------------------
# Values


def evaluate(expression, constants, where):
    """The value of a C constant expression made of integer literals, constants and operators."""
    text = expression.strip()
    string = re.fullmatch(r'"([^"]*)"', text)
    if string:
        return string.group(1)
    text = re.sub(r"\(uint\d+_t\)", "", text)
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", text)

    def substitute(match):
        word = match.group(0)
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", word):
            return word
        if word not in constants or not isinstance(constants[word], int):
            raise AbiError(f"{where}: `{expression}` uses `{word}`, which is no integer constant")
        return str(constants[word])

    text = re.sub(r"\b\w+\b", substitute, text)
    if not re.fullmatch(r"[0-9a-fA-FxX\s()+\-*/<>|&~]*", text):
        raise AbiError(f"{where}: cannot evaluate `{expression}`")
    return eval(text.replace("/", "//"), {"__builtins__": {}})  # digits and operators only


def resolve(headers):
    """Evaluates every constant and lays out every struct; returns (constants, structs)."""
    constants = {}
    structs = {}
    for header in headers:
        header.items = [item for item in header.items if not (isinstance(item, Enum) and not item.members)]
        for item in header.items:
            if isinstance(item, Define):
                try:
                    item.value = evaluate(item.expression, constants, f"{header.name}: {item.name}")
                except AbiError:
                    item.value = None  # a macro that is not a constant (a cast, a helper)
                if item.value is not None:
                    constants[item.name] = item.value
            elif isinstance(item, Enum):
                for member in item.members:
                    member.value = evaluate(member.expression, constants, f"{header.name}: {member.name}")
                    constants[member.name] = member.value
            elif isinstance(item, Struct):
                structs[item.name] = item
    for struct in structs.values():
        layout(struct, structs, constants)
    return constants, structs


def type_size_align(ctype, structs, constants, where):
    if ctype in SCALARS:
        return SCALARS[ctype], SCALARS[ctype]
    match = re.fullmatch(r"struct\s+(\w+)", ctype)
    if match and match.group(1) in structs:
        inner = structs[match.group(1)]
        layout(inner, structs, constants)
        return inner.size, inner.align
    raise AbiError(f"{where}: unknown type `{ctype}`")


def layout(struct, structs, constants):
    if struct.size is not None:
        return
    offset = 0
    align = 1
    where = f"{struct.header}: struct {struct.name}"
    for field in struct.fields:
        size, field_align = type_size_align(field.ctype, structs, constants, f"{where}.{field.name}")
        field.count = evaluate(field.dimension, constants, f"{where}.{field.name}") if field.dimension else 1
        if offset % field_align:
            raise AbiError(f"{where}: implicit padding before `{field.name}` at offset {offset}: add a pad field")
        field.offset, field.size = offset, size * field.count
        offset += field.size
        align = max(align, field_align)
    if offset % align:
        raise AbiError(f"{where}: implicit padding at the end ({offset} bytes): add a pad field")
    struct.size, struct.align = offset, align
    if struct.declared_size is None:
        raise AbiError(f"{where}: no LAMINA_ABI_SIZE")
    if struct.declared_size != offset:
        raise AbiError(f"{where}: LAMINA_ABI_SIZE says {struct.declared_size} bytes, the fields make {offset}")


# ---------------------------------------------------------------------------------------------
# The table


class Argument:
    def __init__(self, name, kind, ctype):
        self.name, self.kind, self.ctype = name, kind, ctype


class Hypercall:
    def __init__(self, number, name, caller, arguments, summary):
        self.number, self.name, self.caller, self.arguments, self.summary = number, name, caller, arguments, summary


class Group:
    def __init__(self, first, last, title):
        self.first, self.last, self.title = first, last, title
        self.calls = []


def split_top_level(text, where):
    """Splits `text` at commas outside parentheses and string literals."""
    parts, depth, current, i = [], 0, "", 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current += text[i:end + 1]
            i = end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    if depth != 0:
        raise AbiError(f"{where}: unbalanced parentheses")
    parts.append(current.strip())
    return parts


def invocations(text, macro):
    """The argument text of each top-level `macro(...)` (not on a preprocessor line)."""
    found = []
    for match in re.finditer(r"^" + macro + r"\(", text, re.M):
        depth, i = 1, match.end()
        while depth:
            if text[i] == '"':
                i += 1
                while text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
            elif text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            i += 1
        found.append((text[: match.start()].count("\n") + 1, text[match.end():i - 1]))
    return found


def parse_table(path, structs, constants):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), path.read_text(), flags=re.S)
    groups = []
    for line, arguments in invocations(text, "LAMINA_HYPERCALL_GROUP"):
        first, last, title = split_top_level(arguments, f"{path}:{line}")
        groups.append(Group(int(first, 0), int(last, 0), title.strip('"')))
    calls = []
    for line, arguments in invocations(text, "LAMINA_HYPERCALL"):
        where = f"{path}:{line}"
        parts = split_top_level(arguments, where)
        if len(parts) != 6:
            raise AbiError(f"{where}: an entry has 6 parts (number, name, caller, argc, (args), \"summary\")")
        number_text, name, caller, argc_text, tuple_text, summary = parts
        number, argc = int(number_text, 0), int(argc_text)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise AbiError(f"{where}: `{name}` is no lower-case identifier")
        if caller not in CALLERS:
            raise AbiError(f"{where}: {name}: the caller is ANY or CONTROL, not `{caller}`")
        if not (tuple_text.startswith("(") and tuple_text.endswith(")")):
            raise AbiError(f"{where}: {name}: the arguments are one parenthesized list")
        inner = tuple_text[1:-1].strip()
        arguments = []
        for argument in split_top_level(inner, where) if inner else []:
            fields = split_top_level(argument.strip()[1:-1], where)
            if len(fields) != 3:
                raise AbiError(f"{where}: {name}: an argument is (name, kind, type), not {argument}")
            arg_name, kind, ctype = fields
            if kind not in KINDS:
                raise AbiError(f"{where}: {name}.{arg_name}: unknown kind `{kind}`")
            if kind == "VAL" and ctype not in UNSIGNED:
                raise AbiError(f"{where}: {name}.{arg_name}: a VAL has an unsigned fixed-width type")
            if kind != "VAL":
                if not arg_name.endswith("_gpa"):
                    raise AbiError(f"{where}: {name}.{arg_name}: a guest-physical address is named *_gpa")
                struct = re.fullmatch(r"struct\s+(\w+)", ctype)
                if not (ctype in SCALARS or (struct and struct.group(1) in structs)):
                    raise AbiError(f"{where}: {name}.{arg_name}: unknown type `{ctype}`")
            arguments.append(Argument(arg_name, kind, ctype))
        if argc != len(arguments) or argc > constants["LAMINA_HYPERCALL_MAX_ARGS"]:
            raise AbiError(f"{where}: {name}: argc is {argc}, the list has {len(arguments)}")
        if not re.fullmatch(r'("[^"\\]*"\s*)+', summary):
            raise AbiError(f"{where}: {name}: the summary is string literals, without escapes")
        calls.append(Hypercall(number, name, caller, arguments, "".join(re.findall(r'"([^"]*)"', summary))))

    if not calls:
        raise AbiError(f"{path}: no entries")
    for previous, call in zip(calls, calls[1:]):
        if call.number <= previous.number:
            raise AbiError(f"{path}: {call.name} ({call.number:#x}) is out of order or reuses a number")
    names = [call.name for call in calls]
    for name in names:
        if names.count(name) > 1:
            raise AbiError(f"{path}: `{name}` appears twice")
    for call in calls:
        if call.number >= constants["LAMINA_HYPERCALL_SLOTS"]:
            raise AbiError(f"{path}: {call.name}: {call.number:#x} has no slot in the hypercall page")
        owners = [group for group in groups if group.first <= call.number <= group.last]
        if len(owners) != 1:
            raise AbiError(f"{path}: {call.name} ({call.number:#x}) lies in {len(owners)} groups, not 1")
        owners[0].calls.append(call)
    return groups, calls


def read_abi(root):
    abi = root / ABI_DIR
    paths = sorted(abi.glob("*.h"))
    headers = {path.name: parse_header(path) for path in paths}
    # Dependencies first: the headers include each other in this order.
    order = ["base.h", "version.h", "errno.h", "vcpu.h", "stats.h", "domain.h", "event_channel.h",
             "shared_page.h", "host.h", "sched.h", "console.h", "hypercalls.h", "hypercall.h"]
    missing = set(headers) - set(order)
    if missing:
        raise AbiError(f"{abi}: {sorted(missing)}: add them to the generator's header order")
    ordered = [headers[name] for name in order if name in headers]
    constants, structs = resolve(ordered)
    groups, calls = parse_table(abi / "hypercalls.def", structs, constants)
    errnos = parse_errnos(abi / "errno.h")
    return headers, constants, structs, groups, calls, errnos


def parse_errnos(path):
    text = path.read_text()
    errnos = [(name, int(number), meaning) for name, number, meaning in
              re.findall(r'X\((\w+),\s*(\d+),\s*"([^"]*)"\)', text)]
    if not errnos:
        raise AbiError(f"{path}: no LAMINA_ERRNO_TABLE entries")
    return errnos


# ---------------------------------------------------------------------------------------------
# Writing the document


def cell(text):
    return text.replace("|", "\\|")


def paragraphs(lines):
    """Comment lines as Markdown: indented lines become code blocks, the rest flows."""
    out, code = [], []
    for line in lines + [""]:
        if line.startswith("  ") and line.strip():
            code.append(line[2:])
            continue
        if code:
            out += ["", "```", *code, "```", ""]
            code = []
        out.append(line)
    return "\n".join(out).strip() + "\n"


HEX_NAMES = set()  # constants written in hex, or made from ones that are


def format_value(define):
    if isinstance(define.value, str):
        return f'`"{define.value}"`'
    words = set(re.findall(r"\b[A-Z_][A-Z0-9_]*\b", define.expression))
    if re.search(r"0x|<<", define.expression) or words & HEX_NAMES:
        HEX_NAMES.add(define.name)
        return f"`{define.value:#x}`"
    return f"`{define.value}`"


def defines_table(defines):
    rows = ["| constant | value | meaning |", "|---|---|---|"]
    for define in defines:
        rows.append(f"| `{define.name}` | {format_value(define)} | {cell(define.comment)} |")
    return "\n".join(rows) + "\n"


def description(header):
    """A header's opening comment without its title line ("Lamina hypercall ABI: ...")."""
    lines = list(header.description)
    title = re.match(r"Lamina hypercall ABI: (.*)", lines[0]) if lines else None
    if title:
        lines[0] = title.group(1)[:1].upper() + title.group(1)[1:]
    return paragraphs(lines)


def body(header):
    """A header's opening comment without its first paragraph, the title."""
    lines = list(header.description)
    while lines and lines[0].strip():
        lines.pop(0)
    return paragraphs(lines)


def enum_table(enum):
    rows = [f"`enum {enum.name}`:", "", "| name | value | meaning |", "|---|---|---|"]
    for member in enum.members:
        rows.append(f"| `{member.name}` | {member.value} | {cell(member.comment)} |")
    return "\n".join(rows) + "\n"


def field_type(field):
    return f"{field.ctype}[{field.count}]" if field.dimension else field.ctype


def struct_table(struct):
    rows = [f"`struct {struct.name}`: {struct.size} bytes, aligned to {struct.align}.", "",
            "| offset | size | type | field | meaning |", "|---|---|---|---|---|"]
    for field in struct.fields:
        rows.append(f"| {field.offset} | {field.size} | `{field_type(field)}` | `{field.name}` | {cell(field.comment)} |")
    return "\n".join(rows) + "\n"


def render_items(header):
    """A header's comments, constants, enums and structs, in its own order."""
    out, defines = [], []

    def flush():
        if defines:
            out.append(defines_table(defines))
            defines.clear()

    for item in header.items:
        if isinstance(item, Define):
            if item.value is None or item.name.endswith("_H"):
                continue
            if item.doc:
                flush()
                out.append(paragraphs(item.doc))
            defines.append(item)
            continue
        flush()
        if isinstance(item, list):
            out.append(paragraphs(item))
        else:
            if item.doc:
                out.append(paragraphs(item.doc))
            out.append(enum_table(item) if isinstance(item, Enum) else struct_table(item))
    flush()
    return "\n".join(out)


def describe_argument(argument):
    if argument.kind == "VAL":
        return f"`{argument.name}` ({argument.ctype})"
    direction = {"IN": "in", "OUT": "out", "INOUT": "in/out", "PAGE": "shared page"}[argument.kind]
    return f"`{argument.name}` &rarr; `{argument.ctype}` ({direction})"


def slot_bytes(code):
    """Bytes in hex; NN stands for the hypercall's number (below 0x80, so one byte)."""
    return " ".join(byte if isinstance(byte, str) else f"{byte:02x}" for byte in code)


def render(root):
    headers, constants, structs, groups, calls, errnos = read_abi(root)
    version = f"{constants['LAMINA_ABI_VERSION_MAJOR']}.{constants['LAMINA_ABI_VERSION_MINOR']}"
    enosys = next(number for name, number, _ in errnos if name == "ENOSYS")
    out = [
        f"# The Lamina hypercall ABI, version {version}",
        "",
        "<!-- Generated by scripts/gen-abi-doc.py from lib/include/lamina/abi/: edit those and run it",
        "     again; the test abi.doc-current fails while this file is stale. -->",
        "",
        "How a guest finds Lamina, enters it, and what every hypercall takes and returns. The headers in",
        "`lib/include/lamina/abi/` are the ABI (C11 and C++20 alike); this page is made from them.",
        "",
        body(headers["base.h"]),
        "## Finding Lamina and the hypercall page",
        "",
        body(headers["version.h"]),
        render_items(headers["version.h"]),
        "The slot code, byte by byte (the rest of each slot is INT3, `cc`):",
        "",
        "| slot | code | bytes |",
        "|---|---|---|",
        f"| a hypercall, Intel | `mov eax, N; vmcall; ret` | `{slot_bytes([0xb8, 'NN', 0, 0, 0, 0x0f, 0x01, 0xc1, 0xc3])}` |",
        f"| a hypercall, AMD | `mov eax, N; vmmcall; ret` | `{slot_bytes([0xb8, 'NN', 0, 0, 0, 0x0f, 0x01, 0xd9, 0xc3])}` |",
        f"| no such hypercall | `mov rax, -{enosys}; ret` | `{slot_bytes([0x48, 0xc7, 0xc0, (-enosys) & 0xff, 0xff, 0xff, 0xff, 0xc3])}` |",
        "",
        "## Calling convention",
        "",
        body(headers["hypercall.h"]),
        "Before any hypercall runs, the hypervisor checks, in this order: the caller is at CPL 0",
        "(else -EPERM, whatever the number); it is in 64-bit mode (else -ENOSYS); the number is",
        "in the table (else -ENOSYS); a *control* call comes from the control domain (else -EPERM);",
        "every value argument fits its type, and a page argument is page-aligned (else -EINVAL).",
        "Guest buffers are read and written through checked guest-physical accessors: an address",
        "that is not the caller's RAM is -EFAULT, never a fault in the hypervisor.",
        "",
        "A long call (marked *preemptible*) may stop part-way to let the CPU do other work: the",
        "hypervisor then leaves RIP on the VMCALL with the argument registers rewritten to describe what",
        "is left, and the guest executes the call again without knowing (Xen's hypercall",
        "continuation). This is why the argument registers are not preserved.",
        "",
        "## Errors",
        "",
        body(headers["errno.h"]),
        "| name | number | meaning |",
        "|---|---|---|",
    ]
    out += [f"| `LAMINA_{name}` | {number} | {cell(meaning)} |" for name, number, meaning in errnos]
    out += [
        "",
        "## Hypercalls",
        "",
        "One number per operation. *Caller*: `any` domain (acting on itself) or the `control` domain",
        "only. Arguments are in RDI, RSI, RDX, R10, R8 in the order listed; a value argument is checked",
        "against its type; `name` &rarr; `type` is the guest-physical address of a `type` (or of an",
        "array of them, as the summary says) that the hypervisor reads (*in*), writes (*out*), both",
        "(*in/out*) or keeps shared (*shared page*). Numbers missing below are free; their",
        "hypercall-page slots answer -ENOSYS. The table is `lib/include/lamina/abi/hypercalls.def`.",
        "",
    ]
    for group in groups:
        out += [f"### {group.first:#04x}&ndash;{group.last:#04x}: {group.title}", "",
                "| number | name | caller | arguments | summary |", "|---|---|---|---|---|"]
        for call in group.calls:
            arguments = "<br>".join(describe_argument(a) for a in call.arguments) or "&mdash;"
            out.append(f"| {call.number:#04x} | `{call.name}` | {CALLERS[call.caller]} | {arguments} | "
                       f"{cell(call.summary)} |")
        out.append("")
    out += ["## Types and constants", "",
            "Offsets and sizes are in bytes. Fields named `pad*` are 0 (checked on input).", ""]
    for name in TYPE_HEADERS:
        header = headers[name]
        out += [f"### {name}", "", description(header), render_items(header)]
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text, (constants, structs, calls, errnos)


def layout_check(abi):
    """C assertions that the compiler sees the values, numbers and offsets this document shows."""
    constants, structs, calls, errnos = abi
    lines = ["/* Generated by scripts/gen-abi-doc.py --layout-check: what the document shows. */",
             "#include <stddef.h>", "#include <lamina/abi/hypercalls.h>", ""]
    for name, value in constants.items():
        if isinstance(value, int):
            lines.append(f'LAMINA_ABI_STATIC_ASSERT({name} == {value}ull, "{name}");')
    for name, number, _ in errnos:
        lines.append(f'LAMINA_ABI_STATIC_ASSERT(LAMINA_{name} == {number}, "LAMINA_{name}");')
    for call in calls:
        lines.append(f'LAMINA_ABI_STATIC_ASSERT(LAMINA_HYPERCALL_{call.name} == {call.number}, "{call.name}");')
    for struct in structs.values():
        lines.append(f'LAMINA_ABI_STATIC_ASSERT(sizeof(struct {struct.name}) == {struct.size}, "{struct.name}");')
        for field in struct.fields:
            lines.append(f"LAMINA_ABI_STATIC_ASSERT(offsetof(struct {struct.name}, {field.name}) == {field.offset}, "
                         f'"{struct.name}.{field.name}");')
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent.parent)
    parser.add_argument("--output", type=pathlib.Path, help="where to write (default: docs/hypercall-abi.md)")
    parser.add_argument("--check", type=pathlib.Path, help="fail, with a diff, if the output differs from this")
    parser.add_argument("--layout-check", type=pathlib.Path, help="also write C offset assertions here")
    args = parser.parse_args()
    try:
        text, abi = render(args.root)
    except AbiError as error:
        print(f"gen-abi-doc: {error}", file=sys.stderr)
        return 1
    output = args.output or args.root / DOC
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    if args.layout_check:
        args.layout_check.parent.mkdir(parents=True, exist_ok=True)
        args.layout_check.write_text(layout_check(abi))
    if args.check:
        checked = args.check.read_text() if args.check.exists() else ""
        if checked != text:
            diff = difflib.unified_diff(checked.splitlines(True), text.splitlines(True), str(args.check), str(output))
            sys.stdout.writelines(diff)
            print(f"gen-abi-doc: {args.check} is stale: run scripts/gen-abi-doc.py", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
