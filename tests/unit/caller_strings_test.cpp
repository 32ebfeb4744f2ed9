// caller_strings_test.cpp — CallerStrings (broker/caller_strings.hpp): a WorkRequest's caller
// strings written as a reused block read back exactly as four CreateStrings would have written
// them, at any alignment of what precedes them, and only for the caller they were written for.
#include <doctest/doctest.h>

#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "caller_strings.hpp"
#include "muster/messages.hpp"

using namespace muster;
using namespace muster::broker;

namespace {

struct Read {
  std::string identity, name, workspace, role, trace_id, node;
};

// A WorkRequest whose node name (`pad` long) comes before the caller strings, so that the block
// lands at a different alignment each time; read back through the verifier.
Read work_request(CallerStrings& strings, const std::shared_ptr<const Caller>& who, std::size_t pad) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto node = fbb.CreateString(std::string(pad, 'n'));
  auto [identity, name, workspace, role] = strings.write(fbb, who);
  auto trace = fbb.CreateString("trace-" + std::to_string(pad));
  auto caller = wire::CreateCallerContext(fbb, identity, name, workspace, role, trace);
  wire::WorkRequestBuilder b(fbb);
  b.add_request_id(pad + 1);
  b.add_node(node);
  b.add_caller(caller);
  auto body = b.Finish();
  fbb.Finish(wire::CreateDaemonMessage(fbb, wire::DaemonBody::WorkRequest, body.Union()),
             wire::DaemonMessageIdentifier());
  std::vector<std::uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  const wire::DaemonMessage* m = read_daemon_message({bytes.data(), bytes.size()});
  REQUIRE(m != nullptr);
  auto* w = m->body_as_WorkRequest();
  REQUIRE(w != nullptr);
  auto* c = w->caller();
  REQUIRE(c != nullptr);
  return {c->identity()->str(), c->name()->str(), c->workspace()->str(), c->role()->str(),
          c->trace_id()->str(), w->node()->str()};
}

}  // namespace

TEST_CASE("caller strings: the reused block reads back as the caller's strings, for that caller only") {
  auto alice = std::make_shared<const Caller>(Caller{"id-alice", "alice", "team-a", "client"});
  auto bob = std::make_shared<const Caller>(
      Caller{"id-bob-with-a-longer-identity", "bob", "a-workspace-name-of-some-length", "admin"});
  CallerStrings strings;
  const std::shared_ptr<const Caller> order[] = {alice, alice, alice, bob, bob, alice, bob};
  for (std::size_t i = 0; i < std::size(order); ++i) {
    for (std::size_t pad = 1; pad <= 4; ++pad) {  // every alignment of the block
      CAPTURE(i);
      CAPTURE(pad);
      const Caller& who = *order[i];
      Read got = work_request(strings, order[i], pad);
      CHECK(got.identity == who.identity);
      CHECK(got.name == who.name);
      CHECK(got.workspace == who.workspace);
      CHECK(got.role == who.role);
      CHECK(got.trace_id == "trace-" + std::to_string(pad));  // what follows is intact
      CHECK(got.node == std::string(pad, 'n'));               // and what precedes
    }
  }
  // An equal caller of another address is written afresh (the block is reused by identity only),
  // and reads back the same.
  auto alice_again = std::make_shared<const Caller>(*alice);
  CHECK(work_request(strings, alice_again, 3).name == "alice");
}
