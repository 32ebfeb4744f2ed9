// chunked_outputs.hpp — the caller's end of a call's chunked outputs (PROTOCOL.md §7.9): the
// worker's even streams arrive before the Result that says which port each one is and what its
// size and sha256 are, so each stream is taken in offset order, hashed as it comes, held in
// memory or written to an OutputSink, and checked when the Result names it.
// Owns: the output streams of one call, their credit (granted as the bytes are taken: held or
// written), their resumption (PROTOCOL.md §7.9 R1-R3: a chunk that overlaps what was taken
// gives only its new bytes, one taken already is dropped, a gap or a stall asks for a resume
// Credit at what was taken), and the checks: order, size, sha256.
// Must never: grant more than one window ahead of what was taken, hand out a value whose size
// or sha256 does not match its reference, or leave a sink's stream open (the destructor
// discards what was not committed).
// (The worker SDK's ChunkReceiver, chunking.hpp, receives a stream whose reference is known
// first; this one does not know it until the end.)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "muster/chunking.hpp"
#include "muster/output_sink.hpp"
#include "muster/sha256.hpp"
#include "muster/value.hpp"

namespace muster {

class ChunkedOutputs {
 public:
  // `window`: the initial grant of each stream (Submit.chunk_window_bytes) and how far ahead of
  // what was taken the grants run. `sink`: where the streams go (null: held in memory and
  // returned as Bytes).
  // `resume_after`: how long a granted stream may bring nothing before a resume Credit (R3).
  explicit ChunkedOutputs(std::uint64_t window, std::shared_ptr<OutputSink> sink = nullptr,
                          std::chrono::milliseconds resume_after = kResumeAfter);
  ~ChunkedOutputs();
  ChunkedOutputs(const ChunkedOutputs&) = delete;
  ChunkedOutputs& operator=(const ChunkedOutputs&) = delete;

  // A credit total to send for a stream (Credit{stream, bytes}); with `resume`, a resume
  // Credit at `resume_offset` (the bytes taken).
  struct Grant {
    std::uint32_t stream = 0;
    std::uint64_t bytes = 0;
    bool resume = false;
    std::uint64_t resume_offset = 0;
  };
  // A chunk of the worker's stream. The error names the stream (an odd stream, a sink that
  // cannot write); `grant` is set when a Credit is due (half a window taken since the last
  // one), or a resume Credit (a gap: the chunk is dropped, R2).
  std::optional<std::string> on_chunk(std::uint32_t stream, std::uint64_t offset, std::span<const std::uint8_t> data,
                                      std::optional<Grant>& grant,
                                      ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  // The resume Credits due now for streams that brought none of their granted bytes for
  // resume_after (R3). The caller does not know a stream's size before the Result: a stream
  // whose last chunk came is asked too (the worker then has nothing to send again).
  std::vector<Grant> stalled(ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  // The Result's outputs: each top-level Chunked reference is checked against its stream
  // (a stream that brought other than `size` bytes, or a sha256 mismatch: the error
  // "output <port>: chunked stream N: ...") and replaced by its Bytes, or, with a sink,
  // committed there and left as the reference. Streams no output names are discarded.
  std::optional<std::string> resolve(Map& outputs);
  // Bytes taken so far over all streams.
  std::uint64_t received() const { return received_; }
  // Each stream's bytes taken so far, (stream, offset): what a CallResume says this caller has
  // (PROTOCOL.md §8.3 C4).
  std::vector<std::pair<std::uint32_t, std::uint64_t>> offsets() const {
    std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
    for (auto& [n, s] : streams_) out.emplace_back(n, s.received);
    return out;
  }

 private:
  struct Stream {
    std::uint64_t received = 0, granted = 0;
    std::vector<std::uint8_t> buffer;  // without a sink
    Sha256 hash;
    bool taken = false;  // resolved: committed to the sink or handed out as Bytes
    ResumeRule resume;
  };
  Stream& stream(std::uint32_t n);
  std::uint64_t window_;
  std::shared_ptr<OutputSink> sink_;
  std::map<std::uint32_t, Stream> streams_;
  std::uint64_t received_ = 0;
  std::chrono::milliseconds resume_after_;
};

}  // namespace muster
