// node_stats.cpp — histogram buckets, quantiles and the failure ring. See node_stats.hpp.
#include "node_stats.hpp"

#include <bit>

namespace muster::broker {

std::size_t LatencyHistogram::bucket_of(std::uint64_t us) {
  if (us <= 32) return 0;
  // 2^(b-1) < us <= 2^b: bucket 2(b-5) is the bound 2^b, the one before it 1.5 × 2^(b-1).
  const int b = std::bit_width(us - 1);
  const std::uint64_t half = std::uint64_t{1} << (b - 1);
  const std::size_t index = 2 * static_cast<std::size_t>(b - 5) - (us <= half + half / 2 ? 1 : 0);
  return index < kBounds ? index : kBounds;
}

std::uint64_t LatencyHistogram::quantile_us(double q) const {
  if (count_ == 0) return 0;
  static constexpr auto bounds = upper_bounds_us();
  const double rank = q * static_cast<double>(count_);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    if (static_cast<double>(below + counts_[i]) >= rank) {
      if (i == kBounds) return bounds[kBounds - 1];
      const double lo = i == 0 ? 0.0 : static_cast<double>(bounds[i - 1]);
      const double hi = static_cast<double>(bounds[i]);
      const double within = (rank - static_cast<double>(below)) / static_cast<double>(counts_[i]);
      return static_cast<std::uint64_t>(lo + (hi - lo) * std::max(0.0, within));
    }
    below += counts_[i];
  }
  return bounds[kBounds - 1];
}

namespace {
// At most `n` bytes of `s`, cut before a UTF-8 continuation byte so the text stays valid.
std::string_view utf8_prefix(std::string_view s, std::size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}
}  // namespace

void FailureRing::push(std::string_view node, ErrorCode code, std::string_view message, TimePoint at) {
  RecentFailure& slot = ring_[next_];
  slot.node.assign(node);  // reuses the slot's buffers once the ring has wrapped
  slot.code = code;
  slot.message.assign(utf8_prefix(message, kMaxMessageBytes));
  slot.at = at;
  next_ = (next_ + 1) % kCapacity;
  if (size_ < kCapacity) ++size_;
}

std::vector<RecentFailure> FailureRing::newest_first() const {
  std::vector<RecentFailure> out;
  out.reserve(size_);
  for (std::size_t k = 1; k <= size_; ++k) out.push_back(ring_[(next_ + kCapacity - k) % kCapacity]);
  return out;
}

}  // namespace muster::broker
