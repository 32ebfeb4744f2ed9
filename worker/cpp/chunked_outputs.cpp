// chunked_outputs.cpp — the caller's end of a call's chunked outputs (chunked_outputs.hpp).
#include "muster/chunked_outputs.hpp"

#include <stdexcept>

#include <fmt/format.h>

namespace muster {

ChunkedOutputs::ChunkedOutputs(std::uint64_t window, std::shared_ptr<OutputSink> sink,
                               std::chrono::milliseconds resume_after)
    : window_(window), sink_(std::move(sink)), resume_after_(resume_after) {}

ChunkedOutputs::~ChunkedOutputs() {
  if (!sink_) return;
  for (auto& [n, s] : streams_)
    if (!s.taken) sink_->discard(n);
}

ChunkedOutputs::Stream& ChunkedOutputs::stream(std::uint32_t n) {
  auto it = streams_.find(n);
  if (it != streams_.end()) return it->second;
  Stream& s = streams_[n];
  s.granted = window_;
  s.resume = ResumeRule(resume_after_);
  return s;
}

std::optional<std::string> ChunkedOutputs::on_chunk(std::uint32_t n, std::uint64_t offset,
                                                    std::span<const std::uint8_t> data, std::optional<Grant>& grant,
                                                    ResumeRule::Clock::time_point now) {
  if (n == 0 || n % 2 != 0) return fmt::format("a chunk of stream {}, not one of the worker's (even) streams", n);
  Stream& s = stream(n);
  if (s.taken) return std::nullopt;  // resolved already: late
  auto verdict = s.resume.on_chunk(s.received, offset, data.size(), now);
  if (verdict.resume) grant = Grant{n, s.granted, true, s.received};
  if (!verdict.take) return std::nullopt;  // had it whole, or past a gap
  data = data.subspan(verdict.skip);
  s.resume.taken(now);
  if (sink_) {
    try {
      sink_->write(n, data);
    } catch (const std::exception& e) {
      return fmt::format("chunked stream {}: {}", n, e.what());
    }
  } else {
    s.buffer.insert(s.buffer.end(), data.begin(), data.end());
  }
  s.hash.update(data);
  s.received += data.size();
  received_ += data.size();
  // Taken (held or written): the worker may run one window ahead again, in steps of half one.
  if (s.received + window_ - s.granted >= std::max<std::uint64_t>(1, window_ / 2)) {
    s.granted = s.received + window_;
    grant = Grant{n, s.granted};
  }
  return std::nullopt;
}

std::vector<ChunkedOutputs::Grant> ChunkedOutputs::stalled(ResumeRule::Clock::time_point now) {
  std::vector<Grant> due;
  for (auto& [n, s] : streams_)
    if (!s.taken && s.resume.stalled(s.received, s.granted, now)) due.push_back(Grant{n, s.granted, true, s.received});
  return due;
}

std::optional<std::string> ChunkedOutputs::resolve(Map& outputs) {
  for (auto& [port, value] : outputs) {
    if (value.kind() != ValueKind::Chunked) continue;
    const ChunkedValue ref = value.as_chunked();
    Stream& s = stream(ref.stream);  // a stream that brought nothing: 0 bytes
    if (s.taken) return fmt::format("output {}: chunked stream {} is named by another output too", port, ref.stream);
    if (s.received != ref.size)
      return fmt::format("output {}: chunked stream {}: {} of {} bytes received", port, ref.stream, s.received, ref.size);
    if (s.hash.finish() != ref.sha256) return fmt::format("output {}: chunked stream {}: sha256 mismatch", port, ref.stream);
    if (sink_) {
      try {
        sink_->commit(ref.stream, port);
      } catch (const std::exception& e) {
        return fmt::format("output {}: {}", port, e.what());
      }
    } else {
      value = Value(Bytes(std::move(s.buffer)));
      s.buffer = {};
    }
    s.taken = true;
  }
  return std::nullopt;
}

}  // namespace muster
