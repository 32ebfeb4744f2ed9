// cmd_check.cpp — `muster check`: is this machine's muster usable? The daemon reachable at
// the endpoint in use, its counts, this client's CURVE identity (key age, enrollment, saved
// daemon key) for tcp://, and the daemon's enrollment tokens (expired, expiring) for an admin.
// Exit status: 0 every check passed (warnings allowed), 3 the daemon is unreachable, 1 another
// check failed. Owns: the checks and their thresholds. Must never: enroll, mint or change
// anything (it only reads).
#include <filesystem>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include "cli.hpp"
#include "muster/duration.hpp"
#include "muster/endpoints.hpp"
#include "muster/local_identity.hpp"
#include "muster/messages.hpp"
#include "muster/runtime_dir.hpp"
#include "muster/timestamp.hpp"
#include "muster/token_source.hpp"
#include "table.hpp"

namespace muster::cli {

namespace {

// A CURVE key older than this is reported (rotate it: docs/SECURITY.md).
constexpr auto kOldKey = std::chrono::hours(24 * 365);
// A token that expires sooner than this is reported.
constexpr auto kTokenSoon = std::chrono::hours(24);

enum class Verdict { Ok, Warn, Fail, Skip };
struct Check {
  std::string what;
  Verdict verdict;
  std::string detail;
};
std::string_view name(Verdict v) {
  switch (v) {
    case Verdict::Ok: return "ok";
    case Verdict::Warn: return "warn";
    case Verdict::Fail: return "FAIL";
    case Verdict::Skip: return "skip";
  }
  return "?";
}

std::string age(std::chrono::system_clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  return s.count() <= 0 ? "0s" : keys::format_duration(s);
}

void check_identity(const ClientOptions& o, std::vector<Check>& out) {
  const std::string& ep = o.client_address;
  if (ep.rfind("tcp://", 0) != 0) {
    out.push_back({"identity", Verdict::Skip, "not needed: the endpoint is local (ipc://)"});
    return;
  }
  if (o.insecure) {
    out.push_back({"identity", Verdict::Warn, "--insecure: CURVE is off, everything travels in clear text"});
    return;
  }
  std::filesystem::path dir = o.secure.data_dir.empty() ? default_data_dir() : std::filesystem::path(o.secure.data_dir);
  std::string who = o.secure.name.empty() ? o.secure.role : o.secure.name;
  auto paths = keys::local_identity_paths(dir, who);
  auto id = keys::load_local_identity(dir, who);
  if (!id) {
    std::optional<keys::FoundToken> token;
    try {
      token = keys::find_enrollment_token(keys::token_source_from_env(
          o.secure.token_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.secure.token_file)));
    } catch (const std::exception& e) {
      out.push_back({"identity", Verdict::Fail, e.what()});
      return;
    }
    if (token)
      out.push_back({"identity", Verdict::Warn,
                     fmt::format("'{}' is not enrolled in {} yet; the next connection enrolls with the token from {}",
                                 who, dir.string(), token->source)});
    else
      out.push_back({"identity", Verdict::Fail,
                     fmt::format("'{}' is not enrolled in {} and no enrollment token is configured "
                                 "(--enrollment-token-file, $MUSTER_ENROLLMENT_TOKEN)", who, dir.string())});
    return;
  }
  auto now = std::chrono::system_clock::now();
  out.push_back({"identity", Verdict::Ok,
                 fmt::format("'{}' ({} in workspace {}), enrolled {} ago; daemon key {}", who,
                             keys::role_name(id->role), id->workspace, age(now - id->enrolled_at),
                             id->daemon_public_key.substr(0, 8) + "…")});
  struct stat st{};
  if (::stat(paths.secret_key.c_str(), &st) == 0) {
    auto made = std::chrono::system_clock::from_time_t(st.st_mtime);
    bool old = now - made > kOldKey;
    out.push_back({"key age", old ? Verdict::Warn : Verdict::Ok,
                   fmt::format("{} is {} old{}", paths.secret_key.string(), age(now - made),
                               old ? " (older than a year: consider a new identity)" : "")});
    if (st.st_mode & 077)
      out.push_back({"key file", Verdict::Fail,
                     fmt::format("{} can be read by others (mode {:o}): chmod 600 it", paths.secret_key.string(),
                                 st.st_mode & 0777)});
  } else {
    out.push_back({"key age", Verdict::Fail, fmt::format("{} is missing", paths.secret_key.string())});
  }
}

void check_tokens(Client& client, std::vector<Check>& out) {
  Json tokens;
  try {
    tokens = client.token_list();
  } catch (const CallError& e) {
    if (e.code() != wire::ErrorCode::PermissionDenied) throw;
    out.push_back({"tokens", Verdict::Skip, "not an admin identity (use --admin over tcp://)"});
    return;
  }
  auto now = std::chrono::system_clock::now();
  std::size_t active = 0, soon = 0;
  std::optional<std::chrono::system_clock::time_point> next;
  for (auto& t : tokens) {
    if (t.value("state", "") != "active") continue;
    ++active;
    auto at = keys::parse_timestamp(t.value("expires_at", ""));
    if (!at) continue;
    if (*at - now < kTokenSoon) ++soon;
    if (!next || *at < *next) next = *at;
  }
  std::string detail = fmt::format("{} active of {}", active, tokens.size());
  if (next) detail += fmt::format("; the next expires in {}", age(*next - now));
  if (soon) detail += fmt::format(" ({} within a day)", soon);
  out.push_back({"tokens", soon ? Verdict::Warn : Verdict::Ok, detail});
}

// The client endpoint, or each of a failover pair's (one bound is enough: a standby binds
// nothing until it takes over).
static Check check_endpoints(const std::string& address) {
  std::vector<std::string> eps;
  try {
    eps = endpoint_list(address);
  } catch (const std::invalid_argument& e) {
    return {"endpoint", Verdict::Fail, e.what()};
  }
  std::vector<std::string> missing, found;
  for (auto& ep : eps) {
    if (ep.rfind("ipc://", 0) == 0 && !std::filesystem::exists(ep.substr(6)))
      missing.push_back(ep);
    else
      found.push_back(ep);
  }
  if (found.empty())
    return {"endpoint", Verdict::Fail, fmt::format("{}: no socket there (is musterd running? runtime dir {})",
                                                   fmt::join(missing, ", "), runtime_dir().string())};
  if (missing.empty()) return {"endpoint", Verdict::Ok, fmt::format("{}", fmt::join(found, ", "))};
  return {"endpoint", Verdict::Ok, fmt::format("{} ({}: no socket, as a standby's)", fmt::join(found, ", "),
                                               fmt::join(missing, ", "))};
}

int run_check(Cli& cli, bool json) {
  ClientOptions o = cli.client_options();
  if (o.client_address.empty()) o.client_address = default_client_address();
  std::vector<Check> checks;
  checks.push_back({"context", Verdict::Ok, cli.context_name().empty() ? "none (flags and defaults)" : cli.context_name()});
  checks.push_back(check_endpoints(o.client_address));
  check_identity(o, checks);
  bool reachable = false;
  try {
    auto s = cli.client().status();
    reachable = true;
    checks.push_back({"daemon", Verdict::Ok,
                      fmt::format("musterd {} (instance {}), up {}, {} worker(s), {} node(s), {} queued",
                                  s.value("version", "?"), s.value("instance", "?"),
                                  age(std::chrono::milliseconds(s.value("uptime_ms", std::uint64_t{0}))),
                                  s.value("workers", 0), s.value("nodes", 0), s.value("queued", 0))});
    check_tokens(cli.client(), checks);
  } catch (const CallError& e) {
    checks.push_back({"daemon", Verdict::Fail, fmt::format("{}: {}", error_code_name(e.code()), e.what())});
  } catch (const EnrollmentError& e) {
    checks.push_back({"daemon", Verdict::Fail, fmt::format("{}: {}", error_code_name(e.code()), e.what())});
  }
  bool failed = std::any_of(checks.begin(), checks.end(), [](const Check& c) { return c.verdict == Verdict::Fail; });
  if (json) {
    Json j = Json::array();
    for (auto& c : checks) j.push_back({{"check", c.what}, {"result", std::string(name(c.verdict))}, {"detail", c.detail}});
    std::cout << j.dump(2) << "\n";
  } else {
    Table t({"CHECK", "RESULT", "DETAIL"});
    for (auto& c : checks) t.row({c.what, std::string(name(c.verdict)), c.detail});
    t.print(std::cout);
  }
  if (!reachable) return code(Exit::Unavailable);
  return failed ? code(Exit::Failed) : code(Exit::Ok);
}

}  // namespace

void add_check_command(Cli& cli) {
  auto json = std::make_shared<bool>(false);
  auto* check = cli.app.add_subcommand(
      "check", "Health: daemon reachable, endpoint, identity and key age (tcp://), token expiry (admin)");
  check->add_flag("--json", *json, "Print JSON: [{check, result, detail}]");
  check->footer("Exit status: 0 healthy (warnings allowed), 1 a check failed, 3 the daemon is unreachable.");
  cli.on(check, [&cli, json] { return run_check(cli, *json); });
}

}  // namespace muster::cli
