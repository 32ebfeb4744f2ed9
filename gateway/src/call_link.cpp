// call_link.cpp — see call_link.hpp.
#include "call_link.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

namespace muster::gateway {

namespace net = bridge::net;

CallLink::CallLink(net::io_context& ioc, EndOfTurn& turn, ClientOptions options, OnEvent on_event)
    : ioc_(ioc), turn_(turn), options_(std::move(options)), on_event_(std::move(on_event)) {}

CallLink::~CallLink() = default;

void CallLink::connect() {
  if (client_) return;
  try {
    auto client = std::make_unique<Client>(options_);
    int fd = ::dup(client->fd());
    if (fd < 0) throw std::runtime_error("dup of the ZeroMQ descriptor failed");
    fd_ = std::make_unique<net::posix::stream_descriptor>(ioc_, fd);
    client_ = std::move(client);
    ++generation_;
    armed_ = false;
    drain();
  } catch (const std::exception& e) {
    spdlog::warn("cannot connect the calls to musterd: {}", e.what());
    fd_.reset();
    client_.reset();
  }
}

void CallLink::post_event(CallEvent ev) {
  net::post(ioc_, [this, ev = std::move(ev)]() mutable { on_event_(std::move(ev)); });
}

void CallLink::submit(std::uint64_t call_id, CallRequest request, OnBehalfOf user) {
  if (outbox_.empty()) turn_.defer([this] { send_outbox(); });
  outbox_.push_back(Outgoing{call_id, std::move(request), std::move(user)});
}

void CallLink::send_outbox() {
  if (outbox_.empty()) return;
  sending_.swap(outbox_);  // a handler below may submit again: that goes to the next burst
  for (auto& out : sending_) send_now(out);
  sending_.clear();
  schedule_drain();
}

void CallLink::send_now(Outgoing& out) {
  if (!client_) connect();
  if (!client_) return post_event(CallEvent{out.call_id, FailureEvent{wire::ErrorCode::Unavailable, "musterd is unreachable"}});
  try {
    CallOptions o;
    o.on_behalf_of = std::move(out.user);
    o.timeout_ms = out.request.timeout_ms;
    o.parameters = std::move(out.request.parameters);
    // Large uploaded files: read from disk a chunk at a time as the worker grants credit, with
    // the upload's sha256 (not hashed again here; the worker checks the bytes against it).
    for (auto& f : out.request.file_inputs)
      o.input_sources.emplace_back(f.port, std::make_shared<FileSource>(f.path, f.sha256));
    // Asks musterd for progress (want_progress); the events come through drain().
    o.on_progress = [](std::uint64_t, std::uint64_t, const std::string&) {};
    auto rid = client_->submit(out.request.node, out.request.inputs, o);
    request_of_call_[out.call_id] = rid;
    call_of_request_[rid] = out.call_id;
  } catch (const CallError& e) {
    post_event(CallEvent{out.call_id, FailureEvent{e.code(), e.what()}});
  } catch (const std::exception& e) {
    post_event(CallEvent{out.call_id, FailureEvent{wire::ErrorCode::InvalidRequest, e.what()}});
  }
}

void CallLink::cancel(std::uint64_t call_id) {
  send_outbox();  // a call submitted in this turn is sent first, so that it can be cancelled
  auto it = request_of_call_.find(call_id);
  if (it == request_of_call_.end() || !client_) return;
  client_->cancel(it->second);
  schedule_drain();
}

// A send may take the edge of ZeroMQ's descriptor: read what is waiting, once per batch of sends.
void CallLink::schedule_drain() {
  if (drain_posted_) return;
  drain_posted_ = true;
  net::post(ioc_, [this] {
    drain_posted_ = false;
    drain();
  });
}

void CallLink::reset(const std::string& why) {
  for (auto& out : outbox_) post_event(CallEvent{out.call_id, FailureEvent{wire::ErrorCode::Unavailable, why}});
  outbox_.clear();
  for (auto& [call, request] : request_of_call_)
    post_event(CallEvent{call, FailureEvent{wire::ErrorCode::Unavailable, why}});
  request_of_call_.clear();
  call_of_request_.clear();
  if (fd_) {
    boost::system::error_code ec;
    fd_->close(ec);
  }
  fd_.reset();
  client_.reset();
  ++generation_;
  armed_ = false;
}

// Reads every reply waiting (to EAGAIN, which re-arms ZeroMQ's edge-triggered descriptor), hands
// the events on, then waits for the descriptor again.
void CallLink::drain() {
  if (!client_) return;
  for (;;) {
    auto events = client_->poll(std::chrono::milliseconds(0));
    if (events.empty()) break;
    for (auto& ev : events) {
      auto it = call_of_request_.find(ev.request_id);
      if (it == call_of_request_.end()) continue;
      std::uint64_t call = it->second;
      if (ev.terminal()) {
        call_of_request_.erase(it);
        request_of_call_.erase(call);
      }
      on_event_(CallEvent{call, std::move(ev.body)});
      if (!client_) return;  // a handler reset the link
    }
  }
  arm();
}

void CallLink::arm() {
  if (armed_ || !fd_) return;
  armed_ = true;
  fd_->async_wait(net::posix::stream_descriptor::wait_read, [this, gen = generation_](boost::system::error_code ec) {
    if (gen != generation_) return;
    armed_ = false;
    if (!ec) drain();
  });
}

}  // namespace muster::gateway
