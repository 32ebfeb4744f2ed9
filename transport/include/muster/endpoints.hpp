// endpoints.hpp — the daemon's default endpoints and the rules for which endpoints may be used.
// Owns: default ipc paths, TCP default ports, the --insecure rule.
// Must never: let a tcp:// endpoint run in clear text without an explicit --insecure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace muster {

enum class SocketRole { Request, Response, Client, Enrollment };

std::string_view socket_role_name(SocketRole r);

// ipc://<runtime dir>/<role>.sock
std::string default_endpoint(SocketRole role);
// The TCP port of a role: request 7899, response 7898, enrollment 7900, client 7901.
int default_tcp_port(SocketRole role);

bool is_tcp(std::string_view endpoint);
bool is_ipc(std::string_view endpoint);

// Throws std::invalid_argument if the endpoint is not tcp://, ipc:// or inproc://, or if it
// is tcp:// while `curve` is false and `insecure` is false.
void check_endpoint(std::string_view endpoint, bool curve, bool insecure);

// A daemon address as workers and clients take it: one endpoint, or a comma-separated list of
// the endpoints of a failover pair ("tcp://a:7901,tcp://b:7901"; spaces around commas are
// ignored). Throws std::invalid_argument on an empty list or an empty item.
std::vector<std::string> endpoint_list(std::string_view address);

// For a bind on ipc://, makes the socket's directory private (0700) and removes a stale
// socket file left by a dead daemon. Throws std::runtime_error if another daemon is live
// on it.
void prepare_ipc_bind(std::string_view endpoint);

}  // namespace muster
