// stream_credit.hpp — the credit rules of one call's item stream (docs/PROTOCOL.md §7.8,
// docs/STREAMS.md §1-§2): the window the daemon grants, the caller's cumulative grants clamped
// and forwarded to the worker, and the check of every item the worker sends against them.
// Owns: the per-stream counters (granted, received = forwarded) and the verdicts; nothing else.
// Must never: touch a socket, read a clock, hold an item (the daemon forwards each at once), or
// decide what a verdict does to the call (BrokerCore does: it ends the call, aborts the worker).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace muster::broker {

// The daemon's bounds on an item window (musterd --stream-window-items, --stream-window-bytes).
struct StreamLimits {
  std::uint32_t max_items = 4096;          // a larger Submit.stream_window_items is cut to it
  std::uint64_t max_bytes = 8ull << 20;    // a larger Submit.stream_window_bytes is cut to it
  std::uint64_t default_bytes = 4ull << 20;  // Submit.stream_window_bytes 0 (items > 0)
};

// Cumulative totals: items the sender may have sent in all, and bytes of their values.
struct Grant {
  std::uint64_t items = 0, bytes = 0;
  bool operator==(const Grant&) const = default;
};

// What the daemon does with one Item of the worker.
enum class ItemVerdict {
  Forward,      // the next seq, within credit: pass it to the caller now
  Gap,          // a seq beyond the next: items were lost on the way (WorkerLost)
  Duplicate,    // a seq already received (a protocol violation)
  OverCredit,   // the next seq, but the worker had no credit left for it (a violation)
};

class ItemStream {
 public:
  // The effective window for a caller that asked for (items, bytes); nullopt when it reads no
  // items (items == 0).
  static std::optional<Grant> window_for(std::uint32_t items, std::uint64_t bytes, const StreamLimits& limits);
  // The stream of a call whose caller asked for (items, bytes): the effective window (cut to the
  // limits) for the worker, the caller's own as its first grant; nullptr when it reads no items.
  static std::unique_ptr<ItemStream> open(std::uint32_t items, std::uint64_t bytes, const StreamLimits& limits);

  // `window`: the effective window; `asked`: the caller's initial grant (its own window, which
  // may be larger: the rest reaches the worker as items are forwarded).
  explicit ItemStream(Grant window, std::optional<Grant> asked = std::nullopt)
      : window_(window), asked_(asked.value_or(window)), granted_(window), caller_(asked_) {}

  // The window every WorkRequest of the call carries (the worker's initial grant).
  Grant window() const { return window_; }
  // The grant the worker has been given, the initial window included.
  Grant granted() const { return granted_; }
  std::uint64_t forwarded_items() const { return received_.items; }
  std::uint64_t forwarded_bytes() const { return received_.bytes; }
  bool forwarded_any() const { return received_.items > 0; }

  // A caller's Credit (cumulative totals): each total kept if higher than the caller's before.
  // The worker is given of it at most what musterd has forwarded plus one window (a caller cannot
  // have consumed more than it was sent, so it cannot make musterd hold more than a window);
  // the rest is given as items are forwarded (regrant). Returns the grant to publish to the
  // worker when it grew (nullopt: stale, repeated, or nothing more may be given yet).
  std::optional<Grant> on_credit(std::uint64_t items, std::uint64_t bytes);

  // One Item of `size` bytes (its values vector) with this seq: counted when Forward.
  ItemVerdict on_item(std::uint64_t seq, std::uint64_t size);

  // After a forwarded item: more of the caller's grant the worker may now be given, when it has
  // used up what it has (it waits) or half a window more became available; else nullopt (one
  // Credit per half window, not per item).
  std::optional<Grant> regrant();

  // The grant to publish again (a PUB message may be lost): the newest one when it is larger
  // than the initial window (the WorkRequest carries that one) and the worker has not used it
  // up. Called once per ping interval per stream (on the worker's Pong).
  std::optional<Grant> republish() const;

  // The call goes to another worker (re-queued after its worker died, nothing forwarded): seq
  // starts again at 0 under the initial window.
  void restart();

  // A sentence naming what the worker did, for the caller's failure and the logs.
  std::string describe(ItemVerdict verdict, std::uint64_t seq, std::uint64_t size) const;

 private:
  Grant window_;
  Grant asked_;      // the caller's window, as it asked (its first grant)
  // What the worker may have now: the caller's totals, at most what was forwarded plus a window.
  Grant allowed() const;

  Grant granted_;    // given to the worker (the WorkRequest's window, then each Credit published)
  Grant caller_;     // the caller's highest totals (the initial window included)
  Grant received_;   // items (next seq) and bytes received from the worker and forwarded
};

}  // namespace muster::broker
