// resumable_calls.cpp — tokens and kept replies of resumable calls (resumable_calls.hpp,
// docs/PROTOCOL.md §8.3 C1, C5).
#include "resumable_calls.hpp"

#include <stdexcept>

#include <sodium.h>

namespace muster::broker {

namespace {

std::uint64_t sodium_random() {
  std::uint64_t value = 0;
  randombytes_buf(&value, sizeof value);
  return value;
}

}  // namespace

ResumableCalls::ResumableCalls(Millis keep, std::uint64_t keep_bytes, RandomSource random)
    : keep_(keep), keep_bytes_(keep_bytes), random_(random ? std::move(random) : RandomSource(sodium_random)) {
  if (!random && sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}

std::uint64_t ResumableCalls::open(std::uint64_t request_id) {
  std::uint64_t token = 0;
  while (token == 0 || open_.contains(token) || kept_.contains(token)) token = random_();
  open_.emplace(token, request_id);
  return token;
}

std::optional<std::uint64_t> ResumableCalls::request_of(std::uint64_t token) const {
  auto it = open_.find(token);
  if (it == open_.end()) return std::nullopt;
  return it->second;
}

std::uint64_t ResumableCalls::size_of(const KeptCallReply& reply) {
  std::uint64_t bytes = sizeof(KeptCallReply) + reply.outputs_forwarded.size() * 16;
  if (auto* result = std::get_if<ResultBody>(&reply.reply)) return bytes + result->outputs.bytes.size();
  return bytes + std::get<FailureBody>(reply.reply).message.size();
}

void ResumableCalls::keep(std::uint64_t token, KeptCallReply reply, TimePoint now) {
  open_.erase(token);
  expire(now);
  const std::uint64_t bytes = size_of(reply);
  if (!enabled() || bytes > keep_bytes_) return;  // would not fit even alone: not kept
  while (kept_bytes_ + bytes > keep_bytes_ && !order_.empty()) pop_oldest();  // the oldest go first
  kept_bytes_ += bytes;
  kept_.emplace(token, Kept{std::move(reply), bytes, now + keep_});
  order_.emplace_back(token, now + keep_);
}

std::optional<KeptCallReply> ResumableCalls::take(std::uint64_t token, const Caller& who, TimePoint now) {
  expire(now);
  auto it = kept_.find(token);
  if (it == kept_.end() || !same_caller(*it->second.reply.caller, who)) return std::nullopt;
  KeptCallReply reply = std::move(it->second.reply);
  forget_kept(it);
  return reply;
}

void ResumableCalls::expire(TimePoint now) {
  while (!order_.empty() && (order_.front().second <= now || !kept_.contains(order_.front().first))) pop_oldest();
}

void ResumableCalls::pop_oldest() {
  auto [token, expires] = order_.front();
  order_.pop_front();
  auto it = kept_.find(token);
  // Not the same entry when the token was taken and then given to a later call.
  if (it != kept_.end() && it->second.expires == expires) forget_kept(it);
}

void ResumableCalls::forget_kept(std::unordered_map<std::uint64_t, Kept>::iterator it) {
  kept_bytes_ -= it->second.bytes;
  kept_.erase(it);
}

}  // namespace muster::broker
