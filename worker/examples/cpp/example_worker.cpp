// example_worker.cpp — muster-example-worker: the six example nodes of the C++ SDK.
//   echo  — outputs = inputs, of any size (a bytes value over the SDK's chunk threshold travels
//           chunked both ways, PROTOCOL.md §7.9)
//   sha256 — {data: bytes} -> {hex: its SHA-256 in hex}, reading data as a stream (a 2 GiB input
//           is hashed in the memory of a few chunks)
//   hello — {name} -> {greeting: "Hello <name>", shout: "HELLO <NAME>"}; empty name -> "world"
//   sleep — {ms} -> {slept_ms}; reports progress; stops early on abort
//   fail  — {message} -> fails with WORKER_ERROR carrying the message
//   count — {n, delay_ms, pad} -> items {i: 0..n-1} (docs/PROTOCOL.md §7.8), then {count};
//           each item also carries `pad` zero bytes if pad > 0; stops on abort
// echo, hello and fail return at once, so they run on the SDK's socket thread
// (HandlerThread::Socket; an echo with chunked values is handed to the pool by the SDK); sleep
// and sha256 block, so they run on the handler pool.
#include <algorithm>
#include <cctype>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <sodium.h>

#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/worker.hpp"

using namespace muster;

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

void declare_nodes(Worker& w, bool idempotent, bool durable) {
  w.node({.name = "echo",
          .description = "Returns its inputs unchanged.",
          .category = "examples",
          .version = "1.0.0",
          .idempotent = true},
         [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);

  w.node({.name = "sha256",
          .description = "Returns the SHA-256 of `data` in hex, reading it as a stream (any size, bounded memory).",
          .category = "examples",
          .version = "1.0.0",
          .inputs = {{.name = "data", .type = "bytes", .required = true}},
          .outputs = {{.name = "hex", .type = "string"}},
          .idempotent = true},
         [](Context& ctx) {
           crypto_hash_sha256_state state;
           crypto_hash_sha256_init(&state);
           auto& in = ctx.input_stream("data");
           for (auto piece = in.next(); !piece.empty(); piece = in.next())
             crypto_hash_sha256_update(&state, piece.data(), piece.size());
           std::array<std::uint8_t, crypto_hash_sha256_BYTES> digest{};
           crypto_hash_sha256_final(&state, digest.data());
           std::string hex(digest.size() * 2 + 1, '\0');
           sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
           hex.pop_back();
           return Map{{"hex", hex}};
         },
         {.streamed_inputs = {"data"}});

  w.node({.name = "hello",
          .description = "Greets someone, as Hurozo's hello-world remote node.",
          .category = "examples",
          .version = "1.0.0",
          .inputs = {{.name = "name", .type = "string", .description = "who to greet"}},
          .outputs = {{.name = "greeting", .type = "string"}, {.name = "shout", .type = "string"}},
          .idempotent = true},
         [](Context& ctx) {
           Value v = ctx.input_or("name", "");
           std::string name = v.kind() == ValueKind::String ? v.as_string() : "";
           if (name.empty()) name = "world";
           return Map{{"greeting", "Hello " + name}, {"shout", "HELLO " + upper(name)}};
         },
         HandlerThread::Socket);

  w.node({.name = "sleep",
          .description = "Sleeps for `ms` milliseconds, reporting progress; stops early on abort.",
          .category = "examples",
          .version = "1.0.0",
          .inputs = {{.name = "ms", .type = "int", .required = true}},
          .outputs = {{.name = "slept_ms", .type = "int"}},
          .idempotent = idempotent,
          .durable = durable},
         [](Context& ctx) {
           std::int64_t ms = ctx.input("ms").as_int();
           if (ms < 0) throw WorkError("ms must not be negative", ErrorCode::InvalidRequest);
           constexpr std::int64_t steps = 10;
           auto start = std::chrono::steady_clock::now();
           for (std::int64_t i = 1; i <= steps; ++i) {
             if (!ctx.sleep_for(std::chrono::milliseconds(ms / steps + (i <= ms % steps ? 1 : 0)))) {
               auto slept = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - start).count();
               spdlog::info("sleep request {} aborted after {} ms", ctx.request_id(), slept);
               throw WorkError(fmt::format("aborted after {} ms", slept));  // dropped by the daemon anyway
             }
             ctx.progress(static_cast<std::uint64_t>(i), steps, fmt::format("slept {}/{}", i, steps));
           }
           auto slept = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start).count();
           return Map{{"slept_ms", static_cast<long long>(slept)}};
         });

  w.node({.name = "count",
          .description = "Streams the items {i: 0}, {i: 1}, ... {i: n-1} (call it with a stream: "
                         "`muster call --stream count '{\"n\": 3}'`), then returns {count}; waits "
                         "delay_ms before each item; stops early on abort.",
          .category = "examples",
          .version = "1.0.0",
          .inputs = {{.name = "n", .type = "int", .required = true},
                     {.name = "delay_ms", .type = "int", .default_value = Value(0)},
                     {.name = "pad", .type = "int", .description = "bytes of padding per item",
                      .default_value = Value(0)}},
          .outputs = {{.name = "count", .type = "int"}},
          .idempotent = idempotent},
         [](Context& ctx) {
           std::int64_t n = ctx.input("n").as_int(), delay = ctx.input("delay_ms").as_int();
           std::int64_t pad = ctx.input("pad").as_int();
           if (n < 0 || delay < 0 || pad < 0 || pad > (64 << 20))
             throw WorkError("n, delay_ms must not be negative, pad must be 0 to 64 MiB", ErrorCode::InvalidRequest);
           std::int64_t i = 0;
           for (; i < n; ++i) {
             if (delay > 0 && !ctx.sleep_for(std::chrono::milliseconds(delay))) break;
             Map item{{"i", static_cast<long long>(i)}};
             if (pad > 0) item.set("pad", Value(Bytes(static_cast<std::size_t>(pad), 0)));
             if (!ctx.emit(item)) break;  // aborted
           }
           if (i < n) {
             spdlog::info("count request {} aborted after {} item(s)", ctx.request_id(), i);
             throw WorkError(fmt::format("aborted after {} item(s)", i));  // dropped by the daemon anyway
           }
           return Map{{"count", static_cast<long long>(n)}};
         });

  w.node({.name = "fail",
          .description = "Always fails with a worker error carrying `message`.",
          .category = "examples",
          .version = "1.0.0",
          .inputs = {{.name = "message", .type = "string"}},
          .idempotent = true},
         [](Context& ctx) -> Map {
           Value m = ctx.input_or("message", "failed on purpose");
           throw WorkError(m.kind() == ValueKind::String ? m.as_string() : "failed on purpose");
         },
         HandlerThread::Socket);
}

}  // namespace

int main(int argc, char** argv) {
  WorkerOptions opt;
  opt.capacity = 4;
  bool idempotent = false, durable = false;
  std::string log_level = "info";
  CLI::App app{"muster-example-worker — serves the example nodes echo, sha256, hello, sleep, fail and count.",
               "muster-example-worker"};
  app.set_version_flag("--version", "muster-example-worker " MUSTER_VERSION);  // "NAME VERSION", as help2man reads it
  app.add_option("--worker-id", opt.worker_id, "Worker id (default: <hostname>-<pid>)");
  app.add_option("--capacity", opt.capacity, "Requests served at once")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--request-address", opt.request_address,
                 "Daemon request (PUB) endpoint, or both daemons' of a failover pair "
                 "comma-separated (default: ipc://<runtime dir>/request.sock)");
  app.add_option("--response-address", opt.response_address,
                 "Daemon response (ROUTER) endpoint, or both daemons' of a failover pair "
                 "comma-separated, in the same order (default: ipc://<runtime dir>/response.sock)");
  app.add_flag("--insecure", opt.insecure, "Allow tcp:// endpoints without CURVE (clear text!)");
  app.add_flag("!--no-direct", opt.direct,
               "Connect a SUB and a DEALER instead of one connection (PROTOCOL.md §7.10)");
  app.add_option("--data-dir", opt.secure.data_dir,
                 "Where the worker's CURVE keys and identity live (tcp:// only; default: "
                 "$MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster)");
  app.add_option("--name", opt.secure.name, "Identity name in the data dir (default: worker)");
  app.add_option("--enrollment-address", opt.secure.enrollment_address,
                 "Daemon enrollment endpoint (default: tcp://<daemon host>:7900)");
  app.add_option("--enrollment-token-file", opt.secure.token_file,
                 "File holding the enrollment token (default: $MUSTER_ENROLLMENT_TOKEN, else "
                 "$XDG_CONFIG_HOME/muster/enrollment-token)");
  app.add_flag("--idempotent", idempotent,
               "Declare `sleep` and `count` idempotent, so the daemon may re-run them elsewhere if this "
               "worker dies (`count` only until an item reached its caller)");
  app.add_flag("--durable", durable,
               "Declare `sleep` durable: musterd journals every call to it, as if the caller asked "
               "(docs/DURABILITY.md)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    setup_logging(log_level, "worker");
    Worker worker(opt);
    declare_nodes(worker, idempotent, durable);
    return worker.run();
  } catch (const EnrollmentError& e) {
    std::cerr << "muster-example-worker: error: " << error_code_name(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "muster-example-worker: error: " << e.what() << "\n";
    return 1;
  }
}
