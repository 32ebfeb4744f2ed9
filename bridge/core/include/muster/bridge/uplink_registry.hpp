// uplink_registry.hpp — the uplink's bookkeeping of which muster nodes it publishes to Hurozo
// and when each is due for (re-)registration.
// Owns: the publish rules: a node is registered as soon as it appears in the broker (and
// matches the selection), again every `interval`, and again at once when its ports change;
// a node the server refused (4xx other than auth) waits `rejected_retry` unless its ports
// change; events are answered only for nodes this uplink registered successfully (a refused
// or not yet registered name may be served by another worker of the same user), with the
// output keys of that registration, until it would have expired on the server (also after
// the node left the broker or its ports changed); whether a registration request for a node
// is on its way (its events are then held: uplink_events.hpp).
// Must never: forget the registered output keys of a node while events for it may still come,
// nor a node whose registration request is on its way.
// Socket-free and clock-free: `now_ms` is passed in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "muster/bridge/hurozo.hpp"

namespace muster::bridge {

// A broker node (one entry of `muster nodes --json`) as a registration payload: the port
// names of its inputs and outputs.
RegisterRequest register_request_from_node(const Json& node);

// What the registry knows of one node when an event for it comes.
struct NodeStatus {
  std::optional<std::vector<std::string>> outputs;  // registered: answer with these output keys
  bool registering = false;                         // a registration request for it is on its way
  std::string refusal;                              // the server refused its last registration: why
};

struct UplinkRegistryOptions {
  std::vector<std::string> patterns;           // globs; empty: every node
  std::int64_t interval_ms = 60000;            // re-registration period
  std::int64_t server_ttl_ms = 600000;         // how long the server keeps a registration
  std::int64_t rejected_retry_ms = 600000;     // wait after a 4xx refusal of a node
};

class UplinkRegistry {
 public:
  explicit UplinkRegistry(UplinkRegistryOptions options) : opt_(std::move(options)) {}

  bool selected(const std::string& name) const;

  // The broker's current node list (all of them; selection is applied here).
  // Returns the names that appeared or changed ports.
  std::vector<std::string> update(const std::vector<RegisterRequest>& broker_nodes, std::int64_t now_ms);

  // Nodes to register now. `force`: every present node except those waiting after a refusal.
  std::vector<RegisterRequest> due(std::int64_t now_ms, bool force = false) const;
  // When the next node falls due (nullopt: none present).
  std::optional<std::int64_t> next_due(std::int64_t now_ms) const;

  // A registration request for this node is about to be sent; on_registered, on_rejected or
  // on_register_failed ends it.
  void on_registering(const std::string& name);
  // Returns true if the node was not registered before (or its registration had lapsed or
  // its outputs changed): worth a log line.
  bool on_registered(const std::string& name, std::int64_t now_ms);
  // A refusal for this node (HTTP 4xx other than 401/403): wait before trying it again.
  void on_rejected(const std::string& name, const std::string& error, std::int64_t now_ms);
  // Any other failure (network, timeout, 5xx, 401/403, a reply without a token): the request
  // is over; nothing else changes (retries are the registrar's).
  void on_register_failed(const std::string& name);

  // The registered output keys to answer an event for `node` (those of its last successful
  // registration), or nullopt if this uplink does not serve it: never registered
  // successfully (refused, or not yet), or its registration lapsed.
  std::optional<std::vector<std::string>> outputs_for(const std::string& node, std::int64_t now_ms) const;
  // outputs_for, and whether a registration request is on its way, and its last refusal.
  NodeStatus status(const std::string& node, std::int64_t now_ms) const;

  // Names present in the broker and selected.
  std::vector<std::string> present() const;
  std::size_t registered_count(std::int64_t now_ms) const;

 private:
  struct Entry {
    RegisterRequest spec;
    bool present = false;
    std::int64_t last_ok_ms = -1;          // last successful registration
    std::vector<std::string> ok_outputs;   // outputs of that registration
    bool changed = false;                  // ports changed since: register again at once
    std::int64_t rejected_until_ms = 0;
    std::string last_error;                // the last refusal, if the last attempt was refused
    bool registering = false;              // a registration request is on its way
  };
  bool is_due(const Entry& e, std::int64_t now_ms, bool force) const;
  bool live(const Entry& e, std::int64_t now_ms) const;  // registered, not lapsed on the server

  UplinkRegistryOptions opt_;
  std::map<std::string, Entry> nodes_;
};

}  // namespace muster::bridge
