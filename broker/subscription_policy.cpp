// subscription_policy.cpp — see subscription_policy.hpp.
#include "subscription_policy.hpp"

#include <fmt/format.h>

#include "muster/node_spec.hpp"

namespace muster::broker {

namespace {
constexpr std::string_view kWorkerPrefix = "w:";

// Shows a refused topic in a log line: printable, and short.
std::string printable(std::string_view topic) {
  std::string out;
  for (char c : topic.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? std::string(1, c) : fmt::format("\\x{:02x}", u);
  }
  if (topic.size() > 80) out += "...";
  return out;
}
}  // namespace

std::string worker_topic(std::string_view identity, std::string_view worker_id) {
  // Built on every WorkRequest and Abort published: appended, not formatted (fmt::format's
  // parsing was a few % of musterd's instructions per call).
  std::string topic;
  topic.reserve(kWorkerPrefix.size() + identity.size() + worker_id.size() + 2);
  topic.append(kWorkerPrefix).append(identity).append(1, ':').append(worker_id).append(1, ':');
  return topic;
}

SubscriptionDecision decide_subscription(std::span<const std::uint8_t> message,
                                         std::string_view identity) {
  SubscriptionDecision d;
  if (message.empty() || message[0] > 1) {
    d.reason = "not a subscription message (first byte must be 0 or 1)";
    return d;
  }
  d.subscribe = message[0] == 1;
  d.topic.assign(reinterpret_cast<const char*>(message.data() + 1), message.size() - 1);
  if (!d.subscribe) {
    d.apply = true;
    return d;
  }
  std::string_view topic = d.topic;
  if (topic == kBroadcastTopic) {
    d.apply = true;
    return d;
  }
  const std::string own = fmt::format("{}{}:", kWorkerPrefix, identity);
  if (topic.starts_with(own) && topic.size() > own.size() + 1 && topic.back() == ':') {
    auto worker_id = topic.substr(own.size(), topic.size() - own.size() - 1);
    if (valid_worker_id(worker_id)) {
      d.apply = true;
      return d;
    }
    d.reason = fmt::format("'{}' does not name a valid worker id", printable(topic));
    return d;
  }
  d.reason = fmt::format("'{}' is neither '{}' nor a worker topic of identity {} ('{}<worker id>:')",
                         printable(topic), kBroadcastTopic, identity, own);
  return d;
}

}  // namespace muster::broker
