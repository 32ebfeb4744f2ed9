// context.cpp — what a handler sees of its request.
#include <thread>

#include <fmt/format.h>

#include "muster/worker.hpp"

namespace muster {

const Value& Context::input(std::string_view name) const {
  if (const Value* v = inputs_.find(name)) return *v;
  throw WorkError(fmt::format("missing input '{}'", name), ErrorCode::InvalidRequest);
}

Value Context::input_or(std::string_view name, Value fallback) const {
  const Value* v = inputs_.find(name);
  return v && !v->is_null() ? *v : fallback;
}

void Context::progress(std::uint64_t step, std::uint64_t total, const std::string& message) {
  if (progress_) progress_(step, total, message);
}

bool Context::emit(const Map& values) {
  if (!emit_) throw StreamNotRequested(node_);
  return emit_(values);
}

bool Context::sleep_for(std::chrono::milliseconds d) const {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (aborted()) return false;
    auto left = until - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(10)));
  }
  return !aborted();
}

}  // namespace muster
