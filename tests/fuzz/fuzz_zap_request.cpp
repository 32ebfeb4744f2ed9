// fuzz_zap_request.cpp — libFuzzer target: the frames of one ZAP request (RFC 27), as libzmq
// would hand them to musterd's ZAP handler, answered by the daemon's own socket-free function
// (broker::answer_zap_request) against an identity store holding one worker and one client.
// The input is split into frames by FuzzedDataProvider; a frame "KEY" is replaced by the
// enrolled worker's 32-byte public key so the fuzzer reaches the allow path.
// Checks: the reply always has the RFC 27 shape, and only "200" carries a user id, which must
// be an enrolled identity that is not revoked (on the enrollment domain: a Z85 key).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/identity_store.hpp"
#include "muster/zap_policy.hpp"
#include "zap_handler.hpp"

using namespace muster;

namespace {
struct Store {
  std::filesystem::path dir;
  std::unique_ptr<keys::IdentityStore> identities;
  std::string worker_key;  // raw 32 bytes
  Store() {
    char tmpl[] = "/tmp/muster-fuzz-zap-XXXXXX";
    dir = ::mkdtemp(tmpl);
    identities = std::make_unique<keys::IdentityStore>(dir / "identities.json");
    auto worker = keys::generate_key_pair();
    auto client = keys::generate_key_pair();
    auto now = keys::Clock::now();
    identities->add({worker.public_key, keys::Role::Worker, "alpha", "w", "host", "tok"}, now);
    auto c = identities->add({client.public_key, keys::Role::Client, "alpha", "c", "host", "tok"}, now);
    identities->revoke(c.identity->id, now);
    auto bytes = worker.public_bytes();
    worker_key.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  ~Store() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Store* store = [] {
    spdlog::set_level(spdlog::level::off);
    return new Store();
  }();
  FuzzedDataProvider fdp(data, size);
  std::vector<std::string> frames;
  auto n = fdp.ConsumeIntegralInRange<int>(0, 9);
  for (int i = 0; i < n; ++i) {
    auto f = fdp.ConsumeRandomLengthString(64);
    frames.push_back(f == "KEY" ? store->worker_key : f);
  }
  std::vector<std::string_view> views(frames.begin(), frames.end());
  auto reply = broker::answer_zap_request(*store->identities, views);
  if (reply[0] != "1.0") std::abort();
  if (reply[2] == "200") {
    if (frames.size() < 3) std::abort();
    if (frames[2] == keys::kZapDomainEnroll) {
      if (reply[4].size() != 40) std::abort();  // the client's key in Z85, for enrollment
    } else {
      auto id = store->identities->find_by_id(reply[4]);
      if (!id || id->revoked) std::abort();  // allowed someone who is not enrolled
    }
  } else if (!reply[4].empty()) {
    std::abort();  // a refusal must not name a user
  }
  return 0;
}
