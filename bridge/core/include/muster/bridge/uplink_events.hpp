// uplink_events.hpp — what the uplink does with each event from the Hurozo WebSocket: serve
// it now, hold it while its node's registration request is on its way, or ignore it.
// Owns: the serving rules (docs/BRIDGE.md "Events"): an event is served only for a node this
// uplink registered successfully, with that registration's output keys; an event for a node
// whose registration request is on its way (the server may already have accepted it) is held
// and, once that registration is answered, served in arrival order if it succeeded or ignored
// if it was refused or failed; any other event is ignored, unanswered (another worker of the
// same user may serve that name). Holding is bounded: `max_held` events in all,
// `max_held_per_node` for one node, each at most `max_hold_ms`; beyond that an event is
// ignored, with the reason. A uuid that is held or in flight is a duplicate.
// Must never: serve an event for a node not registered successfully, serve one uuid twice at
// the same time, reorder the held events of a node, or hold an event without bound.
// Socket-free and clock-free: the registry's NodeStatus and `now_ms` are passed in.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "muster/bridge/hurozo.hpp"
#include "muster/bridge/uplink_registry.hpp"

namespace muster::bridge {

// EventAction::why of an event for a node this uplink neither serves nor is registering.
inline constexpr std::string_view kNotRegisteredByThisUplink = "not registered by this uplink";

struct UplinkEventsOptions {
  std::size_t max_held = 1000;          // events held at once, all nodes together
  std::size_t max_held_per_node = 100;  // events held at once for one node
  std::int64_t max_hold_ms = 35000;     // how long one event may wait for its node's registration
};

// What to do with one event.
struct EventAction {
  enum class Kind {
    Serve,      // submit it to musterd, then answer with exactly `outputs`
    Hold,       // wait: its node's registration request is on its way
    Ignore,     // leave it unanswered; `why` says why (for the log)
    Duplicate,  // its uuid is already held or in flight: ignored
  };
  Kind kind;
  RemoteEvent event;                 // Hold: its node and uuid only (the inputs stay held)
  std::vector<std::string> outputs;  // Serve: the registered output keys
  std::string why;                   // Ignore
  std::int64_t held_ms = -1;         // Serve/Ignore of a held event: how long it was held; else -1
};

class UplinkEvents {
 public:
  explicit UplinkEvents(UplinkEventsOptions options = {}) : opt_(options) {}

  // An event from the WebSocket; `node` is the registry's status of its node now. Events of
  // the same node held before it that can be settled now come first in the result.
  std::vector<EventAction> on_event(RemoteEvent event, NodeStatus node, std::int64_t now_ms);
  // A registration attempt for `node` is over (answered or failed); `status` is the registry's
  // status of the node after it. Its held events are served (registered) or ignored (refused or
  // failed), in arrival order; they stay held if another request for it is on its way.
  std::vector<EventAction> settle(const std::string& node, const NodeStatus& status, std::int64_t now_ms);
  // Held events that waited `max_hold_ms`: ignored.
  std::vector<EventAction> expire(std::int64_t now_ms);
  // Every held event, ignored with `why` (the uplink is stopping).
  std::vector<EventAction> drop_held(const std::string& why, std::int64_t now_ms);
  // The answer to a served event was sent (or given up): its uuid is no longer in flight.
  void answered(const std::string& uuid);

  // When the oldest held event expires (nullopt: none held).
  std::optional<std::int64_t> next_expiry() const;
  std::size_t held() const { return held_.size(); }
  std::size_t in_flight() const { return in_flight_.size(); }

 private:
  struct Held {
    RemoteEvent event;
    std::int64_t since_ms;
  };
  EventAction serve(RemoteEvent event, std::vector<std::string> outputs, std::int64_t held_ms);
  EventAction ignore(RemoteEvent event, std::string why, std::int64_t held_ms);
  bool known(const std::string& uuid) const;  // held or in flight
  // Takes the held events of `node` (every one if empty) out of the hold, in arrival order.
  std::vector<Held> take(const std::string* node);

  UplinkEventsOptions opt_;
  std::deque<Held> held_;                       // arrival order, so also expiry order
  std::map<std::string, std::size_t> per_node_;  // held events per node
  std::unordered_set<std::string> held_uuids_;
  std::unordered_set<std::string> in_flight_;    // served, answer not sent yet
};

}  // namespace muster::bridge
