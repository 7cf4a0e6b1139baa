#include <drivers/acpi/internal.h>

namespace lamina::acpi {
namespace detail {

void copy_name(char* out, const char* name, usize length) {
    usize i = 0;
    for (; i < length && name[i] != '\0'; ++i) {
        bool printable = name[i] >= ' ' && name[i] <= '~';
        out[i] = printable ? name[i] : '?';
    }
    out[i] = '\0';
}

bool sum_bytes(PhysicalReader& reader, u64 phys, u64 length, u8& sum) {
    u64 end;
    if (add_overflows(phys, length, &end)) return false;
    u8 chunk[128];
    sum = 0;
    while (phys < end) {
        usize n = static_cast<usize>(min<u64>(end - phys, sizeof(chunk)));
        if (!reader.read(phys, chunk, n)) return false;
        sum = static_cast<u8>(sum + sum_of(chunk, n));
        phys += n;
    }
    return true;
}

void Line::emit(Sink& log) {
    usize used = str::length(text_);
    text_[used] = '\n';
    log.write(text_, used + 1);
}

TableStatus Table::load(u64 phys, Sink& log) {
    info_ = TableInfo{};
    info_.phys = phys;
    copy_name(info_.signature, "????", 4);

    HeaderLayout header;
    if (!reader_.read(phys, &header, sizeof(header))) {
        detail::diagnose(log, "table at {:#x}: header unreadable, table skipped", phys);
        return info_.status = TableStatus::Unreadable;
    }
    copy_name(info_.signature, header.signature, sizeof(header.signature));
    copy_name(info_.oem_id, header.oem_id, sizeof(header.oem_id));
    copy_name(info_.oem_table_id, header.oem_table_id, sizeof(header.oem_table_id));
    info_.length = header.length;
    info_.revision = header.revision;

    if (info_.length < sizeof(HeaderLayout) || info_.length > kMaxTableLength) {
        diagnose(log, "length {} outside {}..{}, table skipped", info_.length, sizeof(HeaderLayout),
                 kMaxTableLength);
        return info_.status = TableStatus::BadLength;
    }
    u8 sum;
    if (!sum_bytes(reader_, phys, info_.length, sum)) {
        diagnose(log, "cannot read its {} bytes, table skipped", info_.length);
        return info_.status = TableStatus::Unreadable;
    }
    if (sum != 0) {
        diagnose(log, "bad checksum, table skipped");
        return info_.status = TableStatus::BadChecksum;
    }
    return info_.status = TableStatus::Valid;
}

bool Table::read(u64 offset, void* dst, usize size) const {
    u64 end;
    if (add_overflows(offset, size, &end) || end > info_.length) return false;
    return reader_.read(info_.phys + offset, dst, size);
}

bool Table::read_prefix(void* dst, usize size) const {
    str::fill_bytes(dst, 0, size);
    return read(0, dst, static_cast<usize>(min<u64>(size, info_.length)));
}

}  // namespace detail

const char* to_string(TableStatus status) {
    switch (status) {
        case TableStatus::Valid: return "ok";
        case TableStatus::Unreadable: return "unreadable";
        case TableStatus::BadLength: return "bad length";
        case TableStatus::BadChecksum: return "bad checksum";
    }
    return "?";
}

}  // namespace lamina::acpi
