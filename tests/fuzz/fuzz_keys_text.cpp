// fuzz_keys_text.cpp — libFuzzer target for the text parsers of keys/ that read outside input:
// enrollment tokens (pasted by people, sent by peers), Z85 keys, base64url, hex, durations,
// timestamps, key files, and the ZAP verdict for a fuzzed request. The first input byte picks
// the parser; the rest is its input. Every parser promises not to throw on bad input (tokens,
// keys, ZAP) or to throw only its documented exception type (durations, key files).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "muster/curve_keys.hpp"
#include "muster/duration.hpp"
#include "muster/encoding.hpp"
#include "muster/identity_store.hpp"
#include "muster/key_file.hpp"
#include "muster/timestamp.hpp"
#include "muster/token.hpp"
#include "muster/zap_policy.hpp"

using namespace muster;

namespace {
keys::IdentityStore* identities = nullptr;

[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "PROPERTY VIOLATED: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A store file that never exists: lookups only, nothing is ever written.
  identities = new keys::IdentityStore("/nonexistent/muster-fuzz/identities.json");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 9) {
    case 0: {
      auto r = keys::parse_token(text);
      if (r) {
        // Strict means one spelling: a parsed token prints back as exactly its input.
        if (r.token->to_string() != text) violation("a token parsed from a different spelling");
        (void)keys::token_secret_hash(*r.token);
      } else if (text.size() >= 20 &&
                 text.find_first_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos &&
                 r.message.find(text) != std::string::npos) {
        // (token-like input: long, with digits or capitals; English words in the message may
        // legitimately equal a short plain-word input)
        violation("a token error message quotes the input");
      }
      break;
    }
    case 1: {
      auto k = keys::z85_decode_key(text);
      if (k && keys::z85_encode_key(*k) != text) violation("Z85 key decoding is not canonical");
      break;
    }
    case 2: {
      auto b = keys::base64url_decode(text, 32);
      if (b && keys::base64url_encode(*b) != text) violation("base64url decoding is not canonical");
      break;
    }
    case 3: {
      auto b = keys::hex_decode(text);
      if (b && keys::hex_encode(*b) != text) violation("hex decoding is not canonical");
      break;
    }
    case 4:
      try {
        auto d = keys::parse_duration(text);
        if (d.count() <= 0 || d > keys::kMaxDuration) violation("a duration out of its range");
        (void)keys::format_duration(d);
      } catch (const std::invalid_argument&) {
      }
      break;
    case 5: {
      auto t = keys::parse_timestamp(text);
      if (t && keys::parse_timestamp(keys::format_timestamp(*t)) != t)
        violation("a parsed timestamp does not read back from its text");
      break;
    }
    case 6:
      try {
        (void)keys::parse_secret_key_file(text, "fuzz.key");
      } catch (const keys::KeyFileError&) {
      }
      break;
    case 7:
      try {
        (void)keys::parse_public_key_file(text, "fuzz.pub");
      } catch (const keys::KeyFileError&) {
      }
      break;
    case 8: {
      // domain \0 address \0 mechanism \0 key bytes
      std::string_view parts[4];
      std::size_t start = 0;
      for (int i = 0; i < 3; ++i) {
        auto end = text.find('\0', start);
        if (end == std::string_view::npos) end = text.size();
        parts[i] = text.substr(start, end - start);
        start = std::min(text.size(), end + 1);
      }
      parts[3] = text.substr(start);
      keys::ZapRequest req{parts[0], parts[1], parts[2],
                           std::span<const std::uint8_t>(
                               reinterpret_cast<const std::uint8_t*>(parts[3].data()), parts[3].size())};
      auto v = keys::zap_decide(*identities, req);
      // Nobody is enrolled: only the enrollment domain may let a CURVE key in.
      if (v.allow && parts[0] != keys::kZapDomainEnroll) violation("ZAP allowed an unknown key");
      break;
    }
  }
  return 0;
}
