// daemon_link.cpp — see daemon_link.hpp.
#include "daemon_link.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace muster::gateway {

DaemonLink::DaemonLink(ClientOptions client, std::chrono::milliseconds poll_interval, Callbacks callbacks)
    : options_(std::move(client)), interval_(poll_interval), cb_(std::move(callbacks)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
}

DaemonLink::~DaemonLink() {
  stop();
  ::close(wake_fd_);
}

void DaemonLink::start() { thread_ = std::thread([this] { run(); }); }

void DaemonLink::stop() {
  stopping_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
}

void DaemonLink::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

// The link drains the whole queue each turn: only the first command of a batch wakes it.
void DaemonLink::submit(std::uint64_t call_id, CallRequest request) {
  bool first;
  {
    std::lock_guard lock(mu_);
    first = commands_.empty();
    commands_.push_back(Submit{call_id, std::move(request)});
  }
  if (first) wake();
}

void DaemonLink::cancel(std::uint64_t call_id) {
  bool first;
  {
    std::lock_guard lock(mu_);
    first = commands_.empty();
    commands_.push_back(Cancel{call_id});
  }
  if (first) wake();
}

void DaemonLink::poll_now() {
  {
    std::lock_guard lock(mu_);
    poll_requested_ = true;
  }
  wake();
}

bool DaemonLink::connect() {
  try {
    client_ = std::make_unique<Client>(options_);
    return true;
  } catch (const std::exception& e) {
    client_.reset();
    cb_.on_snapshot(Snapshot{.up = false, .error = e.what()});
    return false;
  }
}

void DaemonLink::fail_open_calls(const std::string& why) {
  for (auto& [call, request] : request_of_call_)
    emit(CallEvent{call, FailureEvent{wire::ErrorCode::Unavailable, why}});
  request_of_call_.clear();
  call_of_request_.clear();
}

void DaemonLink::flush() {
  if (!out_.empty()) cb_.on_call_events(std::exchange(out_, {}));
}

void DaemonLink::run_commands() {
  std::deque<Command> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(commands_);
  }
  for (auto& cmd : batch) {
    if (auto* s = std::get_if<Submit>(&cmd)) {
      if (!client_) {
        emit(CallEvent{s->call_id, FailureEvent{wire::ErrorCode::Unavailable, "musterd is unreachable"}});
        continue;
      }
      try {
        CallOptions o;
        o.timeout_ms = s->request.timeout_ms;
        o.parameters = std::move(s->request.parameters);
        // Asks musterd for progress (want_progress); the events come through poll().
        o.on_progress = [](std::uint64_t, std::uint64_t, const std::string&) {};
        auto rid = client_->submit(s->request.node, s->request.inputs, o);
        request_of_call_[s->call_id] = rid;
        call_of_request_[rid] = s->call_id;
      } catch (const CallError& e) {
        emit(CallEvent{s->call_id, FailureEvent{e.code(), e.what()}});
      } catch (const std::exception& e) {
        emit(CallEvent{s->call_id, FailureEvent{wire::ErrorCode::InvalidRequest, e.what()}});
      }
    } else {
      auto call = std::get<Cancel>(cmd).call_id;
      auto it = request_of_call_.find(call);
      if (it != request_of_call_.end() && client_) client_->cancel(it->second);
    }
  }
}

void DaemonLink::pump_events(std::chrono::milliseconds wait) {
  if (!client_) return;
  for (auto& ev : client_->poll(wait)) {
    auto it = call_of_request_.find(ev.request_id);
    if (it == call_of_request_.end()) continue;
    std::uint64_t call = it->second;
    if (ev.terminal()) {
      call_of_request_.erase(it);
      request_of_call_.erase(call);
    }
    emit(CallEvent{call, std::move(ev.body)});
  }
}

void DaemonLink::poll_daemon() {
  if (!client_ && !connect()) return;
  Snapshot s;
  try {
    s.nodes = client_->nodes();
    s.workers = client_->workers();
    s.status = client_->status();
    s.up = true;
    // An older musterd refuses GetNodeStats (BadMessage): the rest of the snapshot still counts.
    try {
      s.node_stats = client_->node_stats();
    } catch (const CallError& e) {
      if (e.code() == wire::ErrorCode::Unavailable) throw;
    }
  } catch (const std::exception& e) {
    s.up = false;
    s.error = e.what();
    // Start over with a fresh socket; the calls it carried cannot be answered any more.
    fail_open_calls(fmt::format("connection to musterd lost: {}", e.what()));
    client_.reset();
  }
  cb_.on_snapshot(std::move(s));
}

void DaemonLink::run() {
  using Clock = std::chrono::steady_clock;
  auto next_poll = Clock::now();
  while (!stopping_) {
    bool poll_requested = false;
    {
      std::lock_guard lock(mu_);
      std::swap(poll_requested, poll_requested_);
    }
    if (poll_requested || Clock::now() >= next_poll) {
      poll_daemon();
      flush();
      next_poll = Clock::now() + interval_;
    }
    run_commands();
    pump_events(std::chrono::milliseconds(0));
    flush();
    // Sleep until the daemon's socket, a command or the next poll (at most 20 ms: the ZeroMQ fd
    // is edge-triggered, so the client is asked again regularly).
    auto until_poll = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - Clock::now());
    int timeout = static_cast<int>(std::clamp<std::int64_t>(until_poll.count(), 0, 20));
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {client_ ? client_->fd() : -1, POLLIN, 0}};
    ::poll(fds, client_ ? 2 : 1, timeout);
    if (fds[0].revents & POLLIN) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
    }
  }
  fail_open_calls("the gateway is stopping");
  flush();
}

}  // namespace muster::gateway
