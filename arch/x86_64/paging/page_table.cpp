#include <arch/x86_64/paging/page_table.h>

namespace lamina::paging {

const char* status_name(Status status) {
    switch (status) {
        case Status::Ok: return "ok";
        case Status::NotInitialized: return "not initialized";
        case Status::Misaligned: return "misaligned";
        case Status::BadSize: return "bad size";
        case Status::OutsideAddressSpace: return "outside the address space";
        case Status::PhysicalOutOfRange: return "physical address out of range";
        case Status::UnsupportedAttributes: return "attributes not expressible";
        case Status::AlreadyMapped: return "already mapped";
        case Status::NotMapped: return "not mapped";
        case Status::OutOfMemory: return "out of memory";
    }
    return "unknown status";
}

}  // namespace lamina::paging
