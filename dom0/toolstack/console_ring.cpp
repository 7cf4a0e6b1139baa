#include <dom0/toolstack/console_ring.h>

#include <lamina/assert.h>

namespace lamina::toolstack {
namespace {

// The ring is shared with a domain that may write it while Dom0 reads: every access is atomic,
// so that Dom0 sees some value, never a torn or cached one.
u32 load_index(const u32& index) { return __atomic_load_n(&index, __ATOMIC_ACQUIRE); }
void store_index(u32& index, u32 value) { __atomic_store_n(&index, value, __ATOMIC_RELEASE); }

}  // namespace

void ConsoleRing::attach(lamina_console_ring* ring) {
    LAMINA_ASSERT(ring);
    ring_ = ring;
    out_consumed_ = load_index(ring->out_cons);
    in_produced_ = load_index(ring->in_prod);
    resyncs_ = 0;
}

usize ConsoleRing::read_output(char* buffer, usize capacity) {
    constexpr u32 kSize = LAMINA_CONSOLE_RING_OUT_SIZE;
    const u32 produced = load_index(ring_->out_prod);
    u32 unread = produced - out_consumed_;
    if (unread > kSize) {
        // More than the ring holds, or behind what Dom0 took: none of it can be trusted.
        ++resyncs_;
        out_consumed_ = produced;
        unread = 0;
    }
    const usize count = min(static_cast<usize>(unread), capacity);
    for (usize i = 0; i < count; ++i)
        buffer[i] = __atomic_load_n(&ring_->out[(out_consumed_ + i) % kSize], __ATOMIC_RELAXED);
    out_consumed_ += static_cast<u32>(count);
    store_index(ring_->out_cons, out_consumed_);
    return count;
}

usize ConsoleRing::write_input(const char* data, usize length) {
    constexpr u32 kSize = LAMINA_CONSOLE_RING_IN_SIZE;
    const u32 consumed = load_index(ring_->in_cons);
    u32 unread = in_produced_ - consumed;
    if (unread > kSize) {
        // The domain claims to have read what was never written: start again where it says.
        ++resyncs_;
        in_produced_ = consumed;
        unread = 0;
    }
    const usize count = min(length, static_cast<usize>(kSize - unread));
    for (usize i = 0; i < count; ++i)
        __atomic_store_n(&ring_->in[(in_produced_ + i) % kSize], data[i], __ATOMIC_RELAXED);
    in_produced_ += static_cast<u32>(count);
    store_index(ring_->in_prod, in_produced_);
    return count;
}

void ConsoleHistory::append(const char* data, usize length) {
    for (usize i = 0; i < length; ++i) bytes_[(total_ + i) % kCapacity] = data[i];
    total_ += length;
}

void ConsoleHistory::replay(Sink& sink) const {
    if (total_ <= kCapacity) {
        sink.write(bytes_, static_cast<usize>(total_));
        return;
    }
    const usize oldest = static_cast<usize>(total_ % kCapacity);
    sink.write(bytes_ + oldest, kCapacity - oldest);
    sink.write(bytes_, oldest);
}

}  // namespace lamina::toolstack
