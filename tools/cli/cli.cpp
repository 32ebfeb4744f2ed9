// cli.cpp — see cli.hpp: global options, the context, parsing, and the mapping of errors to
// exit statuses.
#include "cli.hpp"

#include <iostream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "muster/duration.hpp"
#include "muster/endpoints.hpp"
#include "muster/messages.hpp"

namespace muster::cli {

std::string default_client_address() { return default_endpoint(SocketRole::Client); }

namespace {
CLI::Option* duration_option(CLI::App* app, const std::string& name, std::chrono::milliseconds& target,
                             const std::string& description, bool bare_ms) {
  auto* opt = app->add_option_function<std::string>(
      name,
      [&target, bare_ms, name](const std::string& text) {
        if (bare_ms && !text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
          try {
            target = std::chrono::milliseconds(std::stoll(text));
            return;
          } catch (const std::out_of_range&) {
            throw CLI::ValidationError(name, fmt::format("{} milliseconds is too long", text));
          }
        }
        try {
          target = keys::parse_duration_ms(text);
        } catch (const std::invalid_argument& e) {
          throw CLI::ValidationError(name, e.what());
        }
      },
      description);
  opt->type_name("DURATION");
  return opt;
}
}  // namespace

CLI::Option* add_duration_option(CLI::App* app, const std::string& name,
                                 std::chrono::milliseconds& target, const std::string& description,
                                 const std::string& legacy_ms_name) {
  auto* opt = duration_option(app, name, target, description, false);
  if (!legacy_ms_name.empty())
    duration_option(app, legacy_ms_name, target, "The same in milliseconds (a plain number)", true)
        ->group("")  // hidden from help, completion and the man page
        ->excludes(opt);
  return opt;
}

Cli::Cli() : app("muster — call nodes served by muster workers and inspect the daemon.", "muster") {
  app.set_version_flag("--version", "muster " MUSTER_VERSION);  // "NAME VERSION", as the other programs
  app.footer("Run `muster help COMMAND` for a command's options, `muster help exit-codes` for the "
             "exit statuses.");
  o_address_ = app.add_option("--client-address", copt_.client_address,
                              "Daemon client endpoint, or both daemons' of a failover pair "
                              "comma-separated (default: the context's, else "
                              "ipc://<runtime dir>/client.sock)");
  o_insecure_ = app.add_flag("--insecure", copt_.insecure, "Allow tcp:// endpoints without CURVE (clear text!)");
  o_data_dir_ = app.add_option("--data-dir", copt_.secure.data_dir,
                               "Where this client's CURVE keys, identity and saved daemon key live "
                               "(tcp:// only; default: $MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster)");
  o_name_ = app.add_option("--name", copt_.secure.name, "Identity name in the data dir (default: client, or admin)");
  o_enroll_address_ = app.add_option("--enrollment-address", copt_.secure.enrollment_address,
                                     "Daemon enrollment endpoint (default: tcp://<client host>:7900)");
  o_token_file_ = app.add_option("--enrollment-token-file", copt_.secure.token_file,
                                 "File holding the enrollment token (default: $MUSTER_ENROLLMENT_TOKEN, else "
                                 "$XDG_CONFIG_HOME/muster/enrollment-token)");
  add_duration_option(&app, "--enroll-timeout", enroll_timeout_,
                      "How long to wait for the enrollment answer (e.g. 10s; default 10s)",
                      "--enroll-timeout-ms");
  o_admin_ = app.add_flag("--admin", as_admin_, "Enroll/connect as an admin identity (admin commands over tcp://)");
  app.add_option("--context", context_flag_,
                 "Connection profile to use (default: $MUSTER_CONTEXT, else `muster context use`)");
  app.add_option("--log-level", log_level_, "trace, debug, info, warn, error or off")->capture_default_str();
  app.require_subcommand(1);
}

void Cli::apply_context() {
  if (context_applied_) return;
  context_applied_ = true;
  if (as_admin_) copt_.secure.role = "admin";
  copt_.secure.enroll_timeout = enroll_timeout_;
  auto selected = selected_context(load_contexts(), context_flag_);
  if (!selected) return;
  context_name_ = selected->first;
  const Context& c = selected->second;
  auto fill = [](CLI::Option* given, std::string& target, const std::string& value) {
    if (given->count() == 0 && !value.empty()) target = value;
  };
  fill(o_address_, copt_.client_address, c.client_address);
  fill(o_data_dir_, copt_.secure.data_dir, c.data_dir);
  fill(o_name_, copt_.secure.name, c.name);
  fill(o_enroll_address_, copt_.secure.enrollment_address, c.enrollment_address);
  fill(o_token_file_, copt_.secure.token_file, c.enrollment_token_file);
  if (o_insecure_->count() == 0) copt_.insecure = c.insecure;
  if (o_admin_->count() == 0 && c.admin) copt_.secure.role = "admin";
}

const ClientOptions& Cli::client_options() {
  apply_context();
  return copt_;
}

const std::string& Cli::context_name() {
  apply_context();
  return context_name_;
}

Client& Cli::client() {
  apply_context();
  if (!client_) client_ = std::make_unique<Client>(copt_);
  return *client_;
}

int Cli::run(int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);  // prints help, the version, or the error with a hint
    return status == 0 ? code(Exit::Ok) : code(Exit::Usage);
  }
  spdlog::set_level(spdlog::level::from_str(log_level_));
  try {
    return dispatch();
  } catch (const CallError& e) {
    std::cerr << "error: " << error_code_name(e.code()) << ": " << e.what() << "\n";
    return code(exit_for(e.code()));
  } catch (const EnrollmentError& e) {
    // enrollment and key problems: the message says what is wrong and what to do
    std::cerr << "error: " << error_code_name(e.code()) << ": " << e.what() << "\n";
    return code(exit_for(e.code()));
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return code(Exit::Usage);
  } catch (const std::exception& e) {
    std::cerr << "error: INTERNAL: " << e.what() << "\n";
    return code(Exit::Failed);
  }
}

int Cli::dispatch() {
  // The deepest chosen subcommand with an action (`token create` before `token`).
  const std::pair<CLI::App*, Action>* chosen = nullptr;
  std::size_t depth = 0;
  for (auto& entry : actions_) {
    if (!entry.first->parsed()) continue;
    std::size_t d = 0;
    for (auto* p = entry.first; p; p = p->get_parent()) ++d;
    if (!chosen || d > depth) {
      chosen = &entry;
      depth = d;
    }
  }
  if (!chosen) throw std::logic_error("no action for the chosen command");
  return chosen->second();
}

}  // namespace muster::cli
