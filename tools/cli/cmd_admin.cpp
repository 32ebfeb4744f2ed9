// cmd_admin.cpp — `muster token create|list|revoke` and `muster keys list|revoke`: enrollment
// tokens and enrolled identities (admin: the local owner over ipc://, or --admin over tcp://).
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "table.hpp"

namespace muster::cli {

namespace {
struct AdminArgs {
  std::string role = "worker", workspace, label, id;
  std::chrono::milliseconds ttl{24LL * 3600 * 1000};
  std::uint32_t uses = 1;
  bool json = false;
};
}  // namespace

void add_admin_commands(Cli& cli) {
  auto a = std::make_shared<AdminArgs>();
  auto* token = cli.app.add_subcommand("token", "Enrollment tokens (admin)")->require_subcommand(1);
  auto* create = token->add_subcommand("create", "Mint a token; prints it on stdout");
  create->add_option("--role", a->role, "worker, client, admin or gateway")->capture_default_str();
  add_duration_option(create, "--ttl", a->ttl, "How long it is valid: 30s, 10m, 24h, 7d (default 24h)");
  create->add_option("--uses", a->uses, "How many enrollments it allows")->capture_default_str();
  create->add_option("--workspace", a->workspace,
                     "Workspace of the identities it enrolls (default: default); for --role gateway, the "
                     "workspaces it may act in, comma-separated (alpha,beta)");
  create->add_option("--name", a->label, "A label, shown in listings");
  cli.on(create, [&cli, a] {
    auto minted = cli.client().token_create(a->role, static_cast<std::uint64_t>(a->ttl.count()), a->uses,
                                            a->workspace, a->label);
    std::cout << minted.token << "\n";
    std::cerr << fmt::format("token {} ({}, {} use(s)) expires {}\n", minted.id, a->role, a->uses,
                             minted.expires_at);
    return code(Exit::Ok);
  });

  auto* list = token->add_subcommand("list", "List tokens (never their secrets)");
  list->add_flag("--json", a->json, "Print JSON");
  cli.on(list, [&cli, a] {
    auto j = cli.client().token_list();
    if (a->json) {
      std::cout << j.dump(2) << "\n";
      return code(Exit::Ok);
    }
    Table t({"ID", "ROLE", "WORKSPACE", "STATE", ">USES LEFT", "EXPIRES", "LABEL"});
    for (auto& x : j)
      t.row({x.value("id", ""), x.value("role", ""), x.value("workspace", ""), x.value("state", ""),
             std::to_string(x.value("uses_left", 0)), x.value("expires_at", ""), x.value("label", "")});
    t.print(std::cout);
    return code(Exit::Ok);
  });

  auto* revoke = token->add_subcommand("revoke", "Revoke a token");
  revoke->add_option("ID", a->id, "Token id")->required();
  cli.on(revoke, [&cli, a] {
    cli.client().token_revoke(a->id);
    std::cerr << "token " << a->id << " revoked\n";
    return code(Exit::Ok);
  });

  auto* keys = cli.app.add_subcommand("keys", "Enrolled identities (admin)")->require_subcommand(1);
  auto* keys_list = keys->add_subcommand("list", "List enrolled identities");
  keys_list->add_flag("--json", a->json, "Print JSON");
  cli.on(keys_list, [&cli, a] {
    auto j = cli.client().key_list();
    if (a->json) {
      std::cout << j.dump(2) << "\n";
      return code(Exit::Ok);
    }
    Table t({"ID", "ROLE", "WORKSPACE", "NAME", "REVOKED", "HOSTNAME"});
    for (auto& k : j)
      t.row({k.value("id", ""), k.value("role", ""), k.value("workspace", ""), k.value("name", ""),
             k.value("revoked", false) ? "yes" : "no", k.value("hostname", "")});
    t.print(std::cout);
    return code(Exit::Ok);
  });
  auto* keys_revoke = keys->add_subcommand("revoke", "Revoke an identity: refused at once, its workers leave");
  keys_revoke->add_option("ID", a->id, "Identity id")->required();
  cli.on(keys_revoke, [&cli, a] {
    cli.client().key_revoke(a->id);
    std::cerr << "identity " << a->id << " revoked\n";
    return code(Exit::Ok);
  });
}

}  // namespace muster::cli
