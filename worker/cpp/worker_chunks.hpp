// worker_chunks.hpp — the C++ worker's chunked values (PROTOCOL.md §7.9), between its socket
// thread and a handler thread: the input streams the socket thread fills with the caller's
// chunks and a handler thread reads (granting credit as it reads), and the credit of the output
// streams a handler thread sends on.
// Resumption (§7.9): an input stream takes overlapping chunks' new bytes, drops what it has, and
// asks for a gap or a stall with a resume Credit (R1-R3, and R4 after a re-attach: the socket
// thread asks); an output stream goes back to a resume Credit's offset (R9), reading again from
// the bytes (a Bytes output) or from the last kResumeKeepBytes read (an OutputSource, R10), and
// keeps that means once sent, so the socket thread can send again until the answer is
// confirmed (R11).
// Owns: the hand-over of one request's chunks and credits between the two threads.
// Must never: block the socket thread (it only queues, wakes, and sends again bytes already
// read), let a reader take bytes past the size or a value whose sha256 differs, hash a byte
// twice, or let a sender pass the caller's grant.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <zmq.hpp>

#include "muster/chunking.hpp"
#include "muster/value.hpp"
#include "muster/worker.hpp"

namespace muster {

// The most chunked streams of one side of a call (PROTOCOL.md §7.9, kMaxChunkStreams).
inline constexpr std::uint32_t kMaxWorkerChunkStreams = 16;

// Credit{request_id, stream, items 0, bytes} and Chunk{request_id, stream, offset, data} from the
// worker (data aligned on 8 bytes, as §7.9 asks of writers).
// With `resume`: a resume Credit at that offset (§7.9 R2-R4).
zmq::message_t worker_credit_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                     std::uint64_t bytes, std::optional<std::uint64_t> resume = std::nullopt);
zmq::message_t worker_chunk_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                    std::uint64_t offset, std::span<const std::uint8_t> data);
// The same Chunk, its data read in place: `fill` writes at most the span it gets (`max` bytes)
// and returns the count (0: the end, an empty piece). No copy of the bytes (but for a last
// piece shorter than `max`).
SentPiece worker_chunk_read(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                            std::uint64_t offset, std::size_t max,
                            const std::function<std::size_t(std::span<std::uint8_t>)>& fill);

namespace detail {

// One chunked input of a request. The socket thread push()es the chunks musterd forwards; one
// handler thread reads them (next()), each checked by a ChunkReceiver (offset, size, sha256),
// and grants the caller more as it reads, through `grant`, set before the first read. The
// socket thread holds at most the window: musterd forwards nothing beyond the worker's grant.
struct InputFeed {
  InputFeed(std::string port, ChunkedValue ref, ChunkDelivery delivery, std::shared_ptr<std::atomic<bool>> aborted,
            std::chrono::milliseconds resume_after = kResumeAfter);

  // The first grant, sent when the WorkRequest comes (0: an empty value, none to send).
  std::uint64_t initial_grant() const { return granted_; }
  // The grant sent so far (the `bytes` of a resume Credit).
  std::uint64_t granted() const { return granted_; }
  std::uint32_t stream() const { return stream_; }
  std::uint64_t size() const { return size_; }

  // Socket thread: a chunk musterd forwarded, its `data` lying in `message` (null: none), which
  // stays the caller's: the bytes queued are kept in a copy of it that shares its content, not
  // copied (receive_piece: a small chunk is copied). Nothing is checked but the grant here.
  // R1: only its bytes past those received are queued; R2: past a gap it is dropped and the
  // offset of a resume Credit to send now is returned (at most one per resume_after).
  std::optional<std::uint64_t> push(std::uint64_t offset, std::span<const std::uint8_t> data,
                                    zmq::message_t* message = nullptr,
                                    ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  // Socket thread, R3: granted bytes not received for resume_after: the resume offset, or nullopt.
  std::optional<std::uint64_t> stalled(ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  // Socket thread, R4: the bytes received when not all came (a resume Credit at it), or nullopt.
  std::optional<std::uint64_t> incomplete();
  // Socket thread: the request was aborted, or the stream can never complete: wakes the reader.
  void wake();

  // Reader: the next chunk, checked, or an empty span at the end once the size and sha256 are
  // checked. The span lies in the message that brought the chunk, valid until the next call. Throws WorkError(InvalidRequest) "input <port>: chunked stream N: ..." for a bad
  // value, WorkError when the request is aborted while it waits.
  std::span<const std::uint8_t> next();
  // Reader: the whole value, checked (the feed must be ChunkDelivery::Buffer).
  Bytes take_all();

  std::function<void(std::uint64_t granted)> grant;  // sends a Credit with this total
  const std::string port;

 private:
  struct Piece {
    std::uint64_t offset;
    ReceivedPiece bytes;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Piece> queue_;  // what the socket thread received and the reader has not taken
  std::optional<std::string> push_error_;
  std::uint64_t pushed_ = 0;  // bytes queued in total: R, what was received in order (under mu_)
  ResumeRule resume_;         // the socket thread's (under mu_)
  std::atomic<std::uint64_t> granted_;  // the grant sent so far (written by the reader)
  ChunkReceiver receiver_;  // the reader's, never touched by the socket thread
  ReceivedPiece current_;   // the chunk next() returned last (its message kept until the next)
  std::shared_ptr<std::atomic<bool>> aborted_;
  std::uint32_t stream_;
  std::uint64_t size_;
};

}  // namespace detail

// The output streams (2, 4, …) of one request: each one's grant, starting at the WorkRequest's
// chunk_window_bytes, raised by the caller's Credits (socket thread); a resume Credit sends it
// back (R9). The handler thread sends a stream (send_chunked), waiting on its grant; once it
// sent all of it, a resume Credit is the socket thread's to answer (send_again), from what the
// stream kept (R10, R11). An OutputSource's pieces are kept as the chunk messages that carried
// them (SentBytesKeep): a chunk that is a whole piece goes (again) as a copy of that message,
// which shares its content; only a chunk cut elsewhere (a grant or a resume offset inside a
// piece) is built anew from the kept bytes.
class OutputCredits {
 public:
  // Sends the chunk [offset, offset + data.size()) of `stream`: `ready` when set (a message
  // that carries exactly those bytes), else a message built from `data`.
  using SendChunk = std::function<void(std::uint32_t stream, std::uint64_t offset, std::span<const std::uint8_t> data,
                                       std::optional<zmq::message_t> ready)>;
  // The next piece of an OutputSource: stream, its offset, at most `max` bytes; empty at the end.
  using ReadPiece = std::function<SentPiece(std::uint32_t stream, std::uint64_t offset, std::size_t max)>;
  explicit OutputCredits(std::uint64_t initial) : initial_(initial) {}
  // Socket thread: a Credit for `stream` (the highest total counts); with `resume`, a resume
  // Credit at that offset.
  void grant(std::uint32_t stream, std::uint64_t bytes, std::optional<std::uint64_t> resume = std::nullopt);
  void wake();
  // Socket thread: for a stream the handler thread sent whole, the chunks a resume Credit or a
  // Credit asks for now, through `send` (never past the grant). An error ("output <port>:
  // chunked stream N: cannot resume at offset R: ...") if the bytes are no longer kept.
  std::optional<std::string> send_again(std::uint32_t stream, const SendChunk& send);
  // Whether some stream was sent whole (the socket thread may need to send it again).
  bool any_sent() const;
  std::uint64_t initial() const { return initial_; }
  // Set once a chunk was sent: from then on the call cannot be re-run (§7.9 rule 5).
  std::atomic<bool> started{false};

  // Handler thread: sends output `port` as chunked stream `stream` within the grants, each chunk
  // through `send`, the bytes from `whole` (a Bytes output) or else read through `next_piece`
  // at most one chunk beyond the grant, keeping the last kResumeKeepBytes read (the pieces, not
  // a copy). Returns the reference to
  // put in the Result (size and sha256 computed as the bytes are first read). Throws WorkError
  // if aborted, or if a resume Credit goes back before what was kept.
  ChunkedValue send_chunked(const std::string& port, std::uint32_t stream, const Bytes* whole,
                            const ReadPiece& next_piece,
                            const std::atomic<bool>& aborted, std::size_t chunk_bytes, const SendChunk& send);

 private:
  struct Stream {
    std::uint64_t granted = 0;
    std::optional<std::uint64_t> resume;  // a resume Credit's offset not acted on yet
    std::string port;
    const Bytes* whole = nullptr;         // a Bytes output (the handler thread's while sending)
    Bytes whole_kept;                     // ... kept once sent, to send again
    std::optional<SentBytesKeep> keep;    // an OutputSource's last pieces read, as their messages
    std::uint64_t read = 0;               // bytes read and hashed (each once)
    std::uint64_t next = 0;               // where the next chunk starts
    std::uint64_t sent = 0;               // the most bytes sent (a resume beyond is ignored)
    bool finished = false;                // sent whole: send_again's from now on
    std::size_t chunk_bytes = kChunkBytes;
  };
  Stream& stream_locked(std::uint32_t stream);
  // Acts on a pending resume (under mu_): an error if its bytes are gone.
  std::optional<std::string> take_resume(std::uint32_t n, Stream& s);
  static std::span<const std::uint8_t> kept_bytes(const Stream& s, std::uint64_t offset, std::size_t max);
  // The kept message carrying exactly [offset, offset + n) of an OutputSource, shared (under mu_).
  static std::optional<zmq::message_t> kept_message(Stream& s, std::uint64_t offset, std::size_t n);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint32_t, Stream> streams_;
  std::uint64_t initial_;
};

}  // namespace muster
