// align.hpp — received frames made safe for FlatBuffers' in-place reads.
// FlatBuffers reads its scalars where they lie, so a buffer must start 8-byte aligned (the
// widest scalar; nested Values are forced to 8). libzmq's zero-copy receive hands out a frame
// at whatever offset it had in libzmq's read buffer, which makes every read of it undefined
// behaviour (UBSan: "misaligned address"). recv_router aligns the payload it returns; any other
// receiver calls align_payload before reading a message.
#pragma once

#include <cstdint>

#include <zmq.hpp>

namespace muster {

// Copies `m` into a message of its own (libzmq allocates those 8-byte aligned) unless it
// already starts 8-byte aligned, which most frames do: the copy is the exception.
inline void align_payload(zmq::message_t& m) {
  if (reinterpret_cast<std::uintptr_t>(m.data()) % 8 == 0) return;
  m = zmq::message_t(m.data(), m.size());
}

}  // namespace muster
