// tls.cpp — see tls.hpp.
#include "tls.hpp"

#include <fmt/format.h>

namespace muster::bridge {

std::shared_ptr<ssl::context> make_client_tls(const std::string& ca_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ctx->set_verify_mode(ssl::verify_peer);
  beast::error_code ec;
  if (!ca_file.empty()) {
    ctx->load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load CA file '{}': {}", ca_file, ec.message()));
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load the system CA certificates: {}", ec.message()));
  }
  return ctx;
}

std::shared_ptr<ssl::context> make_server_tls(const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  beast::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot use TLS certificate '{}': {}", cert_file, ec.message()));
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot use TLS key '{}': {}", key_file, ec.message()));
  return ctx;
}

}  // namespace muster::bridge
