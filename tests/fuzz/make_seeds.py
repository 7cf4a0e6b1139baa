#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into <output>/<harness>/ (the build runs it:
<build>/fuzz/seeds/).

Small, valid inputs modelled on what each parser meets (GRUB's boot information under SeaBIOS
and OVMF, a PVH kernel as the linker lays it out, QEMU's q35 ACPI tables, the test guests' configs,
shell sessions, the MMIO instruction forms drivers use, guests whose page tables lead to them).
Deterministic: running it again writes the same bytes. Inputs the fuzzers found that once
crashed a parser are among them, rebuilt here, so that every run tries them again.

    tests/fuzz/make_seeds.py --output build/fuzz/seeds
"""

import argparse
import struct
from pathlib import Path

CORPUS = None  # the output directory, from the command line


def write(harness, name, data):
    directory = CORPUS / harness
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def align(data, alignment):
    return data + bytes(-len(data) % alignment)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def checksum(data):
    return (-sum(data)) & 0xFF


# ---- Multiboot2 boot information (spec 3.6) -------------------------------------------------

def mb2_tag(tag_type, body=b""):
    return align(u32(tag_type) + u32(8 + len(body)) + body, 8)


def mb2_info(*tags):
    body = b"".join(tags) + mb2_tag(0)
    return u32(8 + len(body)) + u32(0) + body


def mb2_memory_map(entries):
    return mb2_tag(6, u32(24) + u32(0) + b"".join(u64(b) + u64(n) + u32(t) + u32(0) for b, n, t in entries))


def rsdp_bytes(revision, rsdt, xsdt=0, oem=b"BOCHS "):
    v1 = bytearray(b"RSD PTR " + b"\0" + oem + bytes([revision]) + u32(rsdt))
    v1[8] = checksum(v1)
    if revision < 2:
        return bytes(v1)
    v2 = bytearray(v1 + u32(36) + u64(xsdt) + b"\0\0\0\0")
    v2[32] = checksum(v2)
    return bytes(v2)


def multiboot2_seeds():
    qemu_map = [(0x0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x100000, 0x7EE0000, 1),
                (0x7FE0000, 0x20000, 2), (0xFFFC0000, 0x40000, 2)]
    write("multiboot2", "seabios.bin", mb2_info(
        mb2_tag(21, u32(0x100000)),
        mb2_tag(1, b"selftest emu_exit\0"),
        mb2_tag(2, b"GRUB 2.06\0"),
        mb2_tag(3, u32(0x200000) + u32(0x201000) + b"ticker\0"),
        mb2_tag(3, u32(0x202000) + u32(0x202040) + b"ticker.cfg\0"),
        mb2_tag(4, u32(639) + u32(129664)),
        mb2_tag(5, u32(0xE0) + u32(0xFFFFFFFF) + u32(0xFFFFFFFF)),
        mb2_memory_map(qemu_map),
        mb2_tag(8, u64(0xB8000) + u32(160) + u32(80) + u32(25) + bytes([16, 2]) + u16(0)),
        mb2_tag(14, rsdp_bytes(0, 0x7FE14D2)),
    ))
    efi_descriptors = b"".join(
        u32(t) + u32(0) + u64(base) + u64(0) + u64(pages) + u64(0xF) + bytes(8)
        for t, base, pages in [(7, 0x0, 0x9F), (3, 0x100000, 0x700), (7, 0x800000, 0x7000)])
    write("multiboot2", "ovmf.bin", mb2_info(
        mb2_tag(1, b"loglvl=debug smp=2\0"),
        mb2_tag(2, b"GRUB 2.06\0"),
        mb2_tag(12, u64(0x7F9EE018)),
        mb2_memory_map([(0x0, 0xA0000, 1), (0x100000, 0x7F00000, 1), (0x8000000, 0x100000, 4)]),
        mb2_tag(8, u64(0x80000000) + u32(5120) + u32(1280) + u32(800) + bytes([32, 1]) + u16(0) +
                bytes([16, 8, 8, 8, 0, 8])),
        mb2_tag(15, rsdp_bytes(2, 0x7FB7E074, 0x7FB7E0E8)),
        mb2_tag(17, u32(48) + u32(1) + efi_descriptors),
        mb2_tag(18),
        mb2_tag(20, u64(0x7E5F2018)),
    ))
    palette = bytes(range(3 * 4))
    write("multiboot2", "indexed_framebuffer.bin", mb2_info(
        mb2_tag(8, u64(0xA0000) + u32(320) + u32(320) + u32(200) + bytes([8, 0]) + u16(0) + u16(4) + palette),
    ))
    write("multiboot2", "end_tag_only.bin", mb2_info())
    # Every option of the hypervisor's command line, in each spelling, and some mistakes.
    command_line = (b'console=com2 baud=9600 loglvl=debug smp=0x10 no-selftest emu-exit apic="x2apic" '
                    b'"crash=none" bench=yes dom0_mem=512M no-smp smp=999 bogus "open\0')
    write("multiboot2", "command_line.bin", mb2_info(mb2_tag(1, command_line)))
    # Found by this harness: quoted tokens holding a newline and an escape sequence were echoed
    # raw into their diagnostics (tests/unit/test_cmdline.cpp has the regression case).
    write("multiboot2", "found_quoted_newline.bin",
          mb2_info(mb2_tag(1, b'console=com1 "crash=pa\nnic" smp=2 "loglvl=\x1b[2J\0')))


# ---- ELF64 PVH kernels ----------------------------------------------------------------------

def elf_note(name, note_type, desc):
    name_bytes = name + b"\0"
    return u32(len(name_bytes)) + u32(len(desc)) + u32(note_type) + align(name_bytes, 4) + align(desc, 4)


def elf_image(segments, entry=0x100000):
    """segments: (p_type, p_flags, paddr, file bytes, memsz); p_type 1 = PT_LOAD, 4 = PT_NOTE."""
    headers_end = 64 + 56 * len(segments)
    header = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + u16(2) + u16(62) + u32(1) + u64(entry) + u64(64) +
              u64(0) + u32(0) + u16(64) + u16(56) + u16(len(segments)) + u16(64) + u16(0) + u16(0))
    program_headers = b""
    contents = b""
    for p_type, p_flags, paddr, data, memsz in segments:
        offset = headers_end + len(contents)
        program_headers += (u32(p_type) + u32(p_flags) + u64(offset) + u64(paddr) + u64(paddr) + u64(len(data)) +
                            u64(memsz) + u64(0x1000 if p_type == 1 else 4))
        contents += data
    return header + program_headers + contents


def elf_seeds():
    code = bytes([0xFA, 0xF4, 0xEB, 0xFD]) * 16  # cli; hlt; jmp $-1
    pvh32 = elf_note(b"Xen", 18, u32(0x100000))
    write("elf_pvh", "pvh_kernel.elf", elf_image([(1, 5, 0x100000, code, 0x2000), (4, 4, 0, pvh32, 0)]))
    # As Linux is linked: several Xen notes in one PT_NOTE, a 64-bit entry, text and data with a BSS.
    notes = (elf_note(b"Xen", 6, b"linux\0") + elf_note(b"Xen", 7, b"2.6\0") + elf_note(b"GNU", 3, bytes(20)) +
             elf_note(b"Xen", 18, u64(0x100040)))
    write("elf_pvh", "linux_like.elf", elf_image([
        (1, 5, 0x100000, code + code, 0x1000),
        (1, 6, 0x101000, bytes(range(64)), 0x3000),
        (4, 4, 0, notes, 0),
    ], entry=0xFFFFFFFF81000000))
    write("elf_pvh", "no_pvh_note.elf", elf_image([(1, 7, 0x200000, code, 0x1000)]))


# ---- ACPI: firmware memory at 0xE0000, after the harness's flag byte ------------------------

ACPI_BASE = 0xE0000
FIX_CHECKSUMS, SCAN_FOR_RSDP, RSDP_V1_COPY = 1, 2, 4


def acpi_table(signature, revision, body, oem_table_id=b"BXPC    "):
    length = 36 + len(body)
    table = bytearray(signature + u32(length) + bytes([revision, 0]) + b"BOCHS " + oem_table_id + u32(1) +
                      b"BXPC" + u32(1) + body)
    table[9] = checksum(table)
    return bytes(table)


def gas(space, width, address, access=0):
    return bytes([space, width, 0, access]) + u64(address)


def fadt():
    body = bytearray(276 - 36)
    def put(offset, data):
        body[offset - 36:offset - 36 + len(data)] = data
    put(36, u32(0))              # FIRMWARE_CTRL
    put(40, u32(0x7FE0040))      # DSDT
    put(46, u16(9))              # SCI_INT
    put(48, u32(0xB2))           # SMI_CMD
    put(56, u32(0x600))          # PM1a_EVT_BLK
    put(64, u32(0x604))          # PM1a_CNT_BLK
    put(76, u32(0x608))          # PM_TMR_BLK
    put(88, bytes([4, 2, 0, 4])) # PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
    put(108, bytes([0x32]))      # CENTURY
    put(109, u16(0x3))           # IAPC_BOOT_ARCH: legacy devices, 8042
    put(112, u32(0x4A5 | 1 << 10))  # flags, RESET_REG_SUP
    put(116, gas(1, 8, 0xCF9))   # RESET_REG
    put(128, bytes([0x6]))       # RESET_VALUE
    put(140, u64(0x7FE0040))     # X_DSDT
    put(148, gas(1, 32, 0x600))  # X_PM1a_EVT_BLK
    put(172, gas(1, 16, 0x604))  # X_PM1a_CNT_BLK
    put(208, gas(1, 32, 0x608))  # X_PM_TMR_BLK
    return acpi_table(b"FACP", 6, bytes(body))


def madt():
    entries = (
        bytes([0, 8, 0, 0]) + u32(1) +                      # local APIC uid 0, id 0, enabled
        bytes([0, 8, 1, 1]) + u32(2) +                      # local APIC uid 1, id 1, online capable
        bytes([1, 12, 0, 0]) + u32(0xFEC00000) + u32(0) +   # I/O APIC
        bytes([2, 10, 0, 0]) + u32(2) + u16(0) +            # IRQ 0 -> GSI 2
        bytes([2, 10, 0, 9]) + u32(9) + u16(0xD) +          # IRQ 9, level, active high
        bytes([3, 8]) + u16(0x5) + u32(23) +                # NMI source
        bytes([4, 6, 0xFF]) + u16(0x5) + bytes([1]) +       # local APIC NMI, all processors, LINT1
        bytes([9, 16]) + u16(0) + u32(300) + u32(1) + u32(2) +   # local x2APIC
        bytes([10, 12]) + u16(0) + u32(0xFFFFFFFF) + bytes([1, 0, 0, 0]) +  # local x2APIC NMI
        bytes([5, 12]) + u16(0) + u64(0xFEE00000)           # local APIC address override
    )
    return acpi_table(b"APIC", 5, u32(0xFEE00000) + u32(1) + entries)


def hpet():
    return acpi_table(b"HPET", 1, u32(0x8086A201) + gas(0, 64, 0xFED00000) + bytes([0]) + u16(0x80) + bytes([0]))


def mcfg():
    return acpi_table(b"MCFG", 1, bytes(8) + u64(0xB0000000) + u16(0) + bytes([0, 0xFF]) + u32(0))


def acpi_memory(rsdp_revision, layout_offset=0, entries=("FACP", "APIC", "HPET", "MCFG", "DMAR")):
    """RSDP at layout_offset, then the RSDT, the XSDT and the tables, each 16-byte aligned."""
    tables = {"FACP": fadt(), "APIC": madt(), "HPET": hpet(), "MCFG": mcfg(),
              "DMAR": acpi_table(b"DMAR", 1, bytes([38, 1]) + bytes(10))}
    tables_at = {}
    cursor = layout_offset + 48 + 16 * 4 + 16 * 6  # room for the RSDP and both root tables
    for name in entries:
        tables_at[name] = cursor
        cursor += (len(tables[name]) + 15) & ~15
    rsdt_at, xsdt_at = layout_offset + 48, layout_offset + 48 + 16 * 4
    rsdt = acpi_table(b"RSDT", 1, b"".join(u32(ACPI_BASE + tables_at[n]) for n in entries))
    xsdt = acpi_table(b"XSDT", 1, b"".join(u64(ACPI_BASE + tables_at[n]) for n in entries))
    assert len(rsdt) <= 16 * 4 and len(xsdt) <= 16 * 6
    memory = bytearray(cursor)
    rsdp = rsdp_bytes(rsdp_revision, ACPI_BASE + rsdt_at, ACPI_BASE + xsdt_at if rsdp_revision >= 2 else 0)
    memory[layout_offset:layout_offset + len(rsdp)] = rsdp
    memory[rsdt_at:rsdt_at + len(rsdt)] = rsdt
    memory[xsdt_at:xsdt_at + len(xsdt)] = xsdt
    for name in entries:
        memory[tables_at[name]:tables_at[name] + len(tables[name])] = tables[name]
    return bytes(memory)


def acpi_seeds():
    write("acpi", "q35_xsdt.bin", bytes([0]) + acpi_memory(2))
    write("acpi", "acpi1_rsdt.bin", bytes([RSDP_V1_COPY]) + acpi_memory(0, entries=("FACP", "APIC")))
    write("acpi", "scan_bios_area.bin", bytes([SCAN_FOR_RSDP]) + acpi_memory(2, layout_offset=0x40))
    # Broken sums that the harness repairs: the fuzzer's mutations keep reaching the decoders.
    broken = bytearray(acpi_memory(2, entries=("APIC", "MCFG", "HPET")))
    for i in range(len(broken) - 9):
        if broken[i:i + 4] in (b"APIC", b"MCFG", b"HPET"):
            broken[i + 9] ^= 0x5A
    write("acpi", "fixed_checksums.bin", bytes([FIX_CHECKSUMS | SCAN_FOR_RSDP]) + bytes(broken))


# ---- xl configs: the file, two NULs, then NUL-separated overrides ---------------------------

def xl_config_seeds():
    guests = Path(__file__).resolve().parent.parent / "guests"
    for config in sorted(guests.glob("*.cfg")):
        write("xl_config", config.name, config.read_bytes())
    write("xl_config", "every_key.cfg", """# Every key Lamina reads, and some it does not.
name = "web-1.example"
type = "pvh"
memory = 0x100
maxmem = 0400
vcpus = 2; maxvcpus = 4
cpus = "all,^7"
cpu_weight = 512
cap = 150
kernel = '/boot/guests/ticker'
ramdisk = "initrd.img"
root = "/dev/xvda1"
extra = "console=hvc0"
extra += " earlyprintk=xen\\t\\x41"
on_poweroff = "destroy"
on_reboot = "restart"
on_watchdog = "preserve"
on_crash = "coredump-restart"
on_soft_reset = "soft-reset"
disk = [ 'phy:/dev/vg/guest,xvda,w',
         'file:/srv/cd.iso,hdc:cdrom,r', ]   # not supported yet: ignored
vif = [ [ "bridge=xenbr0" ] ]\r
""")
    write("xl_config", "with_overrides.cfg",
          'name = "ticker"\nmemory = 8\nkernel = "ticker"\n\0\0cmdline=console=hvc0 ticks=3\0vcpus=2\0cpus=0-3,5\0'
          'name=ticker2\0memory=16')


# ---- Shell sessions: bytes as typed on the serial terminal ----------------------------------

def shell_seeds():
    write("shell", "commands.txt",
          "help\nhelp create\nlist\nlist web\npause 3\ndestroy lost\n"
          "create -p ticker.cfg name=web2 memory=16 'cmdline=console=hvc0 ticks=3'\n"
          "create ticker vcpus=2 cpus=0-3,^2\n"
          "sched-credit -d web -w512 -c 50\nsched-credit -s -t 30 -r 1000\n"
          "vcpu-pin web all 0-3,^2\nvcpu-pin 3 1 all\ntop -n 3 -d1\nconsole -n web\n")
    write("shell", "quoting.txt",
          "create \"ticker.cfg\" name=a\\ b 'extra=x y' \"cmdline=\\\"quoted\\\"\" # comment\n"
          "repeat 3 'pause web ; list' ; list\n"
          "unknown-command -x -- -y\n")
    # Left, Backspace, End, Home, Delete, history Up/Down, Ctrl-W, Ctrl-U, Ctrl-K, Ctrl-C, CR LF; 0xff
    # is the harness's notice from a domain in the middle of a line.
    write("shell", "line_editing.bin",
          b"pause wbe\x1b[D\x1b[D\x7fwe\x1b[F\r\n"
          b"\x1b[A\x1b[A\x1b[B\x1b[H\x1b[3~\x01\x05\x17list\x15top\x0b\x03"
          b"\tlist\x1bOH\x1b[1~\xff\x1b[4~\x1b[99;5Z\x02\x06\x10\x0e\x0c\r")


# ---- Instructions at MMIO: byte 0 is the mode (0: 16-bit, 1: 32-bit, 2: 64-bit) -------------

def decoder_seeds():
    instructions = {
        "mov_store_64": (2, "89 08"),                      # mov [rax], ecx
        "mov_load_rip_64": (2, "8b 05 f0 0f 00 00"),       # mov eax, [rip+0xff0]
        "mov_imm_disp8_64": (2, "c7 43 10 78 56 34 12"),   # mov dword [rbx+0x10], 0x12345678
        "movzx_64": (2, "0f b6 02"),                       # movzx eax, byte [rdx]
        "movsxd_64": (2, "48 63 06"),                      # movsxd rax, dword [rsi]
        "lock_add_64": (2, "f0 01 07"),                    # lock add [rdi], eax
        "test_imm_64": (2, "f6 00 01"),                    # test byte [rax], 1
        "xchg_64": (2, "48 87 11"),                        # xchg [rcx], rdx
        "moffs_64": (2, "a1 40 00 d0 fe 00 00 00 00"),     # mov eax, [0xfed00040]
        "fs_sib_64": (2, "64 43 8b 44 ac 40"),             # mov eax, fs:[r12+r13*4+0x40]
        "cmp_imm8_64": (2, "83 38 05"),                    # cmp dword [rax], 5
        "mov_word_64": (2, "66 89 00"),                    # mov [rax], ax
        "mov_rex_byte_64": (2, "40 88 30"),                # mov [rax], sil
        "mov_sib_32": (1, "89 84 73 00 10 00 00"),         # mov [ebx+esi*2+0x1000], eax
        "moffs_32": (1, "a3 40 00 d0 fe"),                 # mov [0xfed00040], eax
        "movsx_32": (1, "66 0f bf 45 08"),                 # movsx ax, word [ebp+8]
        "mov_byte_16": (0, "88 00"),                       # mov [bx+si], al
        "mov_disp16_16": (0, "8b 16 40 00"),               # mov dx, [0x40]
        "mov_prefixes_16": (0, "66 67 26 89 07"),          # mov es:[edi], eax
        "or_high_byte_16": (0, "08 67 02"),                # or [bx+2], ah
    }
    for name, (mode, hex_bytes) in instructions.items():
        write("instruction_decoder", name + ".bin", bytes([mode]) + bytes.fromhex(hex_bytes))


# ---- The MMIO path: a Scenario (tests/fuzz/mmio.cpp), then guest RAM from gpa 0 -------------

PAGING_OFF, PAGING_32, PAGING_PAE, PAGING_4LEVEL, PAGING_5LEVEL = range(5)
WRITE_FAULT, USER_MODE, NO_EXECUTE = 1 << 6, 1 << 5, 1 << 3
PROTECTED, DEFAULT_32, LONG_CODE = 1, 2, 4
DEVICE = 0xFED00000


def mmio_scenario(paging, options, code, rip, gpa, ram, cr3=0, physical_bits=36):
    return bytes([paging, options, code, physical_bits]) + u32(0) + u64(rip) + u64(cr3) + u64(gpa) + ram


def mmio_seeds():
    # Paging structures that map themselves: entry 0 of the table at gpa 0 points back at it, so
    # every level walks through page 0 and linear page 0 is gpa page 0, where the code follows.
    def self_mapped(entry, entry_size, code_at, code):
        table = (u64(entry) if entry_size == 8 else u32(entry)) * (code_at // entry_size)
        return table + bytes.fromhex(code)

    write("mmio", "real_mode.bin", mmio_scenario(PAGING_OFF, WRITE_FAULT, 0, 0x10, DEVICE + 0xC0,
                                                 bytes(16) + bytes.fromhex("89 07")))  # mov [bx], ax
    write("mmio", "flat_32.bin", mmio_scenario(PAGING_OFF, WRITE_FAULT, PROTECTED | DEFAULT_32, 0x10, DEVICE,
                                               bytes(16) + bytes.fromhex("89 08")))  # mov [eax], ecx
    write("mmio", "paging_32.bin", mmio_scenario(PAGING_32, 0, PROTECTED | DEFAULT_32, 0x10, DEVICE + 0xC0,
                                                 self_mapped(0x7, 4, 0x10, "8b 03")))  # mov eax, [ebx]
    write("mmio", "paging_pae.bin", mmio_scenario(PAGING_PAE, WRITE_FAULT, PROTECTED | DEFAULT_32, 0x20, DEVICE,
                                                  self_mapped(0x1, 8, 0x20, "c7 00 01 00 00 00")))
    write("mmio", "long_4level.bin", mmio_scenario(PAGING_4LEVEL, WRITE_FAULT | NO_EXECUTE, LONG_CODE, 0x10, DEVICE,
                                                   self_mapped(0x7, 8, 0x10, "48 89 08")))  # mov [rax], rcx
    # mov eax, [rip+0]: the operand is the byte after the instruction, 0x16.
    write("mmio", "long_5level_rip.bin", mmio_scenario(PAGING_5LEVEL, 0, LONG_CODE, 0x10, DEVICE + 0x16,
                                                       self_mapped(0x7, 8, 0x10, "8b 05 00 00 00 00")))
    # User code on a supervisor page: the fetch faults.
    write("mmio", "user_fetch_fault.bin", mmio_scenario(PAGING_4LEVEL, USER_MODE, LONG_CODE, 0x10, DEVICE,
                                                        self_mapped(0x3, 8, 0x10, "89 08")))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="the directory to write the corpora into")
    CORPUS = parser.parse_args().output
    multiboot2_seeds()
    elf_seeds()
    acpi_seeds()
    xl_config_seeds()
    shell_seeds()
    decoder_seeds()
    mmio_seeds()
