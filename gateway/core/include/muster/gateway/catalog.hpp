// catalog.hpp — what the gateway shows of the broker: musterd's node and worker lists (the
// JSON of muster::Client::nodes()/workers()) turned into the reference's services, peers and
// search results, for one workspace.
// Owns: workspace filtering (nothing of another workspace leaves this file), the service and
// peer entries, ACTIVE/INACTIVE, the search filters, vanished nodes kept as INACTIVE.
// Must never: touch a socket or a clock (time comes in as arguments).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "muster/value_json.hpp"

namespace muster::gateway {

struct SearchQuery {
  std::string query;                       // case-insensitive substring of name or description
  std::vector<std::string> service_types;  // categories (comma-separated in the message); empty: all
  std::vector<std::string> peer_ids;       // worker ids; empty: all
  bool active_only = false;
};
// The payload of a service.search.request, or what is wrong with it.
std::variant<SearchQuery, std::string> parse_search(const Json& payload);

class Catalog {
 public:
  // `inactive_ttl_s`: how long a node that vanished stays listed as INACTIVE.
  Catalog(std::string workspace, std::int64_t inactive_ttl_s) : workspace_(std::move(workspace)), ttl_(inactive_ttl_s) {}

  // A fresh pair of lists from musterd. Entries of other workspaces are dropped here.
  void update(const Json& nodes, const Json& workers, std::int64_t now);
  // Fresh per-node statistics (muster::Client::node_stats()), read at `now_ms` (unix ms); other
  // workspaces' entries are dropped. Each service then carries "stats": {completed, failed,
  // rate_per_s, p50_ms, p90_ms, p99_ms, queue_wait_p50_ms} (all 0 before the first update).
  void update_stats(const Json& node_stats, std::int64_t now_ms);
  // The workspace's newest failures, newest first: [{node, code, message, time}] (time: ISO 8601 UTC).
  const Json& recent_failures() const { return recent_failures_; }

  // {"services": [...]}: the workspace's nodes, name order.
  Json services() const;
  // {"peers": [...]}: the workspace's workers, id order.
  Json peers() const;
  // The services matching `q`.
  Json search(const SearchQuery& q) const;
  // The workspace's counts for node.status: workers, nodes, queued, in_flight, capacity.
  Json counts() const;
  // The workspace's node and worker lists in musterd's own JSON shape (REST).
  const Json& nodes() const { return nodes_; }
  const Json& workers() const { return workers_; }

 private:
  Json service_of(const Json& node, bool active, const std::vector<std::string>& peer_ids) const;

  std::string workspace_;
  std::int64_t ttl_;
  Json nodes_ = Json::array(), workers_ = Json::array();
  struct Vanished {
    Json node;
    std::int64_t since = 0;
  };
  std::map<std::string, Vanished> vanished_;  // node name -> last known entry
  std::map<std::string, Json> stats_;           // node name -> its "stats" object
  Json recent_failures_ = Json::array();
};

// Keeps only the entries whose "workspace" is `workspace`.
Json filter_workspace(const Json& list, const std::string& workspace);

}  // namespace muster::gateway
