// timestamp.cpp — ISO 8601 UTC text <-> system_clock time points.
// Must never: use localtime or the TZ variable.
#include "muster/timestamp.hpp"

#include <ctime>

#include <fmt/format.h>

namespace muster::keys {

std::string format_timestamp(TimePoint t) {
  using namespace std::chrono;
  auto ms_total = duration_cast<milliseconds>(t.time_since_epoch()).count();
  auto secs = ms_total / 1000;
  auto ms = ms_total % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

std::optional<TimePoint> parse_timestamp(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  if (text.size() != 20 && text.size() != 24) return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    out = v;
    return true;
  };
  int Y, M, D, h, m, s, ms = 0;
  if (!num(0, 4, Y) || text[4] != '-' || !num(5, 2, M) || text[7] != '-' || !num(8, 2, D) ||
      text[10] != 'T' || !num(11, 2, h) || text[13] != ':' || !num(14, 2, m) || text[16] != ':' ||
      !num(17, 2, s))
    return std::nullopt;
  if (text.size() == 24) {
    if (text[19] != '.' || !num(20, 3, ms) || text[23] != 'Z') return std::nullopt;
  } else if (text[19] != 'Z') {
    return std::nullopt;
  }
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  std::time_t tt = timegm(&tm);
  // system_clock counts int64 nanoseconds, 1677-09-21 to 2262-04-11: a time outside would
  // overflow in the conversion below (undefined behaviour), so it is refused.
  using std::chrono::seconds;
  constexpr auto kFirst = std::chrono::duration_cast<seconds>(Clock::duration::min()).count() + 1;
  constexpr auto kLast = std::chrono::duration_cast<seconds>(Clock::duration::max()).count() - 1;
  if (tt < kFirst || tt > kLast) return std::nullopt;
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(tt) +
                                                               std::chrono::milliseconds(ms)));
}

}  // namespace muster::keys
