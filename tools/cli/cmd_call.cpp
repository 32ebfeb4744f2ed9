// cmd_call.cpp — `muster call NODE [INPUTS]`: submit, wait, print the outputs as JSON.
// Ctrl-C (SIGINT) or SIGTERM cancels the request on the daemon first (exit 130); a durable call
// (--durable, or a node declared durable) is left running instead, its job id said on stderr
// when musterd accepts it, so that `muster job get ID` fetches it later. A durable call
// survives musterd's restart: the client resumes it (client.hpp) and the outcome is printed
// once, then acknowledged. With --stream, the node's items (partial results) are printed as they
// come, one JSON line each, before the outputs' line. `--input NAME=@FILE` reads a bytes input
// from a file (sent chunked when larger than the client's chunk threshold, never loaded whole);
// `--output-dir DIR` writes the bytes outputs as files named after their ports there (chunked
// ones streamed as they come) and prints {"file", "size", "sha256"} for them instead.
#include <iostream>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "cli.hpp"
#include "muster/chunking.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "progress_view.hpp"

namespace muster::cli {

namespace {

struct CallArgs {
  std::string node, inputs = "{}", parameters;
  std::chrono::milliseconds timeout{0};
  bool progress = false;
  bool durable = false;
  bool keep = false;
  bool stream = false;
  bool resumable = false, not_resumable = false;
  std::uint32_t window_items = 64;
  std::vector<std::string> file_inputs;  // NAME=@FILE
  std::string output_dir;
};

// --input NAME=@FILE as the input source it names; a clear usage error for anything else, or a
// file that cannot be read.
std::pair<std::string, std::shared_ptr<ByteSource>> file_input(const std::string& arg) {
  auto eq = arg.find("=@");
  if (eq == std::string::npos || eq == 0 || eq + 2 == arg.size())
    throw std::invalid_argument(fmt::format("--input {}: expected NAME=@FILE (a bytes input read from FILE)", arg));
  try {
    return {arg.substr(0, eq), std::make_shared<FileSource>(arg.substr(eq + 2))};
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(fmt::format("--input {}: {}", arg, e.what()));
  }
}

std::string hex(const std::array<std::uint8_t, 32>& digest) {
  std::string out;
  for (auto b : digest) out += fmt::format("{:02x}", b);
  return out;
}

// The outputs as printed with --output-dir: each bytes output (inline: written now; chunked:
// already committed by the sink) described by its file instead of its bytes.
Json outputs_with_files(const Map& outputs, DirectorySink& sink) {
  Json out = Json::object();
  for (auto& [port, value] : outputs) {
    if (value.kind() == ValueKind::Bytes) {
      auto& bytes = value.as_bytes();
      out[port] = Json{{"file", sink.write_file(port, bytes.span()).string()},
                       {"size", bytes.size()},
                       {"sha256", hex(sha256(bytes.span()))}};
    } else if (value.kind() == ValueKind::Chunked) {
      auto& ref = value.as_chunked();
      out[port] = Json{{"file", sink.path_of(port).string()}, {"size", ref.size}, {"sha256", hex(ref.sha256)}};
    } else {
      out[port] = to_json(value);
    }
  }
  return out;
}

Map json_argument(std::string text, const char* what) {
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  try {
    return map_from_json_text(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("{}: {}", what, e.what()));
  }
}

int call_node(Client& client, const CallArgs& a) {
  Map inputs = json_argument(a.inputs, "inputs");
  CallOptions o;
  for (auto& arg : a.file_inputs) o.input_sources.push_back(file_input(arg));
  std::shared_ptr<DirectorySink> sink;
  if (!a.output_dir.empty()) {
    try {
      sink = std::make_shared<DirectorySink>(a.output_dir);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(fmt::format("--output-dir: {}", e.what()));
    }
    o.output_sink = sink;
  }
  if (!a.parameters.empty()) o.parameters = json_argument(a.parameters, "--params");
  o.timeout_ms = static_cast<std::uint64_t>(a.timeout.count());
  o.durable = a.durable;
  o.keep_outcome = a.keep;
  if (a.resumable || a.not_resumable) o.resumable = a.resumable;
  if (a.stream) {
    o.stream_window_items = a.window_items;
    o.stream_window_bytes = 4ull << 20;
  }
  std::uint64_t job = 0;
  o.on_job = [&job](std::uint64_t id) {
    job = id;
    std::cerr << fmt::format("job {} (durable: `muster job get {}` fetches its outcome if this command stops)\n",
                             id, id);
  };
  std::optional<ProgressView> view;
  if (a.progress) {
    view.emplace(ProgressView::for_stderr());
    o.on_progress = [](std::uint64_t, std::uint64_t, const std::string&) {};
  }
  SignalPipe signals;
  auto id = client.submit(a.node, inputs, o);
  std::optional<std::chrono::steady_clock::time_point> cancelled_at;
  for (;;) {
    if (signals.triggered() && !cancelled_at) {
      if (job) {  // durable: it runs on without this command
        if (view) view->finish();
        std::cerr << fmt::format("detached: job {} runs on; `muster job get {}` fetches its outcome, "
                                 "`muster job cancel {}` cancels it\n", job, job, job);
        return code(Exit::Cancelled);
      }
      client.cancel(id);
      cancelled_at = std::chrono::steady_clock::now();
    }
    if (cancelled_at && std::chrono::steady_clock::now() - *cancelled_at > std::chrono::seconds(5)) {
      if (view) view->finish();
      std::cerr << "error: CANCELLED: cancelled; the daemon did not confirm\n";
      return code(Exit::Cancelled);
    }
    for (auto& ev : client.poll(std::chrono::milliseconds(100))) {
      if (ev.request_id != id) continue;
      if (auto* p = std::get_if<ProgressEvent>(&ev.body)) {
        if (view) view->update(p->step, p->total, p->message);
        continue;
      }
      if (auto* item = std::get_if<ItemEvent>(&ev.body)) {
        std::cout << to_json(item->values).dump() << std::endl;  // as it comes, also into a pipe
        continue;
      }
      if (view) view->finish();
      if (auto* r = std::get_if<ResultEvent>(&ev.body)) {
        Json printed;
        try {
          printed = sink ? outputs_with_files(r->outputs, *sink) : to_json(r->outputs);
        } catch (const std::runtime_error& e) {  // an output that cannot be written to --output-dir
          std::cerr << "error: --output-dir: " << e.what() << "\n";
          return code(Exit::Failed);
        }
        std::cout << printed.dump() << "\n";
        return code(Exit::Ok);
      }
      auto& f = std::get<FailureEvent>(ev.body);
      std::cerr << "error: " << error_code_name(f.code) << ": " << f.message << "\n";
      return cancelled_at ? code(Exit::Cancelled) : code(exit_for(f.code));
    }
  }
}

}  // namespace

void add_call_commands(Cli& cli) {
  auto a = std::make_shared<CallArgs>();
  auto* call = cli.app.add_subcommand("call", "Call a node; prints its outputs as JSON");
  call->add_option("NODE", a->node, "Node name")->required();
  call->add_option("INPUTS", a->inputs, "Inputs as a JSON object ('-' reads stdin)")->capture_default_str();
  call->add_option("--params", a->parameters, "Parameters as a JSON object ('-' reads stdin)");
  add_duration_option(call, "--timeout", a->timeout,
                      "Deadline, e.g. 500ms, 30s, 2m (default: the node's, else the daemon's)",
                      "--timeout-ms");
  call->add_flag("--progress", a->progress,
                 "Show the node's progress on stderr: a bar on a terminal, `progress: STEP/TOTAL "
                 "MESSAGE` lines otherwise");
  call->add_flag("--durable", a->durable,
                 "Journal the call: musterd keeps it across its own crash or restart, and prints "
                 "its job id on stderr (docs/DURABILITY.md)");
  call->add_flag("--keep", a->keep,
                 "With --durable: do not acknowledge the outcome once printed; musterd keeps it for "
                 "`muster job get` until its --result-ttl-ms");
  auto* resumable = call->add_flag("--resumable", a->resumable,
                                   "Keep the call across a break of the connection to musterd (PROTOCOL.md "
                                   "§8.3): it goes on on the next connection (default for a call with --stream, "
                                   "--output-dir or an input sent in chunks)");
  call->add_flag("--no-resumable", a->not_resumable, "A break of the connection to musterd ends the call UNAVAILABLE")
      ->excludes(resumable);
  call->add_flag("--stream", a->stream,
                 "Read the node's items (partial results) and print each as one JSON line as it "
                 "comes, then the outputs' line; the node runs at most --window items ahead");
  call->add_option("--window", a->window_items, "With --stream: items the node may run ahead of this command")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20));
  call->add_option("--input", a->file_inputs,
                   "NAME=@FILE: the bytes input NAME read from FILE (repeatable; added to INPUTS). A file "
                   "over 8 MiB is sent in chunks as the worker reads it, never loaded whole")
      ->type_name("NAME=@FILE");
  call->add_option("--output-dir", a->output_dir,
                   "Write the bytes outputs as files named after their ports in DIR (created if missing; "
                   "large ones streamed as they arrive); the printed JSON names each file with its size "
                   "and sha256 instead of the bytes")
      ->type_name("DIR");
  call->footer("Ctrl-C cancels the request on the daemon (the worker is told to abort); a durable call is "
               "left running instead (detached: `muster job get ID`). A durable call prints its job id on "
               "stderr when accepted, outlives a musterd restart (this command reconnects and resumes it "
               "for up to 60 s) and is acknowledged once printed.");
  cli.on(call, [&cli, a] { return call_node(cli.client(), *a); });
}

}  // namespace muster::cli
