// encoding.hpp — the text forms of binary keys and secrets: Z85 (ZeroMQ's key text),
// base64url without padding (shell-safe), lowercase hex; and the random source.
// Owns: strict, canonical decoding (one text per value) and libsodium initialisation.
// Must never: accept a text that decodes to something other than it claims (wrong length,
// trailing garbage, non-canonical padding bits).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace muster::keys {

inline constexpr std::size_t kCurveKeyBytes = 32;   // a CURVE25519 public or secret key
inline constexpr std::size_t kCurveKeyZ85Chars = 40;

using KeyBytes = std::array<std::uint8_t, kCurveKeyBytes>;

// Initialises libsodium once (thread-safe); throws std::runtime_error if it cannot.
void ensure_sodium();

// Z85 of a 32-byte key (40 characters).
std::string z85_encode_key(const KeyBytes& key);
// The key a 40-character Z85 text stands for, or nullopt if it is not exactly that.
std::optional<KeyBytes> z85_decode_key(std::string_view text);
// True if `text` is a well-formed 40-character Z85 key.
bool is_z85_key(std::string_view text);

// base64url (RFC 4648 §5) without padding. Decoding accepts only the canonical encoding of
// exactly `expected_bytes` bytes.
std::string base64url_encode(std::span<const std::uint8_t> bytes);
std::optional<std::vector<std::uint8_t>> base64url_decode(std::string_view text,
                                                          std::size_t expected_bytes);

// Lowercase hex; decoding accepts lowercase only.
std::string hex_encode(std::span<const std::uint8_t> bytes);
std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text);

// Cryptographically secure random bytes (libsodium randombytes_buf).
void random_bytes(std::span<std::uint8_t> out);

// Equality of two byte strings in time that depends only on their length.
bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

}  // namespace muster::keys
