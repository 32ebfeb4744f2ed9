// ws_token.cpp — see ws_token.hpp.
#include "muster/bridge/ws_token.hpp"

#include <array>
#include <charconv>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace muster::bridge {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string hex(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}
}  // namespace

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t n = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t n = b(i) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == in.size()) {
    std::uint32_t n = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = decode_char(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("no random bytes from OpenSSL");
  return out;
}

WsTokenSigner::WsTokenSigner(std::string secret) : secret_(std::move(secret)) {
  if (secret_.size() < 16) throw std::invalid_argument("the WebSocket token secret needs at least 16 bytes");
}

WsTokenSigner WsTokenSigner::random() { return WsTokenSigner(random_bytes(32)); }

std::string WsTokenSigner::sign(std::string_view user, std::int64_t now_ms, std::int64_t ttl_ms,
                                std::string_view node) const {
  std::string payload =
      fmt::format("2.{}.{}.{}.{}", now_ms + ttl_ms, hex(random_bytes(8)), base64url_encode(node), user);
  return base64url_encode(payload) + "." + base64url_encode(hmac_sha256(secret_, payload));
}

std::optional<VerifiedToken> WsTokenSigner::verify(std::string_view token, std::int64_t now_ms,
                                                   std::string* why) const {
  auto fail = [&](const char* reason) -> std::optional<VerifiedToken> {
    if (why) *why = reason;
    return std::nullopt;
  };
  auto dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > 4096) return fail("malformed");
  auto payload = base64url_decode(token.substr(0, dot));
  auto sig = base64url_decode(token.substr(dot + 1));
  if (!payload || !sig) return fail("malformed");
  std::string expected = hmac_sha256(secret_, *payload);
  if (sig->size() != expected.size() || CRYPTO_memcmp(sig->data(), expected.data(), expected.size()) != 0)
    return fail("bad signature");
  // 1.<expiry>.<nonce>.<user> or 2.<expiry>.<nonce>.<base64url(node)>.<user>
  std::string_view p = *payload;
  bool v2 = p.substr(0, 2) == "2.";
  if (p.substr(0, 2) != "1." && !v2) return fail("malformed");
  p.remove_prefix(2);
  auto d1 = p.find('.');
  if (d1 == std::string_view::npos) return fail("malformed");
  std::int64_t expires = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + d1, expires);
  if (ec != std::errc() || ptr != p.data() + d1) return fail("malformed");
  p.remove_prefix(d1 + 1);
  auto d2 = p.find('.');
  if (d2 == std::string_view::npos) return fail("malformed");
  p.remove_prefix(d2 + 1);  // the nonce
  std::string node;
  if (v2) {
    auto d3 = p.find('.');
    if (d3 == std::string_view::npos) return fail("malformed");
    auto decoded = base64url_decode(p.substr(0, d3));
    if (!decoded) return fail("malformed");
    node = std::move(*decoded);
    p.remove_prefix(d3 + 1);
  }
  std::string user(p);
  if (now_ms >= expires) return fail("expired");
  return VerifiedToken{std::move(user), expires, std::move(node)};
}

}  // namespace muster::bridge
