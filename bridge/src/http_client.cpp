// http_client.cpp — see http_client.hpp.
#include "http_client.hpp"

#include <fmt/format.h>

#include "tls.hpp"

namespace muster::bridge {

HttpResult http_request(http::verb method, const Url& url, const std::string& bearer,
                        const std::string& json_body, ssl::context* tls,
                        std::chrono::milliseconds timeout) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  http::request<http::string_body> req{method, url.target, 11};
  req.set(http::field::host, url.host_header());
  req.set(http::field::user_agent, "muster-bridge/" MUSTER_VERSION);
  req.set(http::field::accept, "application/json");
  if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
  if (!json_body.empty() || method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = json_body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  try {
    beast::tcp_stream tcp_stream(ioc);
    tcp_stream.expires_after(timeout);
    // Asynchronous operations with the stream's deadline, run to completion here.
    beast::error_code ec;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(url.host, url.port, [&](beast::error_code e, tcp::resolver::results_type r) {
      ec = e;
      endpoints = std::move(r);
    });
    ioc.run();
    ioc.restart();
    if (ec) throw beast::system_error(ec);
    tcp_stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    ioc.run();
    ioc.restart();
    if (ec) throw beast::system_error(ec);
    auto run = [&](auto& stream) {
      HttpResult result;
      // Synchronous I/O would ignore the deadline, so do each step asynchronously.
      auto step = [&](auto op) {
        beast::error_code e;
        op([&](beast::error_code x, std::size_t = 0) { e = x; });
        ioc.run();
        ioc.restart();
        if (e && e != http::error::end_of_stream) throw beast::system_error(e);
      };
      step([&](auto done) { http::async_write(stream, req, done); });
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(8 * 1024 * 1024);
      step([&](auto done) { http::async_read(stream, buffer, parser, done); });
      result.status = static_cast<int>(parser.get().result_int());
      result.body = parser.get().body();
      return result;
    };
    if (url.tls()) {
      if (!tls) throw std::runtime_error("https URL without a TLS context");
      beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), *tls);
      prepare_client_tls(stream, url.host);
      stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
      ioc.run();
      ioc.restart();
      if (ec) throw beast::system_error(ec);
      auto result = run(stream);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      stream.async_shutdown([](beast::error_code) {});
      ioc.run();
      return result;
    }
    auto result = run(tcp_stream);
    beast::error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return result;
  } catch (const beast::system_error& e) {
    if (e.code() == beast::error::timeout)
      throw std::runtime_error(fmt::format("{} {}: no answer within {} ms", http::to_string(method),
                                           url.str(), timeout.count()));
    throw std::runtime_error(fmt::format("{} {}: {}", http::to_string(method), url.str(), e.code().message()));
  }
}

}  // namespace muster::bridge
