// metrics_server.cpp — see metrics_server.hpp.
#include "metrics_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/prometheus_text.hpp"

namespace muster::broker {

// ---- MetricsExchange -------------------------------------------------------------------------

MetricsExchange::MetricsExchange() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(fmt::format("eventfd: {}", std::strerror(errno)));
}

MetricsExchange::~MetricsExchange() { ::close(fd_); }

std::shared_ptr<const MetricsSnapshot> MetricsExchange::request(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  const auto asked_at = generation_;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  published_.wait_for(lock, wait, [&] { return generation_ != asked_at; });
  return latest_;
}

bool MetricsExchange::wanted() {
  std::uint64_t count = 0;
  return ::read(fd_, &count, sizeof count) == sizeof count && count > 0;
}

void MetricsExchange::publish(std::shared_ptr<const MetricsSnapshot> snapshot) {
  {
    std::lock_guard lock(mutex_);
    latest_ = std::move(snapshot);
    ++generation_;
  }
  published_.notify_all();
}

// ---- MetricsServer ---------------------------------------------------------------------------

namespace {

constexpr auto kIoTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxRequestBytes = 8192;

std::pair<std::string, std::string> split_host_port(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    throw std::invalid_argument(fmt::format("--metrics-address '{}': expected HOST:PORT", address));
  std::string host = address.substr(0, colon), port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) throw std::invalid_argument(fmt::format("--metrics-address '{}': no host", address));
  return {host, port};
}

bool is_loopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    auto& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(&a);
  }
  return false;
}

std::string address_text(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  return fmt::format("[{}]:{}", host, ntohs(in6->sin6_port));
}

void set_timeouts(int fd) {
  timeval tv{static_cast<time_t>(kIoTimeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string http_answer(int status, std::string_view reason, std::string_view content_type,
                        const std::string& body) {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     status, reason, content_type, body.size(), body);
}

}  // namespace

MetricsServer::MetricsServer(const std::string& address, bool allow_remote, MetricsExchange& exchange)
    : exchange_(exchange) {
  auto [host, port] = split_host_port(address);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (host == "localhost" ? 0 : AI_NUMERICHOST);
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::invalid_argument(fmt::format("--metrics-address '{}': {} (use a numeric address such "
                                            "as 127.0.0.1:9464, or localhost:PORT)",
                                            address, ::gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  if (!allow_remote && !is_loopback(found->ai_addr))
    throw std::invalid_argument(fmt::format(
        "--metrics-address '{}' is not a loopback address: /metrics is served without "
        "authentication, so musterd serves it beyond this host only with --metrics-allow-remote",
        address));
  listen_fd_ = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(fmt::format("metrics socket: {}", std::strerror(errno)));
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  if (::bind(listen_fd_, found->ai_addr, found->ai_addrlen) != 0 || ::listen(listen_fd_, 16) != 0) {
    auto why = std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error(fmt::format("cannot serve /metrics on {}: {}", address, why));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_ = address_text(ss);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { serve(); });
  spdlog::info("metrics on http://{}/metrics", bound_);
}

MetricsServer::~MetricsServer() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
}

void MetricsServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics server: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    set_timeouts(fd);
    serve_connection(fd);
    ::close(fd);
  }
}

void MetricsServer::serve_connection(int fd) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;  // closed, or no full request within the timeout
    request.append(buf, static_cast<std::size_t>(n));
  }
  auto answer = respond(request, [this] {
    auto snapshot = exchange_.request(std::chrono::seconds(2));
    if (!snapshot) return std::string();
    return render_metrics(*snapshot, read_process_metrics());
  });
  for (std::size_t sent = 0; sent < answer.size();) {
    auto n = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the scraper went away or stopped reading for 5 s
    sent += static_cast<std::size_t>(n);
  }
}

std::string MetricsServer::respond(std::string_view request, const std::function<std::string()>& render) {
  auto line_end = request.find("\r\n");
  if (line_end == std::string_view::npos)
    return http_answer(400, "Bad Request", "text/plain", "incomplete request\n");
  auto line = request.substr(0, line_end);
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1)
    return http_answer(400, "Bad Request", "text/plain", "bad request line\n");
  auto method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto path = target.substr(0, target.find('?'));
  if (path != "/metrics") return http_answer(404, "Not Found", "text/plain", "only /metrics is served here\n");
  if (method != "GET" && method != "HEAD")
    return http_answer(405, "Method Not Allowed", "text/plain", "use GET\n");
  auto body = render();
  if (body.empty())
    return http_answer(503, "Service Unavailable", "text/plain", "musterd's loop did not answer in time\n");
  auto answer = http_answer(200, "OK", PrometheusText::kContentType, body);
  if (method == "HEAD") answer.resize(answer.size() - body.size());
  return answer;
}

}  // namespace muster::broker
