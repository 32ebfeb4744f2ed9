// curve_keys.hpp — CURVE25519 key pairs as ZeroMQ uses them (Z85 text, 40 characters).
// Owns: generating a pair, deriving a public key from a secret one, checking that a pair
// belongs together.
// Must never: print or log a secret key; hand out a pair whose halves do not match.
#pragma once

#include <string>
#include <string_view>

#include "muster/encoding.hpp"

namespace muster::keys {

struct KeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; wiped from memory on destruction

  KeyPair() = default;
  KeyPair(std::string pub, std::string sec) : public_key(std::move(pub)), secret_key(std::move(sec)) {}
  KeyPair(const KeyPair&) = default;
  KeyPair(KeyPair&&) noexcept = default;
  KeyPair& operator=(const KeyPair&) = default;
  KeyPair& operator=(KeyPair&&) noexcept = default;
  ~KeyPair();

  KeyBytes public_bytes() const;  // throws std::invalid_argument if not valid Z85
  KeyBytes secret_bytes() const;  // throws std::invalid_argument if not valid Z85
};

// A fresh pair from zmq_curve_keypair. Throws std::runtime_error if libzmq was built without
// CURVE support.
KeyPair generate_key_pair();

// The Z85 public key that belongs to a Z85 secret key (zmq_curve_public). Throws
// std::invalid_argument if `secret_z85` is not a Z85 key.
std::string derive_public_key(std::string_view secret_z85);

// True if both halves are valid Z85 keys and the public one is derived from the secret one.
bool key_pair_matches(const KeyPair& pair);

// A short, log-safe fingerprint of a public key: its first 8 characters ("rq:rM>}U…"), for
// messages that help people tell keys apart without printing a whole key.
std::string key_fingerprint(std::string_view public_z85);

}  // namespace muster::keys
