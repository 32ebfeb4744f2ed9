// caller_context_test.cpp — CallerContextBlock (broker/caller_context.hpp): a WorkRequest's
// CallerContext written as the trace id and a reused block is byte for byte what the generated
// code writes, at any alignment of what precedes it, and the block is reused only for the caller
// it was written for, and never when its table shares a vtable written before it.
#include <doctest/doctest.h>

#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "caller_context.hpp"
#include "muster/messages.hpp"

using namespace muster;
using namespace muster::broker;

namespace {

using Buf = std::vector<std::uint8_t>;

// A WorkRequest whose node name (`pad` long) comes before the caller context, so that the block
// lands at a different alignment each time. `block`: written through it, else with the generated
// code alone (the reference). `shared_vtable`: a CallerContext table is written first, so the
// call's own table shares its vtable.
Buf work_request(CallerContextBlock* block, const Caller& who, const std::shared_ptr<const Caller>& interned,
                   std::size_t pad, bool shared_vtable = false) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto node = fbb.CreateString(std::string(pad, 'n'));
  flatbuffers::Offset<wire::CallerContext> earlier;
  if (shared_vtable) {
    auto s = fbb.CreateString("x");
    earlier = wire::CreateCallerContext(fbb, s, s, s, s, s);
  }
  const std::string trace = "trace-" + std::to_string(pad);
  flatbuffers::Offset<wire::CallerContext> caller;
  if (block) {
    caller = block->write(fbb, interned, trace);
  } else {
    auto t = fbb.CreateString(trace);
    auto identity = fbb.CreateString(who.identity);
    auto name = fbb.CreateString(who.name);
    auto workspace = fbb.CreateString(who.workspace);
    auto role = fbb.CreateString(who.role);
    caller = wire::CreateCallerContext(fbb, identity, name, workspace, role, t);
  }
  wire::WorkRequestBuilder b(fbb);
  b.add_request_id(pad + 1);
  b.add_node(node);
  b.add_caller(caller);
  auto body = b.Finish();
  fbb.Finish(wire::CreateDaemonMessage(fbb, wire::DaemonBody::WorkRequest, body.Union()),
             wire::DaemonMessageIdentifier());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

void check_reads_back(const Buf& bytes, const Caller& who, std::size_t pad) {
  const wire::DaemonMessage* m = read_daemon_message({bytes.data(), bytes.size()});
  REQUIRE(m != nullptr);
  auto* w = m->body_as_WorkRequest();
  REQUIRE(w != nullptr);
  auto* c = w->caller();
  REQUIRE(c != nullptr);
  CHECK(c->identity()->str() == who.identity);
  CHECK(c->name()->str() == who.name);
  CHECK(c->workspace()->str() == who.workspace);
  CHECK(c->role()->str() == who.role);
  CHECK(c->trace_id()->str() == "trace-" + std::to_string(pad));
  CHECK(w->node()->str() == std::string(pad, 'n'));
}

}  // namespace

TEST_CASE("caller context: the reused block is byte for byte the generated code's, for its caller only") {
  auto alice = std::make_shared<const Caller>(Caller{"id-alice", "alice", "team-a", "client"});
  auto bob = std::make_shared<const Caller>(
      Caller{"id-bob-with-a-longer-identity", "bob", "a-workspace-name-of-some-length", "admin"});
  CallerContextBlock block;
  const std::shared_ptr<const Caller> order[] = {alice, alice, alice, bob, bob, alice, bob};
  for (std::size_t i = 0; i < std::size(order); ++i) {
    for (std::size_t pad = 1; pad <= 4; ++pad) {  // every alignment of the block
      CAPTURE(i);
      CAPTURE(pad);
      const Caller& who = *order[i];
      Buf got = work_request(&block, who, order[i], pad);
      CHECK(got == work_request(nullptr, who, order[i], pad));
      check_reads_back(got, who, pad);
    }
  }
  // An equal caller of another address is written afresh (the block is reused by identity only),
  // and reads back the same.
  auto alice_again = std::make_shared<const Caller>(*alice);
  CHECK(work_request(&block, *alice_again, alice_again, 3) == work_request(nullptr, *alice, alice, 3));
}

TEST_CASE("caller context: a table that shares a vtable written before it is not kept as a block") {
  auto carol = std::make_shared<const Caller>(Caller{"id-carol", "carol", "ws", "client"});
  CallerContextBlock block;
  // Its table points at the earlier table's vtable, outside what it wrote: not kept...
  Buf shared = work_request(&block, *carol, carol, 2, /*shared_vtable=*/true);
  CHECK(shared == work_request(nullptr, *carol, carol, 2, /*shared_vtable=*/true));
  check_reads_back(shared, *carol, 2);
  // ...so the next message for the same caller writes its own (a copied block would point at a
  // vtable that is not there).
  for (std::size_t pad = 1; pad <= 4; ++pad) {
    CAPTURE(pad);
    Buf got = work_request(&block, *carol, carol, pad);
    CHECK(got == work_request(nullptr, *carol, carol, pad));
    check_reads_back(got, *carol, pad);
  }
}
