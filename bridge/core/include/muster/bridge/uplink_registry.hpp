// uplink_registry.hpp — the uplink's bookkeeping of which muster nodes it publishes to Hurozo
// and when each is due for (re-)registration.
// Owns: the publish rules: a node is registered as soon as it appears in the broker (and
// matches the selection), again every `interval`, and again at once when its ports change;
// a node the server refused (4xx other than auth) waits `rejected_retry` unless its ports
// change; events are answered only for nodes this uplink registered successfully (a refused
// or not yet registered name may be served by another worker of the same user), with the
// output keys of that registration, until it would have expired on the server (also after
// the node left the broker or its ports changed).
// Must never: forget the registered output keys of a node while events for it may still come.
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

  // Returns true if the node was not registered before (or its registration had lapsed or
  // its outputs changed): worth a log line.
  bool on_registered(const std::string& name, std::int64_t now_ms);
  // A refusal for this node (HTTP 4xx other than 401/403): wait before trying it again.
  void on_rejected(const std::string& name, const std::string& error, std::int64_t now_ms);

  // The registered output keys to answer an event for `node` (those of its last successful
  // registration), or nullopt if this uplink does not serve it: never registered
  // successfully (refused, or not yet), or its registration lapsed.
  std::optional<std::vector<std::string>> outputs_for(const std::string& node, std::int64_t now_ms) const;

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
    std::string last_error;
  };
  bool is_due(const Entry& e, std::int64_t now_ms, bool force) const;

  UplinkRegistryOptions opt_;
  std::map<std::string, Entry> nodes_;
};

}  // namespace muster::bridge
