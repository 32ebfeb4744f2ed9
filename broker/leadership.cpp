// leadership.cpp — the lease rules (leadership.hpp).
#include "leadership.hpp"

#include <algorithm>

namespace muster::broker::leadership {

Decision decide(const Lease& row, const std::string& me, std::uint64_t mine, WallTime now, Millis term) {
  if (mine != 0) {
    // A leader renews only the row it took: same holder and epoch. Anything else means a
    // standby took over (the row may even have been released and taken again meanwhile).
    if (row.holder == me && row.epoch == mine) return {Claim::Renew, Lease{me, mine, now + term}};
    return {Claim::Lost, row};
  }
  if (row.holder.empty() || row.expires <= now)
    return {Claim::Take, Lease{me, row.epoch + 1, now + term}};
  return {Claim::Wait, row};
}

bool may_write(std::uint64_t row_epoch, std::uint64_t mine) { return mine != 0 && row_epoch == mine; }

Millis retry_in(const Lease& row, WallTime now, Millis poll) {
  const Millis left = row.holder.empty() ? Millis(0) : std::chrono::duration_cast<Millis>(row.expires - now);
  return std::clamp(left, Millis(10), std::max(poll, Millis(10)));
}

}  // namespace muster::broker::leadership
