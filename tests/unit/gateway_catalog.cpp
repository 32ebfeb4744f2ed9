// gateway_catalog.cpp — what the gateway shows of the broker: workspace filtering, services
// with ACTIVE/INACTIVE, peers, the search filters, vanished nodes.
#include <doctest/doctest.h>

#include "muster/gateway/catalog.hpp"

using namespace muster;
using namespace muster::gateway;

namespace {
Json node(const char* name, const char* ws, const char* category, const char* description, int workers = 1) {
  return Json{{"name", name}, {"description", description}, {"category", category}, {"version", "1.0.0"},
              {"inputs", Json::array()}, {"outputs", Json::array()}, {"workspace", ws},
              {"workers", static_cast<unsigned>(workers)}, {"capacity", 4u}, {"in_flight", 1u}, {"queue_depth", 2u}};
}
Json worker(const char* id, const char* ws, std::vector<std::string> nodes, const char* state = "ready") {
  return Json{{"worker_id", id}, {"hostname", "h"}, {"sdk", "muster-cpp/0.1.0"}, {"state", state}, {"capacity", 4u},
              {"in_flight", 1u}, {"nodes", nodes}, {"workspace", ws}, {"direct", std::string(id) != "w2"}};
}
std::vector<std::string> names(const Json& services) {
  std::vector<std::string> out;
  for (auto& s : services) out.push_back(s["name"]);
  return out;
}
SearchQuery query(const char* json) { return std::get<SearchQuery>(parse_search(Json::parse(json))); }

Catalog sample() {
  Catalog c("alpha", 600);
  Json nodes = Json::array({node("resize", "alpha", "image", "Resize an image"),
                            node("hash", "alpha", "crypto", "SHA-256 of bytes"),
                            node("drain", "alpha", "ops", "served by a draining worker"),
                            node("secret", "beta", "image", "beta's own image node")});
  Json workers = Json::array({worker("w1", "alpha", {"resize", "hash"}), worker("w2", "alpha", {"hash"}),
                              worker("w3", "alpha", {"drain"}, "draining"), worker("wb", "beta", {"secret"})});
  c.update(nodes, workers, 100);
  return c;
}
}  // namespace

TEST_CASE("gateway catalog: nothing of another workspace is listed, searched or counted") {
  auto c = sample();
  CHECK(names(c.services()["services"]) == std::vector<std::string>{"drain", "hash", "resize"});
  CHECK(c.peers()["peers"].size() == 3);
  for (auto& p : c.peers()["peers"]) CHECK(p["id"] != "wb");
  // each peer says whether its worker is direct (one connection, PROTOCOL.md §7.10)
  for (auto& p : c.peers()["peers"]) CHECK(p["direct"] == (p["id"] != "w2"));
  CHECK(names(c.search(query(R"({"query":"image"})"))) == std::vector<std::string>{"resize"});
  CHECK(c.nodes().size() == 3);
  CHECK(c.workers().size() == 3);
  CHECK(c.counts()["workers"] == 3);
  CHECK(c.counts()["nodes"] == 3);
  CHECK(c.counts()["queued"] == 6);
}

TEST_CASE("gateway catalog: service entries and status") {
  auto c = sample();
  auto services = c.services()["services"];
  auto hash = services[1];
  CHECK(hash["id"] == "hash");
  CHECK(hash["service_type"] == "crypto");
  CHECK(hash["status"] == "ACTIVE");
  CHECK(hash["peer_ids"] == Json::array({"w1", "w2"}));
  CHECK(hash["queue_depth"] == 2);
  CHECK(hash["config"]["version"] == "1.0.0");
  CHECK(services[0]["name"] == "drain");
  CHECK(services[0]["status"] == "INACTIVE");  // its only worker is draining
}

TEST_CASE("gateway catalog: each search filter") {
  auto c = sample();
  CHECK(names(c.search(query(R"({"query":"SHA"})"))) == std::vector<std::string>{"hash"});      // description
  CHECK(names(c.search(query(R"({"query":"resi"})"))) == std::vector<std::string>{"resize"});   // name
  CHECK(names(c.search(query(R"({"service_type":"crypto, IMAGE"})"))) == std::vector<std::string>{"hash", "resize"});
  CHECK(names(c.search(query(R"({"peer_ids":["w2"]})"))) == std::vector<std::string>{"hash"});
  CHECK(names(c.search(query(R"({"peer_ids":["wb"]})"))).empty());
  CHECK(names(c.search(query(R"({"active_only":true})"))) == std::vector<std::string>{"hash", "resize"});
  CHECK(names(c.search(query(R"({"query":"","service_type":"","peer_ids":[],"active_only":false})"))).size() == 3);
  CHECK(names(c.search(query(R"({"query":"nothing matches"})"))).empty());
}

TEST_CASE("gateway catalog: bad search payloads name the field") {
  CHECK(std::get<std::string>(parse_search(Json::parse(R"({"query":5})"))) == "'query' must be a string");
  CHECK(std::get<std::string>(parse_search(Json::parse(R"({"peer_ids":"w1"})"))).find("peer_ids") != std::string::npos);
  CHECK(std::get<std::string>(parse_search(Json::parse(R"({"active_only":"yes"})"))).find("active_only") != std::string::npos);
  CHECK(std::get<std::string>(parse_search(Json::parse(R"({"service_type":["a"]})"))).find("service_type") != std::string::npos);
  CHECK(std::holds_alternative<std::string>(parse_search(Json::parse("[1]"))));
  CHECK(std::holds_alternative<SearchQuery>(parse_search(Json())));
}

TEST_CASE("gateway catalog: a vanished node stays INACTIVE until its ttl ends") {
  auto c = sample();
  Json workers = Json::array({worker("w1", "alpha", {"resize", "hash"})});
  Json nodes = Json::array({node("resize", "alpha", "image", "Resize an image"), node("hash", "alpha", "crypto", "x")});
  c.update(nodes, workers, 200);
  auto services = c.services()["services"];
  REQUIRE(services.size() == 3);
  CHECK(services[0]["name"] == "drain");
  CHECK(services[0]["status"] == "INACTIVE");
  CHECK(services[0]["workers"] == 0);
  CHECK(names(c.search(query(R"({"active_only":true})"))) == std::vector<std::string>{"hash", "resize"});
  c.update(nodes, workers, 799);
  CHECK(c.services()["services"].size() == 3);
  c.update(nodes, workers, 800);
  CHECK(c.services()["services"].size() == 2);
}
