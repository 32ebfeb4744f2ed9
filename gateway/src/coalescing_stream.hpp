// coalescing_stream.hpp — a stream layer under Beast's WebSocket that keeps what is written in
// memory and sends it in one write when flushed: the frames of every message queued for a
// WebSocket in one Asio turn leave in one syscall (one TLS record run), not one per message.
// Reads pass straight through.
//   websocket::stream<CoalescingStream<beast::tcp_stream>> ws(std::move(tcp));
//   ws.write(net::buffer(text));            // frames the message into memory, never blocks
//   ws.next_layer().async_flush([](beast::error_code) {...});  // one write of all of it
// A blocking user (the benchmark's client) flushes with flush(ec), and every synchronous read
// flushes first, so a request is never left unsent while its answer is awaited.
// Owns: the bytes written and not yet on the wire (buffered()), the write in progress.
// Must never: block on a write (writes only append), reorder bytes, split what one write call
// gave it (so frames written by Beast's own operations, pings, pongs, close, stay whole), or
// write to the next layer twice at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net.hpp"

namespace muster::gateway {

template <class Next>
class CoalescingStream {
 public:
  using next_layer_type = Next;
  using executor_type = typename Next::executor_type;
  using error_code = boost::beast::error_code;
  using Clock = std::chrono::steady_clock;

  template <class... Args>
  explicit CoalescingStream(Args&&... args) : next_(std::forward<Args>(args)...) {}

  Next& next_layer() { return next_; }
  const Next& next_layer() const { return next_; }
  executor_type get_executor() noexcept { return next_.get_executor(); }

  // Called whenever bytes were appended (e.g. by a Beast ping or close): the owner schedules a
  // flush. Writes the owner makes itself call it too.
  void on_written(std::function<void()> f) { on_written_ = std::move(f); }

  // Bytes written and not yet on the wire (including those of the write in progress).
  std::size_t buffered() const { return out_.size() + sending_.size(); }
  // Bytes written since the last write to the next layer started.
  std::size_t unsent() const { return out_.size(); }
  bool flushing() const { return flushing_; }
  Clock::time_point flush_started() const { return flush_started_; }

  // ---- reads: the next layer's (a synchronous read flushes first) ----
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    error_code ec;
    auto n = read_some(buffers, ec);
    if (ec) boost::throw_exception(boost::system::system_error(ec));
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, error_code& ec) {
    flush(ec);
    if (ec) return 0;
    return next_.read_some(buffers, ec);
  }
  template <class Buffers, class Handler>
  auto async_read_some(const Buffers& buffers, Handler&& handler) {
    return next_.async_read_some(buffers, std::forward<Handler>(handler));
  }

  // ---- writes: appended, complete at once (after a failed flush: that error) ----
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers) {
    error_code ec;
    auto n = write_some(buffers, ec);
    if (ec) boost::throw_exception(boost::system::system_error(ec));
    return n;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers, error_code& ec) {
    ec = error_;
    return ec ? 0 : append(buffers);
  }
  template <class Buffers, class Handler>
  auto async_write_some(const Buffers& buffers, Handler&& handler) {
    return boost::asio::async_initiate<Handler, void(error_code, std::size_t)>(
        [this](auto h, const Buffers& b) {
          error_code ec = error_;
          std::size_t n = ec ? 0 : append(b);
          auto ex = boost::asio::get_associated_executor(h, next_.get_executor());
          boost::asio::post(ex, boost::beast::bind_front_handler(std::move(h), ec, n));
        },
        handler, buffers);
  }

  // Sends everything written so far; `done(ec)` once it is on the wire or the write failed
  // (never from inside this call). Bytes written meanwhile go in the next write, which starts
  // when this one ends if someone waits for them. The owner keeps the stream alive until done.
  void async_flush(std::function<void(error_code)> done) {
    if (!flushing_ && out_.empty()) {
      boost::asio::post(next_.get_executor(), [done = std::move(done), ec = error_] { done(ec); });
      return;
    }
    waiting_next_.push_back(std::move(done));
    if (!flushing_) start_write();
  }

  // Blocking: writes everything buffered (no asynchronous flush may be running).
  void flush(error_code& ec) {
    ec = error_;
    if (ec || out_.empty()) return;
    boost::asio::write(next_, boost::asio::buffer(out_), ec);
    out_.clear();
    if (ec) error_ = ec;
  }

 private:
  template <class Buffers>
  std::size_t append(const Buffers& buffers) {
    auto n = boost::asio::buffer_size(buffers);
    if (n == 0) return 0;
    auto at = out_.size();
    out_.resize(at + n);
    boost::asio::buffer_copy(boost::asio::buffer(out_.data() + at, n), buffers);
    if (on_written_) on_written_();
    return n;
  }

  void start_write() {
    flushing_ = true;
    flush_started_ = Clock::now();
    sending_.swap(out_);
    waiting_now_.swap(waiting_next_);
    boost::asio::async_write(next_, boost::asio::buffer(sending_), [this](error_code ec, std::size_t) {
      flushing_ = false;
      sending_.clear();
      if (sending_.capacity() > kKeepCapacity) std::string().swap(sending_);
      if (ec) error_ = ec;
      auto done = std::move(waiting_now_);
      waiting_now_.clear();
      if (!ec && !waiting_next_.empty()) {
        if (!out_.empty()) {
          start_write();
        } else {  // they asked while this write ran, and nothing was written since
          done.insert(done.end(), std::make_move_iterator(waiting_next_.begin()),
                      std::make_move_iterator(waiting_next_.end()));
          waiting_next_.clear();
        }
      }
      for (auto& d : done) d(ec);
      if (ec) {  // nothing more will be written: whoever waits hears it now
        auto waiters = std::move(waiting_next_);
        waiting_next_.clear();
        for (auto& d : waiters) d(ec);
      }
    });
  }

  static constexpr std::size_t kKeepCapacity = 1 << 20;  // a larger buffer (one huge message) is freed
  Next next_;
  std::string out_, sending_;  // appended; on the wire
  bool flushing_ = false;
  Clock::time_point flush_started_{};
  error_code error_;  // of a failed write: every later write fails with it
  std::function<void()> on_written_;
  std::vector<std::function<void(error_code)>> waiting_now_, waiting_next_;
};

// Beast's WebSocket close ends with a teardown of its next layer: what is still buffered (the
// close frame) goes out first.
template <class Next>
void teardown(boost::beast::role_type role, CoalescingStream<Next>& s, boost::beast::error_code& ec) {
  s.flush(ec);
  using boost::beast::websocket::teardown;
  teardown(role, s.next_layer(), ec);
}

template <class Next, class Handler>
void async_teardown(boost::beast::role_type role, CoalescingStream<Next>& s, Handler&& handler) {
  auto h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
  s.async_flush([&s, role, h](boost::beast::error_code) {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, s.next_layer(), std::move(*h));
  });
}

}  // namespace muster::gateway
