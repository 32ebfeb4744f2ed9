// subscription_policy.hpp — which topics a connection may subscribe to on musterd's request
// (XPUB) socket, and how worker topics are named.
// Owns: the topic names (`b:` broadcast, `w:<identity>:<worker_id>:` per worker) and the
// decision on one subscription message, from its bytes and the subscriber's identity alone.
// Must never: touch a socket or trust a topic the subscriber's own identity does not name.
//
// ZeroMQ filters by prefix, so a subscriber to "" or "w:" would receive every worker's
// WorkRequests. The daemon applies a subscription only when it is exactly the broadcast topic
// or one of the subscriber's own worker topics (docs/SECURITY.md, "Workspace isolation").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace muster::broker {

inline constexpr std::string_view kBroadcastTopic = "b:";

// The topic musterd publishes worker `worker_id`'s WorkRequests, Aborts and pings on.
// `identity` is the attaching connection's identity id (Security::identity_of).
std::string worker_topic(std::string_view identity, std::string_view worker_id);

struct SubscriptionDecision {
  bool apply = false;      // pass it to the socket (ZMQ_SUBSCRIBE / ZMQ_UNSUBSCRIBE)
  bool subscribe = false;  // true: a subscription; false: an unsubscription
  std::string topic;       // the topic it names (empty if the message names none)
  std::string reason;      // why it was refused (empty when applied)
};

// Decides on one message read from an XPUB socket: byte 1 (subscribe) or 0 (unsubscribe),
// then the topic. `identity` is the subscriber's identity id. Applied:
//  - a subscription to exactly `b:`, or to exactly `w:<identity>:<worker_id>:` with a valid
//    worker id;
//  - any unsubscription (it only ever removes the sending connection's own subscriptions).
// Everything else is refused with a reason.
SubscriptionDecision decide_subscription(std::span<const std::uint8_t> message,
                                         std::string_view identity);

}  // namespace muster::broker
