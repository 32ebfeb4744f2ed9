// http_client.hpp — one blocking HTTP(S) request with a deadline (the uplink's registrations).
// Must never: block past `timeout`, or talk TLS without verifying the server.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "muster/bridge/url.hpp"
#include "net.hpp"

namespace muster::bridge {

struct HttpResult {
  int status = 0;
  std::string body;
};

// POST (body non-empty) or GET `url` with an optional Bearer token and a JSON body.
// Throws std::runtime_error for network, TLS and timeout errors.
HttpResult http_request(http::verb method, const Url& url, const std::string& bearer,
                        const std::string& json_body, ssl::context* tls,
                        std::chrono::milliseconds timeout);

}  // namespace muster::bridge
