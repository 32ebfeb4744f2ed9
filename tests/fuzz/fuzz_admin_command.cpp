// fuzz_admin_command.cpp — libFuzzer target: one frame on the client socket from an admin, run
// as musterd runs it: the daemon's decoder (broker::decode_client_message) and, for an admin
// command (TokenCreate/List/Revoke, KeyList/Revoke), broker::run_admin against a real Security
// (key pair, token and identity stores) in a private temporary data dir, with a core that has
// a worker attached (a key revocation removes an identity's workers).
// Checks: a command always gets exactly one reply (TokenCreated, AdminReport or Failure); the
// AdminReport is JSON; a TokenCreated carries a token; no exception escapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "admin.hpp"
#include "fuzz_support.hpp"
#include "inbound.hpp"
#include "security.hpp"

using namespace muster;

namespace {
struct Scene {
  std::filesystem::path dir;
  std::unique_ptr<broker::Security> security;
  std::unique_ptr<broker::BrokerCore> core;
  broker::TimePoint now{};
  Scene() {
    char tmpl[] = "/tmp/muster-fuzz-admin-XXXXXX";
    dir = ::mkdtemp(tmpl);
    security = std::make_unique<broker::Security>(dir);
    core = std::make_unique<broker::BrokerCore>(fuzz::fuzz_config(), now);
  }
  ~Scene() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Scene* scene = [] {
    fuzz::quiet_logs();
    return new Scene();
  }();
  auto owner = std::make_shared<std::vector<std::uint8_t>>(data, data + size);
  std::span<const std::uint8_t> bytes(owner->data(), owner->size());
  auto ev = broker::decode_client_message(bytes, [&] { return owner; }, fuzz::client_limits());
  auto* admin = std::get_if<broker::AdminEvent>(&ev);
  if (!admin) return 0;
  broker::Caller who;  // the local owner: admin of every workspace
  auto reply = broker::run_admin(*scene->security, *scene->core, *admin->message, who, scene->now);
  if (auto* report = std::get_if<broker::AdminReportBody>(&reply)) {
    if (!nlohmann::json::accept(report->json)) std::abort();
  } else if (auto* created = std::get_if<broker::TokenCreatedBody>(&reply)) {
    if (created->token.empty() || created->id.empty()) std::abort();
  }
  scene->core->actions().clear();
  return 0;
}
