// secure_connect.hpp — the enrolling side of CURVE for workers and clients: the key pair and
// daemon key their tcp:// sockets use, enrolling with a token the first time.
// Owns: token lookup → local identity → (first run) the EnrollRequest exchange over CURVE →
// the saved identity; and applying the keys to a socket.
// Must never: connect in clear text to a tcp:// endpoint unless `insecure`; re-trust a daemon
// key that differs from the saved one; send the token anywhere but the token's own daemon.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <stdexcept>

#include <zmq.hpp>

#include "muster/wire/common_generated.h"

namespace muster {

struct SecureOptions {
  std::string data_dir;            // default: default_data_dir()
  std::string name;                // identity file stem (<name>-curve.key ...); default: role
  std::string role = "worker";     // "worker", "client" or "admin"
  std::string enrollment_address;  // default: tcp://<host of the first tcp endpoint>:7900
  std::string token_file;          // --enrollment-token-file (else env, else XDG default)
  bool insecure = false;           // tcp:// in clear text, no enrollment
  std::chrono::milliseconds enroll_timeout{10000};
};

// Why a peer could not get its keys; `code` is the protocol error code to report
// (PermissionDenied: no token / token refused / daemon key changed; Unavailable: no answer).
class EnrollmentError : public std::runtime_error {
 public:
  EnrollmentError(wire::ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  wire::ErrorCode code() const { return code_; }

 private:
  wire::ErrorCode code_;
};

struct CurveClientKeys {
  std::string public_key, secret_key, server_key;  // Z85
};

// nullopt when no endpoint needs CURVE (all ipc://, or `insecure`). Otherwise the keys, after
// enrolling if this identity is not enrolled yet. Throws EnrollmentError with a message that
// says what to do (no token, token refused, daemon key changed, no answer).
std::optional<CurveClientKeys> secure_connect_keys(const SecureOptions& options,
                                                   const std::vector<std::string>& endpoints);

// Makes `socket` a CURVE client with `keys`. Call before connect().
void apply_curve(zmq::socket_t& socket, const CurveClientKeys& keys);

}  // namespace muster
