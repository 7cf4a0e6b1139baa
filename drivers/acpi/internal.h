// Internals of the ACPI parser shared by its source files: firmware layouts, checked access to a
// table, and the diagnostics format. Not for use outside drivers/acpi.
#pragma once

#include <drivers/acpi/acpi.h>
#include <lamina/format.h>
#include <lamina/string.h>
#include <lamina/types.h>

namespace lamina::acpi::detail {

// ACPI 6.5 5.2.6, Table 5.4: the header every description table starts with.
struct LAMINA_PACKED HeaderLayout {
    char signature[4];
    u32 length;  // of the whole table, header included
    u8 revision;
    u8 checksum;  // makes the bytes of the whole table sum to 0
    char oem_id[6];
    char oem_table_id[8];
    u32 oem_revision;
    u32 creator_id;
    u32 creator_revision;
};
static_assert(sizeof(HeaderLayout) == 36);

// ACPI 6.5 5.2.3.2, Table 5.1.
struct LAMINA_PACKED GasLayout {
    u8 address_space;
    u8 bit_width;
    u8 bit_offset;
    u8 access_size;
    u64 address;
};
static_assert(sizeof(GasLayout) == 12);

inline Gas to_gas(const GasLayout& layout) {
    return Gas{static_cast<AddressSpace>(layout.address_space), layout.bit_width, layout.bit_offset,
               layout.access_size, layout.address};
}

// Far above any real table but the DSDT (which is not read); bounds the checksum walk.
constexpr u32 kMaxTableLength = 1 * MiB;

// Copies a fixed-width firmware name into out (length + 1 chars), stopping at a NUL and
// replacing bytes that would garble a log line.
void copy_name(char* out, const char* name, usize length);

inline u8 sum_of(const void* bytes, usize length) {
    u8 sum = 0;
    for (usize i = 0; i < length; ++i)
        sum = static_cast<u8>(sum + static_cast<const u8*>(bytes)[i]);
    return sum;
}

// Sums the bytes of [phys, phys + length) in bounded chunks. Returns false when a byte cannot be
// read or the range wraps around the address space.
bool sum_bytes(PhysicalReader& reader, u64 phys, u64 length, u8& sum);

// Builds one diagnostic line and hands it to the log in a single write.
class Line {
public:
    Line() : sink_(text_, sizeof(text_) - 1) {}  // leaves room for the newline
    Sink& sink() { return sink_; }
    void emit(Sink& log);

private:
    char text_[160];
    BufferSink sink_;
};

template <typename... Args>
void diagnose(Sink& log, const char* fmt, const Args&... args) {
    Line line;
    format(line.sink(), "acpi: ");
    format(line.sink(), fmt, args...);
    line.emit(log);
}

// A description table whose header was read; reads through it stay inside its length.
class Table {
public:
    explicit Table(PhysicalReader& reader) : reader_(reader) {}

    // Reads and checks the header at phys, then the checksum over the whole table. Reports what
    // is wrong. info() describes the table afterwards, whatever the outcome.
    TableStatus load(u64 phys, Sink& log);

    const TableInfo& info() const { return info_; }
    u64 phys() const { return info_.phys; }
    u32 length() const { return info_.length; }
    bool has_signature(const char* signature) const {
        return str::compare_bytes(info_.signature, signature, 4) == 0;
    }

    bool read(u64 offset, void* dst, usize size) const;
    // Copies min(size, length) bytes and zeroes the rest: the fields an older, shorter revision
    // of a table lacks read as 0. Callers check length() before trusting a field that may be
    // cut in two.
    bool read_prefix(void* dst, usize size) const;

    // "acpi: MADT at 0x7fe1234: <message>"
    template <typename... Args>
    void diagnose(Sink& log, const char* fmt, const Args&... args) const {
        Line line;
        format(line.sink(), "acpi: {} at {:#x}: ", info_.signature, info_.phys);
        format(line.sink(), fmt, args...);
        line.emit(log);
    }

private:
    PhysicalReader& reader_;
    TableInfo info_;
};

// Reports the entries a FixedList could not hold, naming them with what.
template <typename List>
void report_dropped(const Table& table, Sink& log, const List& list, const char* what) {
    if (list.dropped != 0)
        table.diagnose(log, "{} {} beyond the {} supported, ignored", list.dropped, what,
                       list.capacity());
}

// Decoders for the tables the hypervisor uses. Each one gets a table whose header and checksum
// are valid, and returns false (leaving out as "not present") when the table is unusable.
bool decode_madt(const Table& table, Madt& out, Sink& log);
bool decode_fadt(const Table& table, Fadt& out, Sink& log);
bool decode_hpet(const Table& table, Hpet& out, Sink& log);
bool decode_mcfg(const Table& table, Mcfg& out, Sink& log);

}  // namespace lamina::acpi::detail
