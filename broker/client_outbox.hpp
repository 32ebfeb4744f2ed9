// client_outbox.hpp — replies musterd could not hand to libzmq yet, per client connection.
// Owns: per-connection FIFO of unsent replies, the rule of what may be dropped (progress when
// the pipe is full; refusals beyond the hard cap), and retrying in order.
// Must never: touch a socket itself (the caller's `send` does), reorder one connection's
// replies, or drop a reply of kind OfRequest while the connection is there
// (docs/PROTOCOL.md §10, docs/RELIABILITY.md "slow reader").
//
// Why: a client ROUTER's pipe to one connection holds SNDHWM messages; with
// ROUTER_MANDATORY a send beyond that fails with EAGAIN. Dropping the reply there lost
// terminal replies of accepted requests (30,000 of 130,000 calls of a client that did not
// read). The outbox keeps them and the socket loop retries on later turns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace muster::broker {

enum class SendOutcome { Sent, Full, Gone };

enum class ReplyKind {
  OfRequest,  // Accepted, Result, Failure of an accepted request: kept until sent or gone
  NoRequest,  // answers a message that opened no request (a refused Submit, a query):
              // dropped beyond the hard cap
  Progress,   // dropped when it cannot be sent at once (it is not terminal)
};

// Message: what the caller's `send` takes (the daemon's frames and peer; a string in tests).
// Send: SendOutcome(Message&), given the oldest waiting message of one connection; on Full the
// message must be left intact (libzmq takes nothing when the first frame is refused).
template <class Message>
class ClientOutbox {
 public:
  struct Counts {
    std::uint64_t dropped_progress = 0;  // could not be sent at once
    std::uint64_t dropped_refusals = 0;  // beyond the hard cap
    std::uint64_t discarded = 0;         // waiting for a connection that went away
  };

  // `hard_cap`: replies one connection may have waiting before refusals to it are dropped
  // (0 = no cap). Replies of kind OfRequest are kept beyond it.
  explicit ClientOutbox(std::size_t hard_cap) : hard_cap_(hard_cap) {}

  // Sends `m` to connection `key` now if nothing waits for it, else queues it behind what
  // does (keeping the connection's order). `bytes` is what it counts in pending_bytes(),
  // `replies` what it counts in pending() (a Batch holds several, PROTOCOL.md §2.2).
  template <class Send>
  void deliver(const std::string& key, Message m, std::uint64_t bytes, ReplyKind kind, Send&& send,
               std::size_t replies = 1) {
    auto it = waiting_.find(key);
    if (it == waiting_.end()) {
      switch (send(m)) {
        case SendOutcome::Sent: return;
        case SendOutcome::Gone: return;  // nobody to deliver to; the caller counts it
        case SendOutcome::Full: break;
      }
      if (kind == ReplyKind::Progress) {
        ++counts_.dropped_progress;
        return;
      }
      it = waiting_.emplace(key, Connection{}).first;
    } else if (kind == ReplyKind::Progress) {
      ++counts_.dropped_progress;
      return;
    } else if (kind == ReplyKind::NoRequest && hard_cap_ && it->second.replies >= hard_cap_) {
      ++counts_.dropped_refusals;
      return;
    }
    it->second.items.push_back(Item{std::move(m), bytes, replies});
    it->second.bytes += bytes;
    it->second.replies += replies;
    changed_.push_back(key);
  }

  // Sends what waits, oldest first, for every connection until its pipe is full again.
  template <class Send>
  void retry(Send&& send) {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      auto& c = it->second;
      bool gone = false, moved = false;
      while (!c.items.empty()) {
        auto outcome = send(c.items.front().message);
        if (outcome == SendOutcome::Full) break;
        if (outcome == SendOutcome::Gone) {
          gone = true;
          break;
        }
        c.bytes -= c.items.front().bytes;
        c.replies -= c.items.front().replies;
        c.items.pop_front();
        moved = true;
      }
      if (gone) counts_.discarded += c.replies;
      if (gone || moved) changed_.push_back(it->first);
      if (gone || c.items.empty()) {
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }

  bool empty() const { return waiting_.empty(); }
  // Replies waiting for `key` (the replies inside a waiting Batch each count).
  std::size_t pending(const std::string& key) const {
    auto it = waiting_.find(key);
    return it == waiting_.end() ? 0 : it->second.replies;
  }
  std::uint64_t pending_bytes(const std::string& key) const {
    auto it = waiting_.find(key);
    return it == waiting_.end() ? 0 : it->second.bytes;
  }
  const Counts& counts() const { return counts_; }

  // Connections whose pending figures changed since the last call (each once), for the
  // caller to report (BrokerCore::on_client_backlog).
  std::vector<std::string> take_changed() {
    std::vector<std::string> out;
    out.swap(changed_);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

 private:
  struct Item {
    Message message;
    std::uint64_t bytes = 0;
    std::size_t replies = 1;
  };
  struct Connection {
    std::deque<Item> items;
    std::uint64_t bytes = 0;
    std::size_t replies = 0;
  };
  std::size_t hard_cap_;
  std::unordered_map<std::string, Connection> waiting_;
  std::vector<std::string> changed_;
  Counts counts_;
};

}  // namespace muster::broker
