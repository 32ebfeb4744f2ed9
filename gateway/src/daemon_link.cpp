// daemon_link.cpp — see daemon_link.hpp.
#include "daemon_link.hpp"

#include <poll.h>

#include <algorithm>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "muster/messages.hpp"

namespace muster::gateway {

DaemonLink::DaemonLink(ClientOptions client, std::chrono::milliseconds poll_interval, OnSnapshot on_snapshot)
    : options_(std::move(client)), interval_(poll_interval), on_snapshot_(std::move(on_snapshot)) {
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

void DaemonLink::set_workspaces(std::vector<std::string> workspaces) {
  std::lock_guard lock(mu_);
  workspaces_ = std::move(workspaces);
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
    on_snapshot_(Snapshot{.up = false, .error = e.what()});
    return false;
  }
}

void DaemonLink::poll_daemon() {
  if (!client_ && !connect()) return;
  std::vector<std::string> workspaces;
  {
    std::lock_guard lock(mu_);
    workspaces = workspaces_;
  }
  Snapshot s;
  try {
    for (auto& ws : workspaces) {
      WorkspaceView& v = s.workspaces[ws];
      OnBehalfOf as{kPollUser, ws, "read"};
      try {
        v.nodes = client_->nodes(as);
        v.workers = client_->workers(as);
        v.status = client_->status(as);
      } catch (const CallError& e) {
        if (e.code() == wire::ErrorCode::Unavailable) throw;
        // musterd answered, and refused this workspace (a gateway not enrolled for it).
        v = WorkspaceView{Json::array(), Json::array(), Json::object(), Json(), e.what(),
                          std::string(error_code_name(e.code()))};
        continue;
      }
      // An older musterd refuses GetNodeStats (BadMessage): the rest of the view still counts.
      try {
        v.node_stats = client_->node_stats(as);
      } catch (const CallError& e) {
        if (e.code() == wire::ErrorCode::Unavailable) throw;
      }
    }
    if (workspaces.empty()) {
      // Nobody to serve yet: still find out whether musterd answers (a refusal is an answer).
      try {
        client_->status();
      } catch (const CallError& e) {
        if (e.code() == wire::ErrorCode::Unavailable) throw;
      }
    }
    s.up = true;
  } catch (const std::exception& e) {
    s.workspaces.clear();
    s.up = false;
    s.error = e.what();
    client_.reset();  // start over with a fresh socket
    watches_.clear();
  }
  if (s.up) {
    std::vector<std::string> served;
    for (auto& [name, view] : s.workspaces)
      if (view.error.empty()) served.push_back(name);
    keep_watches(served);
  }
  on_snapshot_(std::move(s));
}

void DaemonLink::keep_watches(const std::vector<std::string>& workspaces) {
  for (auto it = watches_.begin(); it != watches_.end();)
    it = std::find(workspaces.begin(), workspaces.end(), it->first) == workspaces.end() ? watches_.erase(it) : ++it;
  for (auto& ws : workspaces) {
    if (watches_.contains(ws)) continue;
    try {
      WatchOptions what;
      what.on_behalf_of = OnBehalfOf{kPollUser, ws, "read"};
      watches_.emplace(ws, std::make_unique<Watch>(options_, what));
    } catch (const std::exception& e) {
      spdlog::warn("cannot watch workspace {} (its lists are polled only): {}", ws, e.what());
    }
  }
}

bool DaemonLink::drain_watches() {
  bool changed = false;
  for (auto it = watches_.begin(); it != watches_.end();) {
    try {
      // Every event counts, a watch's first snapshot too: it shows musterd as it was when the
      // watch began, which may be after the poll that opened it (a worker that attached in
      // between, e.g. to a standby that just took over, would be missing until the next poll).
      while (it->second->next(std::chrono::milliseconds(0))) changed = true;
      ++it;
    } catch (const CallError& e) {
      spdlog::debug("watch of workspace {} ended: {}", it->first, e.what());
      it = watches_.erase(it);
      changed = true;  // what ended it (musterd gone or back) shows in a poll now
    }
  }
  return changed;
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
      next_poll = Clock::now() + interval_;
    }
    if (drain_watches()) {
      poll_daemon();  // a pushed change: the lists now, not at the next poll
      next_poll = Clock::now() + interval_;
      continue;
    }
    // Sleep until the next poll, a pushed event, or a wake (poll_now, stop).
    auto until_poll = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - Clock::now());
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
    for (auto& [ws, w] : watches_) fds.push_back({w->fd(), POLLIN, 0});
    // A watch's fd is edge-triggered (ZMQ_FD): drained above, it signals what comes next; a
    // 250 ms bound covers a signal lost between the drain and this poll.
    int slice = watches_.empty() ? 1000 : 250;
    ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<std::int64_t>(until_poll.count(), 0, slice)));
    auto& fd = fds.front();
    if (fd.revents & POLLIN) {
      std::uint64_t n;
      [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
    }
  }
}

}  // namespace muster::gateway
