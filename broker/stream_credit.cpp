// stream_credit.cpp — the credit rules of one item stream (stream_credit.hpp, PROTOCOL.md §7.8).
#include "stream_credit.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace muster::broker {

std::optional<Grant> ItemStream::window_for(std::uint32_t items, std::uint64_t bytes, const StreamLimits& limits) {
  if (items == 0) return std::nullopt;
  Grant w;
  w.items = std::min<std::uint64_t>(items, std::max<std::uint32_t>(limits.max_items, 1));
  w.bytes = std::min<std::uint64_t>(bytes ? bytes : limits.default_bytes, std::max<std::uint64_t>(limits.max_bytes, 1));
  return w;
}

std::unique_ptr<ItemStream> ItemStream::open(std::uint32_t items, std::uint64_t bytes, const StreamLimits& limits) {
  auto window = window_for(items, bytes, limits);
  if (!window) return nullptr;
  return std::make_unique<ItemStream>(*window, Grant{items, bytes ? bytes : limits.default_bytes});
}

Grant ItemStream::allowed() const {
  // A caller cannot have consumed more than it was sent: beyond that plus one window, a grant
  // would let the worker fill musterd's queues towards a caller that does not read.
  auto cap = [](std::uint64_t forwarded, std::uint64_t window) {
    return forwarded > UINT64_MAX - window ? UINT64_MAX : forwarded + window;
  };
  return Grant{std::max(granted_.items, std::min(caller_.items, cap(received_.items, window_.items))),
               std::max(granted_.bytes, std::min(caller_.bytes, cap(received_.bytes, window_.bytes)))};
}

std::optional<Grant> ItemStream::on_credit(std::uint64_t items, std::uint64_t bytes) {
  caller_ = Grant{std::max(caller_.items, items), std::max(caller_.bytes, bytes)};
  Grant next = allowed();
  if (next == granted_) return std::nullopt;
  granted_ = next;
  return granted_;
}

std::optional<Grant> ItemStream::regrant() {
  Grant next = allowed();
  if (next == granted_) return std::nullopt;
  bool used_up = received_.items >= granted_.items || received_.bytes >= granted_.bytes;
  bool half_more = next.items - granted_.items >= std::max<std::uint64_t>(1, window_.items / 2) ||
                   next.bytes - granted_.bytes >= std::max<std::uint64_t>(1, window_.bytes / 2);
  if (!used_up && !half_more) return std::nullopt;
  granted_ = next;
  return granted_;
}

ItemVerdict ItemStream::on_item(std::uint64_t seq, std::uint64_t size) {
  if (seq < received_.items) return ItemVerdict::Duplicate;
  if (seq > received_.items) return ItemVerdict::Gap;
  // The item's own size does not count: bytes sent before it must be below the grant.
  if (received_.items >= granted_.items || received_.bytes >= granted_.bytes) return ItemVerdict::OverCredit;
  ++received_.items;
  received_.bytes += size;
  return ItemVerdict::Forward;
}

std::optional<Grant> ItemStream::republish() const {
  if (granted_ == window_) return std::nullopt;  // the WorkRequest carried it
  if (received_.items >= granted_.items || received_.bytes >= granted_.bytes) return std::nullopt;  // used up
  return granted_;
}

void ItemStream::restart() {
  granted_ = window_;
  caller_ = asked_;
  received_ = {};
}

std::string ItemStream::describe(ItemVerdict verdict, std::uint64_t seq, std::uint64_t size) const {
  switch (verdict) {
    case ItemVerdict::Forward: return fmt::format("item {} ({} bytes) forwarded", seq, size);
    case ItemVerdict::Gap:
      return fmt::format("item {} arrived after item {}: {} item(s) of the stream were lost between the "
                         "worker and musterd", seq, received_.items ? received_.items - 1 : 0,
                         seq - received_.items);
    case ItemVerdict::Duplicate:
      return fmt::format("the worker sent item {} again (items 0 to {} were already received)", seq,
                         received_.items - 1);
    case ItemVerdict::OverCredit:
      return fmt::format("the worker sent item {} beyond its credit ({} item(s), {} bytes granted; {} "
                         "item(s), {} bytes sent before it)", seq, granted_.items, granted_.bytes,
                         received_.items, received_.bytes);
  }
  return {};
}

}  // namespace muster::broker
