// endpoints.cpp — default endpoints and endpoint rules.
#include "muster/endpoints.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "muster/runtime_dir.hpp"

namespace muster {

std::string_view socket_role_name(SocketRole r) {
  switch (r) {
    case SocketRole::Request: return "request";
    case SocketRole::Response: return "response";
    case SocketRole::Client: return "client";
    case SocketRole::Enrollment: return "enrollment";
  }
  return "?";
}

std::string default_endpoint(SocketRole role) {
  return fmt::format("ipc://{}/{}.sock", runtime_dir().string(), socket_role_name(role));
}

int default_tcp_port(SocketRole role) {
  switch (role) {
    case SocketRole::Request: return 7899;
    case SocketRole::Response: return 7898;
    case SocketRole::Enrollment: return 7900;
    case SocketRole::Client: return 7901;
  }
  return 0;
}

bool is_tcp(std::string_view e) { return e.starts_with("tcp://"); }
bool is_ipc(std::string_view e) { return e.starts_with("ipc://"); }

void check_endpoint(std::string_view e, bool curve, bool insecure) {
  if (is_tcp(e)) {
    if (!curve && !insecure)
      throw std::invalid_argument(fmt::format(
          "{}: tcp:// endpoints are CURVE-encrypted; without CURVE they are refused unless you "
          "pass --insecure",
          e));
    return;
  }
  if (is_ipc(e)) {
    if (e.size() <= 6) throw std::invalid_argument(fmt::format("{}: empty ipc path", e));
    return;
  }
  if (e.starts_with("inproc://")) return;
  throw std::invalid_argument(
      fmt::format("{}: unsupported endpoint (use ipc://PATH or tcp://HOST:PORT)", e));
}

std::vector<std::string> endpoint_list(std::string_view address) {
  std::vector<std::string> out;
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  for (std::size_t start = 0;;) {
    auto comma = address.find(',', start);
    auto item = trim(address.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (item.empty())
      throw std::invalid_argument(fmt::format(
          "'{}': empty endpoint in the address list (give ENDPOINT or ENDPOINT,ENDPOINT)", address));
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

void prepare_ipc_bind(std::string_view endpoint) {
  if (!is_ipc(endpoint)) return;
  std::filesystem::path path(std::string(endpoint.substr(6)));
  if (path.has_parent_path()) ensure_private_dir(path.parent_path());
  if (!std::filesystem::exists(path)) return;
  // A socket file exists: is a daemon answering on it?
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  if (live)
    throw std::runtime_error(fmt::format(
        "{} is in use by a running process (another musterd?); refusing to take it over",
        endpoint));
  std::filesystem::remove(path);
}

}  // namespace muster
