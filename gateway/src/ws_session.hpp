// ws_session.hpp — one WebSocket (ws or wss) of the gateway: reads text frames and hands them
// to the Gateway, writes messages, pings every --ping-interval and drops the peer when no pong
// came for --pong-timeout or a write took longer than --write-timeout.
// Messages are framed at once into the session's CoalescingStream and leave at the end of the
// Asio turn, all of a turn in one write (coalescing_stream.hpp, end_of_turn.hpp), and none once
// the socket is closing (ws_write.hpp: no data frame after a Close); while more
// than kRoom bytes are not on the wire yet, messages wait in a queue, and a peer with more than
// --max-queued-messages waiting is dropped as not reading.
// Owns: the keep-alive and write deadlines, the outgoing queue bound.
// Must never: interpret a message (the Gateway does), or block the Asio thread.
#pragma once

#include <deque>

#include <spdlog/spdlog.h>

#include "coalescing_stream.hpp"
#include "gateway.hpp"
#include "ws_write.hpp"

namespace muster::gateway {

template <class Stream>
class WsSession : public WsPeer {
 public:
  WsSession(Stream&& stream, Gateway& gw) : ws_(std::move(stream)), gw_(gw), tick_(ws_.get_executor()) {}

  void run(Request req) {
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = websocket::stream_base::none();  // keep-alive is ours (tick)
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "muster-gateway"); }));
    ws_.read_message_max(gw_.options().max_message_bytes);
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.next_layer().on_written([this] { schedule_flush(); });
    ws_.control_callback([this](websocket::frame_type kind, std::string_view) {
      if (kind == websocket::frame_type::pong) last_pong_ = Clock::now();
    });
    ws_.async_accept(req, [self](beast::error_code ec) { self->on_accept(ec); });
  }

  void send(std::string_view text) override {
    if (closed_ || close_code_ || !ws_.is_open()) return;  // closing: nothing after the Close (ws_write.hpp)
    if (queue_.empty() && ws_.next_layer().buffered() < kRoom) return write_now(text);
    if (queue_.size() >= gw_.options().max_queued_messages) {
      spdlog::warn("WebSocket #{} of {} ({}) is not reading ({} messages queued): dropping it", id, user, remote,
                   queue_.size());
      drop();
      return;
    }
    queue_.emplace_back(text);
  }

  void close(std::uint16_t code) override {
    if (closed_ || close_code_) return;
    close_code_ = code;
    if (queue_.empty()) start_close();  // else once the queue is written (on_flushed)
  }

 private:
  using Clock = std::chrono::steady_clock;
  // Bytes not yet on the wire above which messages wait in queue_ instead of being framed.
  static constexpr std::size_t kRoom = 256 * 1024;

  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::info("WebSocket handshake with {} failed: {}", remote, ec.message());
      closed_ = true;
      return;
    }
    last_pong_ = next_ping_ = Clock::now();
    next_ping_ += seconds(gw_.options().ping_interval_s);
    gw_.ws_opened(shared_from_this());
    do_read();
    do_tick();
  }

  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  // Keep-alive and write deadline, checked a few times per ping interval (at most once a second).
  void do_tick() {
    auto& o = gw_.options();
    tick_.expires_after(std::clamp(seconds(o.ping_interval_s / 4), seconds(0.05), seconds(1)));
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    tick_.async_wait([self](beast::error_code ec) {
      if (ec || self->closed_) return;
      auto now = Clock::now();
      auto& o = self->gw_.options();
      if (now - self->last_pong_ > seconds(o.pong_timeout_s)) {
        spdlog::info("WebSocket #{} of {} ({}): no pong for {} s, dropping it", self->id, self->user, self->remote,
                     o.pong_timeout_s);
        return self->drop();
      }
      auto& out = self->ws_.next_layer();
      if (out.flushing() && now - out.flush_started() > seconds(o.write_timeout_s)) {
        spdlog::info("WebSocket #{} of {} ({}): a write took longer than {} s, dropping it", self->id, self->user,
                     self->remote, o.write_timeout_s);
        return self->drop();
      }
      if (now >= self->next_ping_ && !self->pinging_) {
        self->next_ping_ = now + seconds(o.ping_interval_s);
        self->pinging_ = true;
        self->ws_.async_ping({}, [self](beast::error_code) { self->pinging_ = false; });
      }
      self->do_tick();
    });
  }

  void start_close() {
    close_started_ = true;
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.async_close(static_cast<websocket::close_code>(close_code_), [self](beast::error_code) {});
  }

  void drop() {
    closed_ = true;
    queue_.clear();
    tick_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).socket().close(ec);  // the pending read reports the close
  }

  void do_read() {
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    ws_.async_read(buffer_, [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      if (ec == websocket::error::closed)
        spdlog::info("WebSocket #{} of {} ({}) closed by the peer", id, user, remote);
      else if (ec == websocket::error::message_too_big)
        spdlog::warn("WebSocket #{} of {} ({}) sent a message over {} bytes: closed (1009)", id, user, remote,
                     gw_.options().max_message_bytes);
      else
        spdlog::info("WebSocket #{} of {} ({}) lost: {}", id, user, remote, ec.message());
      closed_ = true;
      queue_.clear();
      tick_.cancel();
      gw_.ws_closed(shared_from_this());
      return;
    }
    gw_.ws_message(*this, std::string_view(static_cast<const char*>(buffer_.data().data()), buffer_.size()),
                   /*binary=*/!ws_.got_text());
    buffer_.consume(buffer_.size());
    if (!closed_) do_read();
  }

  // Frames one message into the stream's memory (no syscall); it leaves at the end of the turn.
  void write_now(std::string_view text) {
    beast::error_code ec;
    if (!write_message(ws_, text, ec)) queue_.clear();  // closing or failed: the pending read reports the close
  }

  void schedule_flush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    gw_.turn.defer([self = std::static_pointer_cast<WsSession>(shared_from_this())] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  void flush() {
    auto& out = ws_.next_layer();
    if (out.unsent() == 0) return;  // a write in progress already carries everything
    auto self = std::static_pointer_cast<WsSession>(shared_from_this());
    out.async_flush([self](beast::error_code ec) { self->on_flushed(ec); });
  }

  void on_flushed(beast::error_code ec) {
    if (ec) {
      queue_.clear();
      return;  // the pending read fails too and reports the close
    }
    while (!queue_.empty() && ws_.next_layer().buffered() < kRoom) {
      write_now(queue_.front());
      if (!queue_.empty()) queue_.pop_front();
    }
    if (queue_.empty() && close_code_ && !close_started_) start_close();
  }

  websocket::stream<CoalescingStream<Stream>> ws_;
  Gateway& gw_;
  net::steady_timer tick_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;  // messages waiting for room (kRoom)
  bool closed_ = false, pinging_ = false, flush_scheduled_ = false, close_started_ = false;
  std::uint16_t close_code_ = 0;  // set once a close was asked for
  Clock::time_point last_pong_{}, next_ping_{};
};

}  // namespace muster::gateway
