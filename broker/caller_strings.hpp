// caller_strings.hpp — the four strings of a WorkRequest's CallerContext (identity, name,
// workspace, role: PROTOCOL.md §4), written into a message as one block of bytes once they
// were written for the same caller before.
// Owns: the bytes FlatBuffers wrote for the last caller (its strings, lengths and padding as
// CreateString lays them out) and where each string starts in them.
// Must never: write another caller's strings (the block is reused only for the very caller it
// was written for: the core's interned Caller, which never changes), or change the wire: the
// strings read back exactly as four CreateString calls would have written them.
// Why: a burst of calls comes from one caller; four CreateStrings per WorkRequest were ~250
// instructions of musterd's per call, one copy of their bytes is a tenth of that
// (docs/PERFORMANCE.md, "Small calls, session 11").
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "events.hpp"

namespace muster::broker {

class CallerStrings {
 public:
  using Offsets = std::array<flatbuffers::Offset<flatbuffers::String>, 4>;  // identity, name, workspace, role

  // Writes `who`'s four strings into `fbb` (outside a table) and returns their offsets.
  Offsets write(flatbuffers::FlatBufferBuilder& fbb, const std::shared_ptr<const Caller>& who) {
    fbb.Align(sizeof(flatbuffers::uoffset_t));  // the block starts as the strings' first would
    const auto before = fbb.GetSize();
    Offsets out;
    if (who == last_) {
      fbb.PushBytes(block_.data(), block_.size());
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = before + from_start_[i];
      return out;
    }
    out = {fbb.CreateString(who->identity), fbb.CreateString(who->name), fbb.CreateString(who->workspace),
           fbb.CreateString(who->role)};
    // The strings just written are the lowest bytes of the buffer: kept for the next call.
    const auto written = fbb.GetSize() - before;
    block_.assign(fbb.GetCurrentBufferPointer(), fbb.GetCurrentBufferPointer() + written);
    for (std::size_t i = 0; i < out.size(); ++i) from_start_[i] = out[i].o - before;
    last_ = who;
    return out;
  }

 private:
  std::shared_ptr<const Caller> last_;  // held: its address names it as long as the block is kept
  std::vector<std::uint8_t> block_;
  std::array<flatbuffers::uoffset_t, 4> from_start_{};  // each string's offset, past the block's start
};

}  // namespace muster::broker
