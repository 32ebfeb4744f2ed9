// sim_workers.cpp — muster-bench-simworkers: many simulated workers in one process, each with
// its own DEALER socket (and a SUB with --no-direct, or when musterd does not grant direct),
// speaking the wire protocol (PROTOCOL.md §7) directly. Used by
// `muster-bench --scale` to put 1,000 workers on one musterd without 1,000 processes.
//
// A simulated worker attaches with one node, answers Pings with a Pong that lists the
// requests it holds, and holds every WorkRequest it gets (never answers it) so that requests
// pile up in the daemon's queue. An Abort releases the request. It attaches as the C++ SDK
// does, with no_answer_acks and idle_pongs (PROTOCOL.md §7.3, §7.7): while it holds nothing it
// answers only every k-th broadcast ping (Attached.idle_pong_every), and musterd Acks only
// the Pong that confirms it. Like the C++ SDK it asks for direct (§7.10: everything on the
// DEALER, no SUB; --no-direct: SUB and DEALER, as before), so one binary measures both; a
// musterd that does not grant it gets a SUB connected after Attached.
//
// With --echo it instead answers every WorkRequest at once, on its only thread, with a Result
// whose outputs are the request's inputs (the nested buffer copied as it is, never decoded):
// the cheapest worker the protocol allows, to tell musterd's cost from the C++ SDK's
// (muster-bench --system raw). --auto-go attaches at once without waiting for stdin.
// --distinct-nodes gives each worker a node of its own, <node>.<n> (1,000 workers, 1,000 nodes:
// the dashboard's browser test, tests/integration/test_dashboard.py).
//
// Driven through stdin/stdout, one line each way:
//   (at start, once every socket is connected)      -> "connected <n>"
//   "go"      send every Attach at once (the storm)  -> "settled <n> <go_ns> <last_confirm_ns>"
//                                                       once every worker is confirmed
//                                                       (steady-clock ns, comparable across
//                                                       processes on Linux: CLOCK_MONOTONIC)
//   "stats"                                          -> "stats attached=.. confirmed=.. held=..
//                                                       rejected=.. pongs=.."
//   "quit"    exit
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"

using namespace muster;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

struct Sim {
  std::string id, topic;  // topic: Attached.topic, subscribed when it comes
  std::unique_ptr<zmq::socket_t> sub, dealer;  // sub: null while direct
  bool attached = false, confirmed = false, direct = false;
  std::string instance;
  std::vector<std::uint64_t> confirm_pongs;  // seqs of the Pongs sent to confirming pings
  std::uint32_t idle_pong_every = 0, pings_unanswered = 0;  // Attached's k; skipped in a row
  std::vector<std::uint64_t> held;
};

zmq::message_t finish(flatbuffers::FlatBufferBuilder& fbb, const std::string& worker_id,
                      wire::WorkerBody type, flatbuffers::Offset<void> body) {
  finish_worker_message(fbb, worker_id, type, body);
  return message_of(fbb);
}

}  // namespace

int main(int argc, char** argv) {
  int count = 250;
  std::string prefix = "sim", request_address, response_address, node = "bench.hold";
  std::uint32_t capacity = 1;
  bool echo = false, auto_go = false, distinct_nodes = false, no_direct = false;
  CLI::App app{"muster-bench-simworkers — many simulated workers in one process.",
               "muster-bench-simworkers"};
  app.add_option("--count", count, "Simulated workers")->capture_default_str();
  app.add_option("--prefix", prefix, "Worker ids are <prefix>-<n>")->capture_default_str();
  app.add_option("--request-address", request_address, "musterd PUB endpoint")->required();
  app.add_option("--response-address", response_address, "musterd ROUTER endpoint")->required();
  app.add_option("--node", node, "The node every simulated worker declares")->capture_default_str();
  app.add_option("--capacity", capacity, "Capacity each declares")->capture_default_str();
  app.add_flag("--echo", echo, "Answer every request at once with its inputs");
  app.add_flag("--auto-go", auto_go, "Attach at once; stdin is not read");
  app.add_flag("--distinct-nodes", distinct_nodes, "Worker n declares node <node>.<n> instead of the shared --node");
  app.add_flag("--no-direct", no_direct,
               "Do not ask for direct (PROTOCOL.md §7.10): a SUB and a DEALER per worker, as before");
  CLI11_PARSE(app, argc, argv);

  zmq::context_t ctx{1};
  ctx.set(zmq::ctxopt::max_sockets, 2 * count + 64);
  // The SUB, subscribed to the broadcast topic (the worker topic comes with Attached).
  auto connect_sub = [&](Sim& s) {
    s.sub = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::sub);
    s.sub->set(zmq::sockopt::linger, 0);
    s.sub->set(zmq::sockopt::subscribe, "b:");
    s.sub->connect(request_address);
  };
  std::vector<Sim> sims(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto& s = sims[static_cast<std::size_t>(i)];
    s.id = fmt::format("{}-{}", prefix, i);
    s.dealer = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    s.dealer->set(zmq::sockopt::linger, 0);
    if (no_direct) connect_sub(s);
    s.dealer->connect(response_address);
  }
  // Let the connections and subscriptions settle before reporting: the storm is then the
  // attaches alone, as after a daemon restart when every worker is connected and re-attaches.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::cout << "connected " << count << std::endl;

  NodeSpec spec{.name = node, .description = "held by muster-bench-simworkers", .category = "bench",
                .version = "1.0.0"};
  auto send_attach = [&](Sim& s) {
    flatbuffers::FlatBufferBuilder fbb(512);
    NodeSpec own = spec;
    if (distinct_nodes) own.name = fmt::format("{}.{}", spec.name, &s - sims.data());
    std::vector<flatbuffers::Offset<wire::NodeSpec>> specs{encode_node_spec(fbb, own)};
    auto body = wire::CreateAttachDirect(fbb, s.id.c_str(), "localhost", "muster-bench-sim/1",
                                         static_cast<std::uint32_t>(::getpid()), s.id.c_str(),
                                         capacity, &specs, /*payload_frames=*/false,
                                         /*no_answer_acks=*/!echo, /*batches=*/false,
                                         /*idle_pongs=*/!echo, /*direct=*/!no_direct);
    s.dealer->send(finish(fbb, s.id, wire::WorkerBody::Attach, body.Union()), zmq::send_flags::dontwait);
    s.attached = s.confirmed = false;
    s.idle_pong_every = 0;
    s.confirm_pongs.clear();
  };
  auto send_pong = [&](Sim& s, std::uint64_t seq, const std::string& instance, bool confirming) {
    flatbuffers::FlatBufferBuilder fbb(256);
    auto body = wire::CreatePongDirect(fbb, seq, instance.c_str(), &s.held);
    s.dealer->send(finish(fbb, s.id, wire::WorkerBody::Pong, body.Union()), zmq::send_flags::dontwait);
    s.pings_unanswered = 0;
    if (confirming) s.confirm_pongs.push_back(seq);
  };

  // Two items per worker: its SUB (none yet: fd -1, which poll ignores) and its DEALER.
  std::vector<zmq::pollitem_t> items;
  for (auto& s : sims) {
    items.push_back({s.sub ? s.sub->handle() : nullptr, -1, ZMQ_POLLIN, 0});
    items.push_back({s.dealer->handle(), 0, ZMQ_POLLIN, 0});
  }
  if (!auto_go) items.push_back({nullptr, STDIN_FILENO, ZMQ_POLLIN, 0});

  std::int64_t go_ns = 0, last_confirm_ns = 0;
  int confirmed = 0, rejected = 0;
  std::uint64_t pongs = 0;
  bool reported = false;
  std::string line_buf;
  // A message of the daemon for worker `s` (on its SUB, or on its DEALER when direct);
  // `own_topic`: it came on its topic, or, direct, before it was confirmed (a confirming ping
  // and a broadcast one look the same there: every ping is answered until then).
  auto on_published = [&](Sim& s, const wire::DaemonMessage* msg, bool own_topic) {
    switch (msg->body_type()) {
      case wire::DaemonBody::Ping: {
        auto* p = msg->body_as_Ping();
        std::string inst = str(p->instance());
        if (own_topic) {
          // A confirming ping: musterd sends it only once it has taken our Attach, so it
          // is answered even if the Attached reply (other socket) is not read yet.
          ++pongs;
          send_pong(s, p->seq(), inst, !s.confirmed);
          break;
        }
        if (!s.attached) break;  // a broadcast from before our Attach
        if (inst != s.instance) {
          send_attach(s);
          break;
        }
        if (s.held.empty() && s.idle_pong_every > 1 && s.pings_unanswered + 1 < s.idle_pong_every) {
          ++s.pings_unanswered;  // idle: this ping may go unanswered (§7.3)
          break;
        }
        ++pongs;
        send_pong(s, p->seq(), inst, false);
        break;
      }
      case wire::DaemonBody::WorkRequest: {
        auto* w = msg->body_as_WorkRequest();
        auto id = w->request_id();
        if (echo) {
          auto in = payload_bytes(w->inputs());
          flatbuffers::FlatBufferBuilder fbb(in.size() + 256);
          flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> out = 0;
          if (!in.empty()) {
            fbb.ForceVectorAlignment(in.size(), 1, 8);
            out = fbb.CreateVector(in.data(), in.size());
          }
          auto body = wire::CreateResult(fbb, id, out);
          s.dealer->send(finish(fbb, s.id, wire::WorkerBody::Result, body.Union()), zmq::send_flags::dontwait);
          break;
        }
        if (std::find(s.held.begin(), s.held.end(), id) == s.held.end()) s.held.push_back(id);
        break;
      }
      case wire::DaemonBody::Abort: {
        auto id = msg->body_as_Abort()->request_id();
        std::erase(s.held, id);
        break;
      }
      default: break;
    }
  };
  for (;;) {
    if (auto_go && !go_ns) {
      go_ns = now_ns();
      for (auto& s : sims) send_attach(s);
    }
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(200));
    if (!auto_go && (items.back().revents & ZMQ_POLLIN)) {
      char buf[256];
      auto n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) return 0;  // the bench is gone
      line_buf.append(buf, static_cast<std::size_t>(n));
      for (auto nl = line_buf.find('\n'); nl != std::string::npos; nl = line_buf.find('\n')) {
        std::string cmd = line_buf.substr(0, nl);
        line_buf.erase(0, nl + 1);
        if (cmd == "go") {
          go_ns = now_ns();
          for (auto& s : sims) send_attach(s);
        } else if (cmd == "stats") {
          int attached = 0;
          std::size_t held = 0;
          for (auto& s : sims) {
            attached += s.attached;
            held += s.held.size();
          }
          std::cout << fmt::format("stats attached={} confirmed={} held={} rejected={} pongs={}",
                                   attached, confirmed, held, rejected, pongs)
                    << std::endl;
        } else if (cmd == "quit") {
          return 0;
        }
      }
    }
    for (std::size_t i = 0; i < sims.size(); ++i) {
      auto& s = sims[i];
      if (items[2 * i + 1].revents & ZMQ_POLLIN) {
        zmq::message_t m;
        while (s.dealer->recv(m, zmq::recv_flags::dontwait)) {
          auto* msg = read_daemon_message(bytes_of(m));
          if (!msg) continue;
          switch (msg->body_type()) {
            case wire::DaemonBody::Attached: {
              auto* a = msg->body_as_Attached();
              s.attached = true;
              s.instance = str(a->instance());
              s.idle_pong_every = a->idle_pong_every();
              s.direct = a->direct();
              if (s.direct) break;
              if (!s.sub) {  // asked for direct, not granted (an older musterd): the SUB now
                connect_sub(s);
                items[2 * i].socket = s.sub->handle();
              }
              if (auto topic = str(a->topic()); topic != s.topic) {
                if (!s.topic.empty()) s.sub->set(zmq::sockopt::unsubscribe, s.topic);
                s.sub->set(zmq::sockopt::subscribe, topic);
                s.topic = topic;
              }
              break;
            }
            case wire::DaemonBody::Ack:
              if (!s.confirmed && std::ranges::find(s.confirm_pongs, msg->body_as_Ack()->pong_seq()) !=
                                      s.confirm_pongs.end()) {
                s.confirmed = true;
                ++confirmed;
                last_confirm_ns = now_ns();
              }
              break;
            case wire::DaemonBody::Rejected:
              ++rejected;
              if (msg->body_as_Rejected()->reattach()) send_attach(s);
              break;
            default:
              if (s.direct) on_published(s, msg, !s.confirmed);
              break;
          }
        }
      }
      if (s.sub && (items[2 * i].revents & ZMQ_POLLIN)) {
        for (;;) {
          zmq::message_t topic, payload;
          if (!s.sub->recv(topic, zmq::recv_flags::dontwait)) break;
          if (!topic.more()) continue;
          (void)s.sub->recv(payload, zmq::recv_flags::none);
          while (payload.more()) (void)s.sub->recv(payload, zmq::recv_flags::none);
          auto* msg = read_daemon_message(bytes_of(payload));
          if (!msg) continue;
          on_published(s, msg, topic.size() == s.topic.size() &&
                                   std::memcmp(topic.data(), s.topic.data(), topic.size()) == 0);
        }
      }
    }
    if (!reported && go_ns && confirmed == count) {
      reported = true;
      std::cout << fmt::format("settled {} {} {}", confirmed, go_ns, last_confirm_ns) << std::endl;
    }
  }
}
