// fair_queue.cpp — round robin across client lanes. See fair_queue.hpp for the contract.
#include "fair_queue.hpp"

#include <algorithm>

namespace muster::broker {

FairQueue::LaneList::iterator FairQueue::lane_for(const std::string& client) {
  auto found = by_client_.find(client);
  if (found != by_client_.end()) return found->second;
  auto it = lanes_.insert(lanes_.end(), Lane{client, {}});  // a new client waits its turn
  by_client_.emplace(client, it);
  return it;
}

void FairQueue::drop_if_empty(LaneList::iterator it) {
  if (!it->ids.empty()) return;
  by_client_.erase(it->client);
  lanes_.erase(it);
}

void FairQueue::push_back(const std::string& client, std::uint64_t id) {
  lane_for(client)->ids.push_back(id);
  ++size_;
}

void FairQueue::push_front(const std::string& client, std::uint64_t id) {
  auto it = lane_for(client);
  it->ids.push_front(id);
  lanes_.splice(lanes_.begin(), lanes_, it);
  ++size_;
}

std::optional<std::uint64_t> FairQueue::pop() {
  if (lanes_.empty()) return std::nullopt;
  auto it = lanes_.begin();
  auto id = it->ids.front();
  it->ids.pop_front();
  --size_;
  if (it->ids.empty()) drop_if_empty(it);
  else lanes_.splice(lanes_.end(), lanes_, it);
  return id;
}

bool FairQueue::erase(const std::string& client, std::uint64_t id) {
  auto found = by_client_.find(client);
  if (found == by_client_.end()) return false;
  auto& ids = found->second->ids;
  auto pos = std::find(ids.begin(), ids.end(), id);
  if (pos == ids.end()) return false;
  ids.erase(pos);
  --size_;
  drop_if_empty(found->second);
  return true;
}

}  // namespace muster::broker
