// fuzz_enroll_request.cpp — libFuzzer target: one frame on the enrollment socket, verified with
// read_enroll_request and every field read as the daemon's enrollment server reads them.
// When the keys library is built (MUSTER_FUZZ_HAVE_KEYS), the fields then go through the whole
// enrollment decision (keys::Enrollment::enroll: rate limit, fields, key match, strict token
// parse, token store, identity store) against stores in a private temporary directory that
// hold one minted token. Placeholders let the fuzzer reach the success path although the token
// and keys are random per run: a token field "TOKEN" is replaced by the minted token and a
// public_key "KEY" by a fresh client key.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "muster/messages.hpp"
#ifdef MUSTER_FUZZ_HAVE_KEYS
#include <filesystem>
#include <memory>

#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/enrollment.hpp"
#include "muster/identity_store.hpp"
#include "muster/rate_limiter.hpp"
#include "muster/token_store.hpp"
#endif

using namespace muster;

namespace {
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

#ifdef MUSTER_FUZZ_HAVE_KEYS
struct Stores {
  std::filesystem::path dir;
  keys::KeyPair daemon = keys::generate_key_pair();
  keys::KeyPair client = keys::generate_key_pair();
  std::unique_ptr<keys::TokenStore> tokens;
  std::unique_ptr<keys::IdentityStore> identities;
  std::unique_ptr<keys::RateLimiter> limiter;
  std::unique_ptr<keys::Enrollment> enrollment;
  std::string token;

  Stores() {
    char tmpl[] = "/tmp/muster-fuzz-enroll-XXXXXX";
    dir = ::mkdtemp(tmpl);
    tokens = std::make_unique<keys::TokenStore>(dir / "tokens.json", daemon.public_key);
    identities = std::make_unique<keys::IdentityStore>(dir / "identities.json");
    limiter = std::make_unique<keys::RateLimiter>();
    enrollment = std::make_unique<keys::Enrollment>(*tokens, *identities, limiter.get());
    keys::MintRequest req;
    req.uses = keys::kMaxTokenUses;
    token = tokens->mint(req, keys::Clock::now()).token;
  }
  ~Stores() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
Stores* stores = nullptr;
#endif
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
#ifdef MUSTER_FUZZ_HAVE_KEYS
  spdlog::set_level(spdlog::level::off);
  stores = new Stores();
  std::atexit([] { delete stores; });
#endif
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const wire::EnrollRequest* req = read_enroll_request(std::span<const std::uint8_t>(data, size));
  if (!req) return 0;
  std::string token = str(req->token()), key = str(req->public_key()), role = str(req->role()),
              name = str(req->name()), host = str(req->hostname());
#ifdef MUSTER_FUZZ_HAVE_KEYS
  keys::EnrollRequestFields fields{token, key, role, name, host};
  if (fields.token == "TOKEN") fields.token = stores->token;
  if (fields.public_key == "KEY") fields.public_key = stores->client.public_key;
  // The connection key is the request's own key for half the inputs (the honest case), another
  // key otherwise (a peer claiming a key it does not hold).
  std::string connection = (size & 1) ? fields.public_key : stores->daemon.public_key;
  auto outcome = stores->enrollment->enroll(fields, connection, (size & 2) ? "10.0.0.1" : "10.0.0.2",
                                            keys::Clock::now());
  if (outcome.ok && !outcome.identity) std::abort();
  if (!outcome.ok && outcome.code == keys::EnrollErrorCode::None) std::abort();
#else
  volatile std::size_t total = token.size() + key.size() + role.size() + name.size() + host.size();
  (void)total;
#endif
  return 0;
}
