// main.cpp — musterd's command line: flags, defaults, logging, then the Daemon loop.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "muster/allocator.hpp"
#include "muster/config_file.hpp"
#include "muster/endpoints.hpp"
#include "muster/process.hpp"
#include "muster/runtime_dir.hpp"

int main(int argc, char** argv) {
  using muster::SocketRole;
  muster::broker::DaemonOptions opt;
  opt.data_dir = muster::default_data_dir().string();
  // Endpoints given on the command line; each role keeps its default ipc:// endpoint unless
  // an ipc:// one is given for it (endpoints_of).
  std::vector<std::string> request_addresses, response_addresses, client_addresses;
  std::string listen_host;
  std::uint64_t ping_ms = 1000, timeout_ms = 30000, grace_ms = 5000;
  std::string log_level = "info";

  CLI::App app{
      "musterd — the muster broker daemon.\n"
      "Keeps the registry of workers, dispatches work requests to them and enforces deadlines.\n"
      "Default endpoints are ipc:// sockets in the runtime dir ($MUSTER_RUNTIME_DIR, else\n"
      "$XDG_RUNTIME_DIR/muster, else /tmp/muster-$UID), created with mode 0700.\n"
      "tcp:// endpoints are CURVE servers: peers enroll with a token (`muster token create`).",
      "musterd"};
  app.set_version_flag("--version", "musterd " MUSTER_VERSION)->configurable(false);  // "NAME VERSION" (help2man)
  // Every flag below is also a setting of the --config file (muster/config_file.hpp): add one here, once.
  bool print_config = false;
  muster::add_config_options(app, &print_config);
  app.add_option("--data-dir", opt.data_dir, "Directory for keys, tokens and identities")
      ->capture_default_str();
  auto endpoint_option = [&](const char* flag, std::vector<std::string>& into, SocketRole role,
                             std::string_view what) {
    app.add_option(flag, into,
                   fmt::format("{} Repeatable: each one adds an endpoint; the default {} stays "
                               "unless an ipc:// endpoint is given",
                               what, muster::default_endpoint(role)))
        ->allow_extra_args(false);
  };
  endpoint_option("--request-address", request_addresses, SocketRole::Request,
                  "XPUB endpoint workers subscribe to.");
  endpoint_option("--response-address", response_addresses, SocketRole::Response,
                  "ROUTER endpoint workers talk to.");
  endpoint_option("--client-address", client_addresses, SocketRole::Client,
                  "ROUTER endpoint clients talk to.");
  app.add_option("--enrollment-address", opt.enrollment_address,
                 "tcp:// endpoint where workers and clients enroll with a token (CURVE)");
  app.add_option("--listen", listen_host,
                 "Also listen on HOST over CURVE TCP: request 7899, response 7898, client 7901, "
                 "enrollment 7900 (next to the ipc:// sockets for local peers)");
  app.add_flag("--insecure", opt.insecure,
               "Allow tcp:// endpoints without CURVE (clear text, no enrollment!)");
  app.add_option("--ping-interval-ms", ping_ms, "Heartbeat interval")
      ->capture_default_str()->check(CLI::Range(10, 3600000));
  app.add_option("--liveness", opt.core.liveness,
                 "Heartbeat intervals a worker may stay silent before it is declared dead")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--idle-pong-every", opt.core.idle_pong_every,
                 "A worker that asks (Attach.idle_pongs) and holds nothing may answer only every "
                 "k-th ping; it is then dead after (liveness + k - 1) silent intervals. 1: every ping")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--queue-limit", opt.core.queue_limit,
                 "Requests that may wait per node when every worker is busy")
      ->capture_default_str()->check(CLI::Range(0, 10000000));
  app.add_option("--max-open-bytes", opt.core.max_open_bytes,
                 "Payload bytes musterd may hold for open requests (queued and running) before "
                 "new submits get QUEUE_FULL; 0 = no limit")
      ->capture_default_str();
  app.add_option("--max-attempts", opt.core.max_attempts,
                 "Dispatches of an idempotent request across worker deaths")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--default-timeout-ms", timeout_ms,
                 "Deadline for requests whose client and node give none")
      ->capture_default_str()->check(CLI::Range(1, 86400000));
  app.add_option("--shutdown-grace-ms", grace_ms,
                 "On SIGINT/SIGTERM, how long running requests may still finish")
      ->capture_default_str()->check(CLI::Range(0, 3600000));
  app.add_option("--max-message-bytes", opt.max_message_bytes, "Largest message accepted")
      ->capture_default_str()->check(CLI::Range(1024, 1 << 30));
  app.add_option("--max-attach-nodes", opt.max_attach_nodes,
                 "Nodes one worker may declare in its Attach (more is refused, unread)")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  // Reliability limits (docs/PROTOCOL.md §10, docs/RELIABILITY.md).
  std::uint64_t no_worker_grace_ms = 2000;
  app.add_option("--no-worker-grace-ms", no_worker_grace_ms,
                 "When the last worker of a node goes, how long its queued requests wait for a "
                 "worker of the node to attach before they end NO_WORKER; 0 = at once")
      ->capture_default_str()->check(CLI::Range(0, 3600000));
  app.add_option("--max-resends", opt.core.max_resends,
                 "Re-sends of a request its worker's pongs keep missing (at most one per ping); "
                 "then it is lost with that worker (re-queued if idempotent, else WORKER_LOST)")
      ->capture_default_str()->check(CLI::Range(0, 100));
  // Item streams (docs/PROTOCOL.md §7.8): the largest window a caller may ask for.
  app.add_option("--stream-window-items", opt.core.streams.max_items,
                 "Items a streaming call's worker may run ahead of its caller, at most (a larger "
                 "Submit.stream_window_items is cut to it)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--stream-window-bytes", opt.core.streams.max_bytes,
                 "The same bound in bytes of item values, and the most credit one chunked stream "
                 "gets (musterd holds at most this much of one stream in its queues, plus one item)")
      ->capture_default_str()->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 34));
  app.add_option("--max-client-outstanding", opt.core.max_client_outstanding,
                 "Calls one client connection may have open plus replies it has not read; "
                 "beyond it a Submit gets QUEUE_FULL at once; 0 = no limit")
      ->capture_default_str()->check(CLI::Range(0, 10000000));
  app.add_option("--max-client-outstanding-bytes", opt.core.max_client_outstanding_bytes,
                 "The same bound in payload bytes (inputs of open calls, unread replies); 0 = no limit")
      ->capture_default_str();
  app.add_option("--max-attach-spec-bytes", opt.core.max_attach_spec_bytes,
                 "Bytes the node specs of one Attach may take as JSON; 0 = no limit")
      ->capture_default_str();
  app.add_option("--max-workers-per-identity", opt.core.max_workers_per_identity,
                 "Worker ids one identity may have attached at once (the ipc owner is one "
                 "identity); 0 = no limit")
      ->capture_default_str()->check(CLI::Range(0, 10000000));
  app.add_option("--watch-backlog", opt.core.watch_backlog,
                 "Events one watcher (Watch, `muster watch`) may have waiting while it does not "
                 "read; past it they are dropped and it gets OVERFLOW, then a fresh snapshot")
      ->capture_default_str()->check(CLI::Range(1, 10000000));
  // Durable calls (docs/DURABILITY.md).
  app.add_option("--journal", opt.journal,
                 "Journal of durable calls: sqlite:PATH (default: sqlite:DATA_DIR/journal.db, "
                 "opened at start if it exists, else at the first durable call), or "
                 "postgresql://USER@HOST/DATABASE shared by a failover pair: the musterd that holds "
                 "its lease serves, the other waits as a standby without binding anything. A "
                 "journal that cannot be opened or fails a commit, or a lost lease, stops musterd");
  app.add_option("--journal-shard", opt.journal_shard,
                 "With a postgresql:// journal: the shard (rows and lease) this pair owns")
      ->capture_default_str();
  std::uint64_t lease_ms = 4000;
  app.add_option("--lease-ms", lease_ms,
                 "With a postgresql:// journal: how long the active daemon's lease lasts without a "
                 "renewal (renewed every quarter of it); a standby takes over once it ran out")
      ->capture_default_str()->check(CLI::Range(100, 600000));
  app.add_option("--journal-max-bytes", opt.core.journal_max_bytes,
                 "Payload bytes the journal may hold for open and undelivered durable calls; a "
                 "durable Submit beyond it gets QUEUE_FULL; 0 = no limit")
      ->capture_default_str();
  std::string journal_sync = "full";
  app.add_option("--journal-sync", journal_sync,
                 "How far a journal commit goes before musterd answers what waited for it: full "
                 "(SQLite: the WAL fdatasynced, on a thread of its own while the next batch is written; "
                 "PostgreSQL synchronous_commit=on: to the disk; survives "
                 "a killed musterd, an OS crash and a power loss) or normal (SQLite "
                 "synchronous=NORMAL, PostgreSQL synchronous_commit=off: survives a killed musterd, "
                 "not an OS crash or power loss, which may lose the last accepted calls)")
      ->capture_default_str()->check(CLI::IsMember({"full", "normal"}));
  app.add_option("--journal-early-dispatch", opt.journal_early_dispatch,
                 "Send a durable call's WorkRequest before the commit that holds both its "
                 "Submitted and Dispatched records, so a fast result joins that commit (one "
                 "commit per call); false only to measure against it (docs/DURABILITY.md §3)")
      ->capture_default_str();
  std::uint64_t journal_gather_ms = 2;
  app.add_option("--journal-gather-ms", journal_gather_ms,
                 "How long a batch of durable records may wait for the answers of the calls it "
                 "dispatched before it commits, so that a call's Submitted, Dispatched and "
                 "Finished share one commit (one row written); 0: commit at once "
                 "(docs/DURABILITY.md §3)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  std::uint64_t result_ttl_ms = 3600000;
  app.add_option("--result-ttl-ms", result_ttl_ms,
                 "How long the journal keeps a durable call's outcome for its caller")
      ->capture_default_str()->check(CLI::Range(std::uint64_t{1}, std::uint64_t{365} * 86400000));
  std::uint64_t resume_keep_ms = 10000;
  app.add_option("--resume-keep-ms", resume_keep_ms,
                 "How long the terminal reply of a resumable call is kept after it was sent, for a "
                 "caller whose connection broke to take with CallResume; 0: no call is resumable "
                 "(docs/PROTOCOL.md §8.3)")
      ->capture_default_str()->check(CLI::Range(std::uint64_t{0}, std::uint64_t{86400000}));
  std::uint64_t resume_keep_bytes = 64ull << 20;
  app.add_option("--resume-keep-bytes", resume_keep_bytes,
                 "The bytes of resumable calls' kept replies in all; beyond, the oldest are "
                 "forgotten first (docs/PROTOCOL.md §8.3)")
      ->capture_default_str();
  app.add_option("--metrics-address", opt.metrics_address,
                 "Serve Prometheus metrics on http://HOST:PORT/metrics (off by default; a loopback "
                 "address such as 127.0.0.1:9464 unless --metrics-allow-remote; docs/OPERATIONS.md)");
  app.add_flag("--metrics-allow-remote", opt.metrics_allow_remote,
               "Allow a --metrics-address that is not loopback (/metrics has no authentication)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format, muster::kLogFormatHelp)
      ->capture_default_str()->check(CLI::IsMember({"text", "json"}));
  CLI11_PARSE(app, argc, argv);
  if (print_config) {
    std::cout << muster::effective_config(app);
    return 0;
  }
  opt.core.no_worker_grace = muster::broker::Millis(no_worker_grace_ms);
  opt.core.result_ttl = muster::broker::Millis(result_ttl_ms);
  opt.core.resume_keep = muster::broker::Millis(resume_keep_ms);
  opt.core.resume_keep_bytes = resume_keep_bytes;
  opt.journal_gather = std::chrono::milliseconds(journal_gather_ms);
  opt.journal_lease_term = std::chrono::milliseconds(lease_ms);
  opt.journal_sync = journal_sync == "normal" ? muster::broker::journal::JournalSync::Normal
                                              : muster::broker::journal::JournalSync::Full;

  auto endpoints_of = [](SocketRole role, std::vector<std::string> given) {
    if (std::none_of(given.begin(), given.end(), [](auto& ep) { return muster::is_ipc(ep); }))
      given.insert(given.begin(), muster::default_endpoint(role));
    return given;
  };
  opt.request_addresses = endpoints_of(SocketRole::Request, std::move(request_addresses));
  opt.response_addresses = endpoints_of(SocketRole::Response, std::move(response_addresses));
  opt.client_addresses = endpoints_of(SocketRole::Client, std::move(client_addresses));
  if (!listen_host.empty()) {
    auto tcp = [&](SocketRole r) {
      return fmt::format("tcp://{}:{}", listen_host, muster::default_tcp_port(r));
    };
    opt.request_addresses.push_back(tcp(SocketRole::Request));
    opt.response_addresses.push_back(tcp(SocketRole::Response));
    opt.client_addresses.push_back(tcp(SocketRole::Client));
    if (opt.enrollment_address.empty() && !opt.insecure) opt.enrollment_address = tcp(SocketRole::Enrollment);
  }
  opt.core.ping_interval = muster::broker::Millis(ping_ms);
  opt.core.default_timeout = muster::broker::Millis(timeout_ms);
  opt.core.shutdown_grace = muster::broker::Millis(grace_ms);
  opt.core.version = MUSTER_VERSION;
  try {
    muster::setup_logging(log_level, "musterd", muster::parse_log_format(log_format));
    muster::reuse_memory_for_large_messages();
    muster::use_one_malloc_arena();  // before the Daemon's sockets start libzmq's I/O thread
    muster::SignalPipe signals;
    muster::broker::Daemon daemon(std::move(opt));
    return daemon.run(signals);
  } catch (const std::exception& e) {
    std::cerr << "musterd: error: " << e.what() << "\n";
    return 1;
  }
}
