// catalog.cpp — see catalog.hpp.
#include "muster/gateway/catalog.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include <fmt/format.h>

namespace muster::gateway {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}
std::string str_of(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::uint64_t num_of(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}
bool flag_of(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
}  // namespace

std::variant<SearchQuery, std::string> parse_search(const Json& payload) {
  SearchQuery q;
  if (payload.is_null()) return q;
  if (!payload.is_object()) return std::string("payload must be an object {query, service_type, peer_ids, active_only}");
  if (auto it = payload.find("query"); it != payload.end() && !it->is_null()) {
    if (!it->is_string()) return std::string("'query' must be a string");
    q.query = trim(it->get<std::string>());
  }
  if (auto it = payload.find("service_type"); it != payload.end() && !it->is_null()) {
    if (!it->is_string()) return std::string("'service_type' must be a comma-separated string");
    std::string all = it->get<std::string>();
    std::size_t start = 0;
    while (start <= all.size()) {
      auto comma = all.find(',', start);
      auto part = trim(std::string_view(all).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (!part.empty()) q.service_types.push_back(lower(part));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (auto it = payload.find("peer_ids"); it != payload.end() && !it->is_null()) {
    if (!it->is_array()) return std::string("'peer_ids' must be an array of strings");
    for (auto& p : *it) {
      if (!p.is_string()) return std::string("'peer_ids' must be an array of strings");
      q.peer_ids.push_back(p.get<std::string>());
    }
  }
  if (auto it = payload.find("active_only"); it != payload.end() && !it->is_null()) {
    if (!it->is_boolean()) return std::string("'active_only' must be a boolean");
    q.active_only = it->get<bool>();
  }
  return q;
}

Json filter_workspace(const Json& list, const std::string& workspace) {
  auto out = Json::array();
  if (!list.is_array()) return out;
  for (auto& e : list)
    if (e.is_object() && str_of(e, "workspace") == workspace) out.push_back(e);
  return out;
}

void Catalog::update(const Json& nodes, const Json& workers, std::int64_t now) {
  Json fresh_nodes = filter_workspace(nodes, workspace_);
  workers_ = filter_workspace(workers, workspace_);
  std::sort(workers_.begin(), workers_.end(),
            [](const Json& a, const Json& b) { return str_of(a, "worker_id") < str_of(b, "worker_id"); });
  std::sort(fresh_nodes.begin(), fresh_nodes.end(),
            [](const Json& a, const Json& b) { return str_of(a, "name") < str_of(b, "name"); });
  std::set<std::string> present;
  for (auto& n : fresh_nodes) present.insert(str_of(n, "name"));
  for (auto& n : nodes_) {
    auto name = str_of(n, "name");
    if (!present.contains(name)) vanished_[name] = Vanished{n, now};
  }
  for (auto& name : present) vanished_.erase(name);
  std::erase_if(vanished_, [&](const auto& kv) { return now - kv.second.since >= ttl_; });
  nodes_ = std::move(fresh_nodes);
}

namespace {
// 2026-12-06T13:27:21.123Z
std::string iso_utc_ms(std::int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, unix_ms % 1000);
}
double ms_of(const Json& histogram, const char* key) {
  return histogram.is_object() ? static_cast<double>(num_of(histogram, key)) / 1000.0 : 0.0;
}
Json empty_stats() {
  return Json{{"completed", 0}, {"failed", 0}, {"rate_per_s", 0.0}, {"p50_ms", 0.0},
              {"p90_ms", 0.0},  {"p99_ms", 0.0}, {"queue_wait_p50_ms", 0.0}};
}
}  // namespace

void Catalog::update_stats(const Json& node_stats, std::int64_t now_ms) {
  stats_.clear();
  recent_failures_ = Json::array();
  if (!node_stats.is_object()) return;
  for (auto& n : filter_workspace(node_stats.value("nodes", Json::array()), workspace_)) {
    auto service = n.value("service", Json::object());
    stats_[str_of(n, "node")] = Json{{"completed", num_of(n, "completed")},
                                     {"failed", num_of(n, "failed")},
                                     {"rate_per_s", n.value("rate_1m", 0.0)},
                                     {"p50_ms", ms_of(service, "p50_us")},
                                     {"p90_ms", ms_of(service, "p90_us")},
                                     {"p99_ms", ms_of(service, "p99_us")},
                                     {"queue_wait_p50_ms", ms_of(n.value("queue_wait", Json::object()), "p50_us")}};
  }
  for (auto& f : filter_workspace(node_stats.value("recent_failures", Json::array()), workspace_)) {
    auto age = static_cast<std::int64_t>(num_of(f, "age_ms"));
    recent_failures_.push_back(Json{{"node", str_of(f, "node")}, {"code", str_of(f, "code")},
                                    {"message", str_of(f, "message")}, {"time", iso_utc_ms(now_ms - age)}});
  }
}

Json Catalog::service_of(const Json& node, bool active, const std::vector<std::string>& peer_ids) const {
  Json s = Json::object();
  s["id"] = str_of(node, "name");
  s["name"] = str_of(node, "name");
  s["description"] = str_of(node, "description");
  s["type"] = "NODE";
  s["service_type"] = str_of(node, "category");
  s["status"] = active ? "ACTIVE" : "INACTIVE";
  Json spec = Json::object();
  for (const char* k : {"version", "inputs", "outputs", "parameters", "idempotent", "default_timeout_ms"})
    if (auto it = node.find(k); it != node.end()) spec[k] = *it;
  s["config"] = std::move(spec);
  s["workers"] = active ? num_of(node, "workers") : 0;
  s["capacity"] = active ? num_of(node, "capacity") : 0;
  s["in_flight"] = active ? num_of(node, "in_flight") : 0;
  s["queue_depth"] = active ? num_of(node, "queue_depth") : 0;
  s["peer_ids"] = peer_ids;
  auto st = stats_.find(s["name"].get<std::string>());
  s["stats"] = st == stats_.end() ? empty_stats() : st->second;
  return s;
}

namespace {
// The ready workers of each node, and all workers of each node.
struct NodeWorkers {
  std::map<std::string, std::vector<std::string>> all;
  std::set<std::string> with_ready;
};
NodeWorkers node_workers(const Json& workers) {
  NodeWorkers out;
  for (auto& w : workers) {
    auto id = str_of(w, "worker_id");
    bool ready = str_of(w, "state") == "ready";
    if (auto it = w.find("nodes"); it != w.end() && it->is_array())
      for (auto& n : *it)
        if (n.is_string()) {
          out.all[n.get<std::string>()].push_back(id);
          if (ready) out.with_ready.insert(n.get<std::string>());
        }
  }
  return out;
}
}  // namespace

Json Catalog::services() const { return Json{{"services", search(SearchQuery{})}}; }

Json Catalog::search(const SearchQuery& q) const {
  auto nw = node_workers(workers_);
  std::vector<std::pair<std::string, Json>> entries;
  auto consider = [&](const Json& node, bool listed) {
    auto name = str_of(node, "name");
    bool active = listed && nw.with_ready.contains(name) && num_of(node, "workers") > 0;
    auto peers_it = nw.all.find(name);
    std::vector<std::string> peer_ids = listed && peers_it != nw.all.end() ? peers_it->second : std::vector<std::string>{};
    if (q.active_only && !active) return;
    if (!q.query.empty()) {
      auto needle = lower(q.query);
      if (lower(name).find(needle) == std::string::npos && lower(str_of(node, "description")).find(needle) == std::string::npos)
        return;
    }
    if (!q.service_types.empty() &&
        std::find(q.service_types.begin(), q.service_types.end(), lower(str_of(node, "category"))) == q.service_types.end())
      return;
    if (!q.peer_ids.empty() && std::none_of(peer_ids.begin(), peer_ids.end(), [&](const std::string& id) {
          return std::find(q.peer_ids.begin(), q.peer_ids.end(), id) != q.peer_ids.end();
        }))
      return;
    entries.emplace_back(name, service_of(node, active, peer_ids));
  };
  for (auto& n : nodes_) consider(n, true);
  for (auto& [name, v] : vanished_) consider(v.node, false);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto out = Json::array();
  for (auto& [name, e] : entries) out.push_back(std::move(e));
  return out;
}

Json Catalog::peers() const {
  auto out = Json::array();
  for (auto& w : workers_) {
    Json p = Json::object();
    p["id"] = str_of(w, "worker_id");
    p["hostname"] = str_of(w, "hostname");
    p["sdk"] = str_of(w, "sdk");
    p["capacity"] = num_of(w, "capacity");
    p["in_flight"] = num_of(w, "in_flight");
    p["state"] = str_of(w, "state");
    p["direct"] = flag_of(w, "direct");  // one connection to musterd (PROTOCOL.md §7.10); fixed while attached
    p["nodes"] = w.contains("nodes") ? w["nodes"] : Json::array();
    out.push_back(std::move(p));
  }
  return Json{{"peers", out}};
}

Json Catalog::counts() const {
  std::uint64_t queued = 0, in_flight = 0, capacity = 0;
  for (auto& n : nodes_) queued += num_of(n, "queue_depth");
  for (auto& w : workers_) {
    in_flight += num_of(w, "in_flight");
    capacity += num_of(w, "capacity");
  }
  return Json{{"workers", workers_.size()}, {"nodes", nodes_.size()}, {"queued", queued},
              {"in_flight", in_flight}, {"capacity", capacity}};
}

}  // namespace muster::gateway
