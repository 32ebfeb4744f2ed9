// token.hpp — the enrollment token as text, and the hash the daemon keeps instead of it.
//
// Format (112 ASCII characters, shell- and env-var-safe: only [A-Za-z0-9._-]):
//
//   muster1.<id>.<secret>.<daemon-key>
//     muster1     format tag and version
//     id          16 lowercase hex digits (8 random bytes): names the token in lists and
//                 revocation; not secret
//     secret      43 characters, base64url without padding, of 32 random bytes
//     daemon-key  43 characters, base64url without padding, of the daemon's 32-byte CURVE
//                 public key (the same key as the 40-character Z85 in daemon-curve.pub)
//
// The enrolling side takes the daemon key from the token and uses it as ZMQ_CURVE_SERVERKEY,
// so the very first byte it sends is encrypted to, and only answerable by, that daemon.
//
// Owns: generating, printing and strictly parsing tokens; the secret's hash.
// Must never: echo any part of a malformed input in an error message; accept a token in more
// than one spelling; keep the secret in memory longer than the Token object.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "muster/encoding.hpp"

namespace muster::keys {

inline constexpr std::string_view kTokenTag = "muster1";
inline constexpr std::size_t kTokenIdBytes = 8;       // 16 hex digits
inline constexpr std::size_t kTokenSecretBytes = 32;
inline constexpr std::size_t kTokenTextLength = 7 + 1 + 16 + 1 + 43 + 1 + 43;  // 112

using TokenSecret = std::array<std::uint8_t, kTokenSecretBytes>;

struct Token {
  std::string id;                // 16 lowercase hex digits
  TokenSecret secret{};          // wiped on destruction
  KeyBytes daemon_public_key{};  // the daemon this token is for

  Token() = default;
  Token(const Token&) = default;
  Token& operator=(const Token&) = default;
  ~Token();

  std::string daemon_public_key_z85() const;  // for ZMQ_CURVE_SERVERKEY
  std::string to_string() const;              // the 112-character token text
};

// A new token for the daemon whose public key is `daemon_public_key`: random id and secret.
Token generate_token(const KeyBytes& daemon_public_key);

enum class TokenFormatError {
  None,
  Empty,
  Whitespace,      // leading/trailing/embedded spaces, tabs or newlines (a paste mistake)
  BadCharacters,   // characters outside [A-Za-z0-9._-]
  WrongLength,
  WrongTag,        // does not start with "muster1."
  WrongPartCount,  // not four '.'-separated parts
  BadId,
  BadSecret,
  BadDaemonKey,
};

struct TokenParseResult {
  std::optional<Token> token;                  // set iff error == None
  TokenFormatError error = TokenFormatError::None;
  std::string message;  // human-readable, names the part that is wrong, never quotes the input
  explicit operator bool() const { return token.has_value(); }
};

// Strict: exactly the format above, nothing trimmed. Never throws on any input.
TokenParseResult parse_token(std::string_view text);

// The value a TokenStore keeps: BLAKE2b-256 (libsodium crypto_generichash) of
// "muster-token-v1" || 0x00 || id || 0x00 || secret, as 64 lowercase hex digits. Binding the
// id means a hash cannot be moved to another token entry.
std::string token_secret_hash(const Token& token);

}  // namespace muster::keys
