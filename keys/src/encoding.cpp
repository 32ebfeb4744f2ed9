// encoding.cpp — Z85, base64url, hex and randomness for keys and token secrets.
// Must never: decode leniently; every decoder re-encodes and compares to reject aliases.
#include "muster/encoding.hpp"

#include <sodium.h>
#include <zmq.h>

#include <stdexcept>

namespace muster::keys {

void ensure_sodium() {
  static const int rc = sodium_init();  // 0: done now, 1: already done, -1: failure
  if (rc < 0) throw std::runtime_error("libsodium could not be initialised");
}

std::string z85_encode_key(const KeyBytes& key) {
  char out[kCurveKeyZ85Chars + 1] = {};
  if (!zmq_z85_encode(out, key.data(), key.size()))
    throw std::runtime_error("zmq_z85_encode failed");
  return std::string(out, kCurveKeyZ85Chars);
}

std::optional<KeyBytes> z85_decode_key(std::string_view text) {
  if (text.size() != kCurveKeyZ85Chars) return std::nullopt;
  // zmq_z85_decode needs a NUL-terminated string and rejects characters outside the alphabet.
  std::string s(text);
  KeyBytes key{};
  if (!zmq_z85_decode(key.data(), s.c_str())) return std::nullopt;
  // Reject aliases: a 5-character group above 2^32-1 wraps in some decoders.
  if (z85_encode_key(key) != text) return std::nullopt;
  return key;
}

bool is_z85_key(std::string_view text) { return z85_decode_key(text).has_value(); }

std::string base64url_encode(std::span<const std::uint8_t> bytes) {
  ensure_sodium();
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), variant);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

std::optional<std::vector<std::uint8_t>> base64url_decode(std::string_view text,
                                                          std::size_t expected_bytes) {
  ensure_sodium();
  // Exact length first: (n*4+2)/3 characters for n bytes without padding.
  if (text.size() != (expected_bytes * 4 + 2) / 3) return std::nullopt;
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return std::nullopt;
  }
  std::vector<std::uint8_t> out(expected_bytes);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    return std::nullopt;
  if (len != expected_bytes || end != text.data() + text.size()) return std::nullopt;
  if (base64url_encode(out) != text) return std::nullopt;  // canonical padding bits only
  return out;
}

std::string hex_encode(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::vector<std::uint8_t> out(text.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

void random_bytes(std::span<std::uint8_t> out) {
  ensure_sodium();
  randombytes_buf(out.data(), out.size());
}

bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace muster::keys
