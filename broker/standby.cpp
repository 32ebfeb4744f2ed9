// standby.cpp — the standby loop (standby.hpp).
#include "standby.hpp"

#include <poll.h>
#include <unistd.h>

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/process.hpp"

namespace muster::broker {

std::string lease_holder(const std::string& instance) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return fmt::format("{}:{}:{}", host[0] ? host : "localhost", ::getpid(), instance);
}

bool wait_until_leading(journal::Journal& journal, SignalPipe& signals, const StandbyMetrics* metrics) {
  using Steady = std::chrono::steady_clock;
  const auto began = Steady::now();
  bool waited = false;
  leadership::Lease seen;
  for (;;) {
    const auto s = journal.try_lead(Steady::now());
    if (s.leading) {
      if (waited)
        spdlog::info("standby: took over {} at epoch {} after {} ms as standby", journal.describe(),
                     journal.epoch(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - began).count());
      return true;
    }
    if (!waited || s.lease.holder != seen.holder || s.lease.epoch != seen.epoch)
      spdlog::info("standby: {} is led by {} (epoch {}); waiting for its lease, no endpoint bound",
                   journal.describe(), s.lease.holder, s.lease.epoch);
    waited = true;
    seen = s.lease;
    // Until the lease can next be free, answer scrapes (if asked) and watch for signals.
    const auto retry_at = Steady::now() + s.retry_in;
    for (auto left = s.retry_in; left.count() > 0 && !signals.triggered();
         left = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - Steady::now())) {
      pollfd p[2] = {{signals.fd(), POLLIN, 0}, {metrics ? metrics->exchange.fd() : -1, POLLIN, 0}};
      ::poll(p, 2, static_cast<int>(left.count()));
      if (p[0].revents & POLLIN) signals.drain();
      if ((p[1].revents & POLLIN) && metrics->exchange.wanted()) metrics->exchange.publish(metrics->snapshot());
    }
    if (signals.triggered()) {
      spdlog::info("signal {} received while standby: stopping", signals.last_signal());
      return false;
    }
  }
}

}  // namespace muster::broker
