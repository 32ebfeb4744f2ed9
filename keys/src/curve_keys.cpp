// curve_keys.cpp — CURVE key pair generation and checks via libzmq.
// Must never: let a secret key reach a log line or an exception message.
#include "muster/curve_keys.hpp"

#include <sodium.h>
#include <zmq.h>

#include <stdexcept>

namespace muster::keys {

KeyPair::~KeyPair() {
  if (!secret_key.empty()) sodium_memzero(secret_key.data(), secret_key.size());
}

KeyBytes KeyPair::public_bytes() const {
  auto k = z85_decode_key(public_key);
  if (!k) throw std::invalid_argument("public key is not a 40-character Z85 key");
  return *k;
}

KeyBytes KeyPair::secret_bytes() const {
  auto k = z85_decode_key(secret_key);
  if (!k) throw std::invalid_argument("secret key is not a 40-character Z85 key");
  return *k;
}

KeyPair generate_key_pair() {
  char pub[kCurveKeyZ85Chars + 1] = {};
  char sec[kCurveKeyZ85Chars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    throw std::runtime_error(
        "zmq_curve_keypair failed: this libzmq was built without CURVE (libsodium) support");
  KeyPair kp(std::string(pub, kCurveKeyZ85Chars), std::string(sec, kCurveKeyZ85Chars));
  sodium_memzero(sec, sizeof sec);
  return kp;
}

std::string derive_public_key(std::string_view secret_z85) {
  if (!is_z85_key(secret_z85)) throw std::invalid_argument("secret key is not a 40-character Z85 key");
  std::string sec(secret_z85);
  char pub[kCurveKeyZ85Chars + 1] = {};
  int rc = zmq_curve_public(pub, sec.c_str());
  sodium_memzero(sec.data(), sec.size());
  if (rc != 0) throw std::runtime_error("zmq_curve_public failed");
  return std::string(pub, kCurveKeyZ85Chars);
}

bool key_pair_matches(const KeyPair& pair) {
  if (!is_z85_key(pair.public_key) || !is_z85_key(pair.secret_key)) return false;
  return derive_public_key(pair.secret_key) == pair.public_key;
}

std::string key_fingerprint(std::string_view public_z85) {
  return std::string(public_z85.substr(0, 8)) + "…";
}

}  // namespace muster::keys
