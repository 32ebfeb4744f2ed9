// resumable_calls.hpp — what musterd holds so that a caller whose connection broke can bind its
// resumable calls to its next connection (docs/PROTOCOL.md §8.3): the token of each open
// resumable call (C1), and the terminal replies of those that ended, kept for a while in case the
// reply was lost in the break (C5), bounded in time and in bytes (the oldest forgotten first).
// Owns: the token → request id index of open resumable calls, the kept replies, the random tokens.
// Must never: hold anything for a call that is not resumable (a plain call costs nothing here),
// send anything (a kept reply is only ever given back through take()), or read a clock (the core
// passes `now`).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "events.hpp"

namespace muster::broker {

// Whether `a` and `b` are the same caller for a resumable call (PROTOCOL.md §8.3 C2): the same
// identity, name and workspace (for a gateway, the same asserted user) — a watch's `calls` rule.
inline bool same_caller(const Caller& a, const Caller& b) {
  return a.identity == b.identity && a.name == b.name && a.workspace == b.workspace;
}

// The terminal reply of a resumable call that ended, with what musterd forwarded of its streams
// (C3, C4): a caller that resumes having received less gets Unavailable instead of the reply.
struct KeptCallReply {
  std::shared_ptr<const Caller> caller;  // the same caller only may take it (C2)
  std::variant<ResultBody, FailureBody> reply;
  std::uint64_t items_forwarded = 0;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> outputs_forwarded;  // (stream, bytes) of output streams
};

class ResumableCalls {
 public:
  // 64 random bits (libsodium's randombytes_buf unless a test gives its own source).
  using RandomSource = std::function<std::uint64_t()>;
  // `keep`: how long a kept reply waits for its caller (--resume-keep-ms; 0: no call is resumable);
  // `keep_bytes`: the kept replies' bytes in all (--resume-keep-bytes).
  ResumableCalls(Millis keep, std::uint64_t keep_bytes, RandomSource random = {});

  bool enabled() const { return keep_.count() > 0; }

  // A new token for open request `request_id`: never 0, unique among the open calls and kept
  // replies held here.
  std::uint64_t open(std::uint64_t request_id);
  // The open request of `token`, if any.
  std::optional<std::uint64_t> request_of(std::uint64_t token) const;
  // The call of `token` ended: its reply is kept until `now` + keep, or until the bytes of the
  // kept replies pass keep_bytes (the oldest go first). Its open token is forgotten.
  void keep(std::uint64_t token, KeptCallReply reply, TimePoint now);
  // The call of `token` is over without a reply to keep: its token is forgotten.
  void forget_open(std::uint64_t token) { open_.erase(token); }
  // The kept reply of `token` for caller `who`, removed (a reply is given back once); nullopt
  // when none is kept for `who` (unknown, taken, expired, forgotten for room, another caller's:
  // that one stays kept).
  std::optional<KeptCallReply> take(std::uint64_t token, const Caller& who, TimePoint now);
  // Forgets the kept replies past their time.
  void expire(TimePoint now);

  std::size_t open_calls() const { return open_.size(); }
  std::size_t kept_replies() const { return kept_.size(); }
  std::uint64_t kept_bytes() const { return kept_bytes_; }

  // The bytes a kept reply is counted for (its outputs or message, and what describes it).
  static std::uint64_t size_of(const KeptCallReply& reply);

 private:
  struct Kept {
    KeptCallReply reply;
    std::uint64_t bytes = 0;
    TimePoint expires{};
  };
  // Forgets the front of order_ (the oldest kept reply, if it is still kept).
  void pop_oldest();
  void forget_kept(std::unordered_map<std::uint64_t, Kept>::iterator it);

  Millis keep_;
  std::uint64_t keep_bytes_;
  RandomSource random_;
  std::unordered_map<std::uint64_t, std::uint64_t> open_;  // token -> request id
  std::unordered_map<std::uint64_t, Kept> kept_;           // token -> reply
  // Tokens in the order they were kept (so also of their expiry: keep_ is the same for all); a
  // token taken or forgotten meanwhile is skipped when it comes to the front.
  std::deque<std::pair<std::uint64_t, TimePoint>> order_;
  std::uint64_t kept_bytes_ = 0;
};

}  // namespace muster::broker
