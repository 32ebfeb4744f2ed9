// fair_queue.hpp — the queue of one node: request ids waiting for a worker, served round robin
// across its lanes, FIFO within each lane. A lane is a client connection, or one user of a
// gateway's connection (BrokerCore::queue_lane).
//
// Owns only ids and their order. It never looks at requests, workers or limits (BrokerCore
// decides what may be queued); it never reorders one client's requests among themselves.
// Why: with one FIFO a client that queues a thousand slow requests makes every other caller
// of the node wait behind all of them (docs/RELIABILITY.md, "Bounded under abuse").
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

namespace muster::broker {

class FairQueue {
 public:
  // `client` names the lane (BrokerCore::queue_lane: a connection, or a user of a gateway
  // connection); any string works.
  void push_back(const std::string& client, std::uint64_t id);
  // Ahead of everything: the client's lane is served next and `id` is first in it (a request
  // re-queued after its worker died has waited longest).
  void push_front(const std::string& client, std::uint64_t id);
  // The next id: the front of the lane whose turn it is; that lane then goes to the back.
  std::optional<std::uint64_t> pop();
  // Removes `id` from `client`'s lane; false if it was not there.
  bool erase(const std::string& client, std::uint64_t id);

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t lanes() const { return lanes_.size(); }

 private:
  struct Lane {
    std::string client;
    std::deque<std::uint64_t> ids;
  };
  using LaneList = std::list<Lane>;
  LaneList::iterator lane_for(const std::string& client);
  void drop_if_empty(LaneList::iterator it);

  LaneList lanes_;  // rotation order: the front lane is served next
  std::unordered_map<std::string, LaneList::iterator> by_client_;
  std::size_t size_ = 0;
};

}  // namespace muster::broker
