// token.cpp — token text, strict parsing and secret hashing.
// Must never: put input characters into an error message, or compare secrets non-constant-time
// (comparison lives in token_store.cpp and uses sodium_memcmp on these hashes).
#include "muster/token.hpp"

#include <sodium.h>

#include <fmt/format.h>

namespace muster::keys {

namespace {

constexpr std::string_view kShape = "a muster token looks like muster1.<16 hex>.<43 chars>.<43 chars>";

TokenParseResult fail(TokenFormatError e, std::string msg) {
  TokenParseResult r;
  r.error = e;
  r.message = "malformed token: " + std::move(msg);
  return r;
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

}  // namespace

Token::~Token() { sodium_memzero(secret.data(), secret.size()); }

std::string Token::daemon_public_key_z85() const { return z85_encode_key(daemon_public_key); }

std::string Token::to_string() const {
  return fmt::format("{}.{}.{}.{}", kTokenTag, id, base64url_encode(secret),
                     base64url_encode(daemon_public_key));
}

Token generate_token(const KeyBytes& daemon_public_key) {
  Token t;
  std::array<std::uint8_t, kTokenIdBytes> id{};
  random_bytes(id);
  t.id = hex_encode(id);
  random_bytes(t.secret);
  t.daemon_public_key = daemon_public_key;
  return t;
}

TokenParseResult parse_token(std::string_view text) {
  if (text.empty()) return fail(TokenFormatError::Empty, "it is empty");
  for (char c : text)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      return fail(TokenFormatError::Whitespace,
                  "it contains spaces or line breaks (copy exactly the one line printed by "
                  "`muster token create`)");
  for (char c : text)
    if (!is_token_char(c))
      return fail(TokenFormatError::BadCharacters,
                  fmt::format("it contains characters other than letters, digits, '.', '-' and "
                              "'_' ({})",
                              kShape));
  if (text.substr(0, kTokenTag.size() + 1) != fmt::format("{}.", kTokenTag))
    return fail(TokenFormatError::WrongTag,
                fmt::format("it does not start with '{}.' ({})", kTokenTag, kShape));
  if (text.size() != kTokenTextLength)
    return fail(TokenFormatError::WrongLength,
                fmt::format("it has {} characters, a token has {} (truncated or extended?)",
                            text.size(), kTokenTextLength));
  std::string_view parts[4];
  std::size_t n = 0;
  std::string_view rest = text;
  while (true) {
    auto dot = rest.find('.');
    if (n == 4) return fail(TokenFormatError::WrongPartCount, fmt::format("more than four '.'-separated parts ({})", kShape));
    parts[n++] = rest.substr(0, dot);
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
  }
  if (n != 4)
    return fail(TokenFormatError::WrongPartCount,
                fmt::format("{} '.'-separated parts instead of 4 ({})", n, kShape));

  Token t;
  auto id = hex_decode(parts[1]);
  if (parts[1].size() != 2 * kTokenIdBytes || !id)
    return fail(TokenFormatError::BadId, "the id (second part) is not 16 lowercase hex digits");
  t.id = std::string(parts[1]);
  auto secret = base64url_decode(parts[2], kTokenSecretBytes);
  if (!secret)
    return fail(TokenFormatError::BadSecret,
                "the secret (third part) is not 43 base64url characters encoding 32 bytes");
  std::copy(secret->begin(), secret->end(), t.secret.begin());
  sodium_memzero(secret->data(), secret->size());
  auto key = base64url_decode(parts[3], kCurveKeyBytes);
  if (!key)
    return fail(TokenFormatError::BadDaemonKey,
                "the daemon key (fourth part) is not 43 base64url characters encoding 32 bytes");
  std::copy(key->begin(), key->end(), t.daemon_public_key.begin());
  TokenParseResult r;
  r.token = std::move(t);
  return r;
}

std::string token_secret_hash(const Token& token) {
  ensure_sodium();
  crypto_generichash_state st;
  static constexpr unsigned char domain[] = "muster-token-v1";  // includes the NUL separator
  static constexpr unsigned char zero = 0;
  std::array<std::uint8_t, 32> out{};
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, domain, sizeof domain);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(token.id.data()),
                            token.id.size());
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, token.secret.data(), token.secret.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof st);
  return hex_encode(out);
}

}  // namespace muster::keys
