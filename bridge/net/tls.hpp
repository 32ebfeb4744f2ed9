// tls.hpp — OpenSSL contexts for the bridge and the gateway: a verifying client (system CAs or --ca-file) and
// a server from a certificate chain and key.
// Must never: make a client context that skips certificate or host name verification.
#pragma once

#include <memory>
#include <string>

#include <openssl/err.h>

#include "net.hpp"

namespace muster::bridge {

// Verifies the peer against `ca_file` if given, else the system's default CA paths.
std::shared_ptr<ssl::context> make_client_tls(const std::string& ca_file);
// Throws std::runtime_error naming the file that could not be used.
std::shared_ptr<ssl::context> make_server_tls(const std::string& cert_file, const std::string& key_file);

// Sets SNI and host name verification on a client stream before its handshake.
template <class Stream>
void prepare_client_tls(beast::ssl_stream<Stream>& stream, const std::string& host) {
  if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()))
    throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()), net::error::get_ssl_category()));
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification(host));
}

}  // namespace muster::bridge
