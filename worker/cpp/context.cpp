// context.cpp — what a handler sees of its request: its inputs (also as streams), progress,
// items, abort, and the outputs it gives as sources.
#include <algorithm>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "muster/worker.hpp"
#include "worker_chunks.hpp"

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

InputStream& Context::input_stream(std::string_view name) {
  if (auto it = input_streams_.find(name); it != input_streams_.end()) return it->second;
  // Not a streamed port (or an inline value of one): the bytes are in memory already.
  const Value& v = input(name);
  if (v.kind() != ValueKind::Bytes)
    throw WorkError(fmt::format("input '{}' is {}, not bytes: it cannot be read as a stream", name,
                                kind_name(v.kind())),
                    ErrorCode::InvalidRequest);
  InputStream stream;
  stream.inline_ = v.as_bytes();
  stream.size_ = stream.inline_.size();
  return input_streams_.emplace(std::string(name), std::move(stream)).first->second;
}

void Context::output_stream(std::string name, std::unique_ptr<OutputSource> source) {
  if (!source) throw std::invalid_argument(fmt::format("output_stream('{}'): no source", name));
  std::erase_if(output_sources_, [&](const auto& entry) { return entry.first == name; });
  output_sources_.emplace_back(std::move(name), std::move(source));
}

std::span<const std::uint8_t> InputStream::next() {
  if (!piece_.empty()) {  // what read() left of the last piece
    auto out = piece_;
    piece_ = {};
    position_ += out.size();
    return out;
  }
  std::span<const std::uint8_t> out;
  if (feed_) {
    out = feed_->next();
  } else {
    out = inline_.span().subspan(static_cast<std::size_t>(position_));
  }
  position_ += out.size();
  return out;
}

std::size_t InputStream::read(std::span<std::uint8_t> buffer) {
  if (buffer.empty()) return 0;
  if (piece_.empty()) {
    piece_ = next();
    position_ -= piece_.size();  // counted as it is handed out below
  }
  auto n = std::min(buffer.size(), piece_.size());
  std::memcpy(buffer.data(), piece_.data(), n);
  piece_ = piece_.subspan(n);
  position_ += n;
  return n;
}

Bytes InputStream::read_all() {
  std::vector<std::uint8_t> out;
  out.reserve(static_cast<std::size_t>(size_ - std::min(size_, position_)));
  for (auto piece = next(); !piece.empty(); piece = next()) out.insert(out.end(), piece.begin(), piece.end());
  return Bytes(std::move(out));
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
