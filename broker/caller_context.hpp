// caller_context.hpp — a WorkRequest's CallerContext (PROTOCOL.md §4: the caller's identity,
// name, workspace and role, and the call's trace id), written into a message as the trace id
// and one block of bytes, once the block was written for the same caller before.
// Owns: the bytes FlatBuffers wrote for the last caller (its four strings and the CallerContext
// table with its vtable, as CreateString and CreateCallerContext lay them out), and where the
// table starts in them.
// Must never: write another caller's block (it is reused only for the very caller it was written
// for: the core's interned Caller, which never changes), keep a block whose table points outside
// it (a vtable shared with an earlier table of the same builder), or change what a reader sees:
// the bytes are exactly those the generated code writes in the same order (trace id, the four
// strings, the table).
// Why: a burst of calls comes from one caller; four CreateStrings and the table's five fields
// were ~800 instructions of musterd's per call, one copy of their bytes a tenth of that
// (docs/PERFORMANCE.md, "Small calls, session 11" and "Session 14").
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "events.hpp"
#include "muster/wire/common_generated.h"

namespace muster::broker {

class CallerContextBlock {
 public:
  // Writes the CallerContext of `who` with `trace_id` into `fbb` (outside a table) and returns it.
  flatbuffers::Offset<wire::CallerContext> write(flatbuffers::FlatBufferBuilder& fbb,
                                                 const std::shared_ptr<const Caller>& who,
                                                 std::string_view trace_id) {
    // The trace id first: it ends on a 4-byte boundary (its length), where the block starts; the
    // table's offset to it is then the same wherever the block lands.
    auto trace = fbb.CreateString(trace_id.data(), trace_id.size());
    const auto before = fbb.GetSize();
    if (who == last_) {
      fbb.PushBytes(block_.data(), block_.size());
      return before + table_from_start_;
    }
    auto identity = fbb.CreateString(who->identity);
    auto name = fbb.CreateString(who->name);
    auto workspace = fbb.CreateString(who->workspace);
    auto role = fbb.CreateString(who->role);
    auto table = wire::CreateCallerContext(fbb, identity, name, workspace, role, trace);
    // What was just written is the lowest bytes of the buffer: kept for the next call, unless the
    // table's vtable is not among them (EndTable found an equal one written before and pointed
    // the table at it: such a block would point outside itself wherever it was copied).
    const auto written = fbb.GetSize() - before;
    const std::uint8_t* at = fbb.GetCurrentBufferPointer();
    const std::int64_t vtable =
        std::int64_t{table.o} + flatbuffers::ReadScalar<flatbuffers::soffset_t>(at + (fbb.GetSize() - table.o));
    if (vtable <= std::int64_t{before} || vtable > std::int64_t{fbb.GetSize()}) {
      last_.reset();
      return table;
    }
    block_.assign(at, at + written);
    table_from_start_ = table.o - before;
    last_ = who;
    return table;
  }

 private:
  std::shared_ptr<const Caller> last_;  // held: its address names it as long as the block is kept
  std::vector<std::uint8_t> block_;
  flatbuffers::uoffset_t table_from_start_ = 0;  // the table's offset, past the block's start
};

}  // namespace muster::broker
