// standby.hpp — a musterd whose journal is shared with a failover pair (PostgreSQL) waits here
// for the lease before it loads the journal and binds its endpoints (docs/DURABILITY.md §12).
// Owns: the standby loop (asking the store when the lease can next be free, logging who leads
// and the takeover), stopping on SIGINT/SIGTERM.
// Must never: bind a socket, load or write calls, or take the lease other than through
// Journal::try_lead (the leadership rules).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "journal.hpp"
#include "metrics_server.hpp"

namespace muster {
class SignalPipe;
}

namespace muster::broker {

// What a standby answers /metrics with (muster_daemon_leading 0), built when a scrape asks.
struct StandbyMetrics {
  MetricsExchange& exchange;
  std::function<std::shared_ptr<const MetricsSnapshot>()> snapshot;
};

// Returns true once `journal` leads (at once for a journal of one daemon), false when SIGINT
// or SIGTERM came first. Throws JournalError when the store cannot be asked. With `metrics`
// (--metrics-address), scrapes are answered while it waits.
bool wait_until_leading(journal::Journal& journal, SignalPipe& signals, const StandbyMetrics* metrics = nullptr);

// How this daemon names itself in the lease row: HOSTNAME:PID:INSTANCE (unique per process,
// so a restarted daemon is a new holder that waits for its predecessor's lease like any other).
std::string lease_holder(const std::string& instance);

}  // namespace muster::broker
