// daemon.cpp — musterd's socket loop. See daemon.hpp.
#include "daemon.hpp"

#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "muster/endpoints.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/runtime_dir.hpp"

namespace muster::broker {

namespace {

std::string random_instance() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  return fmt::format("{:016x}", dist(rd));
}

std::string topic_of(const std::string& worker_id) { return "w:" + worker_id + ":"; }
constexpr std::string_view kBroadcastTopic = "b:";

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// Names the kind of a buffer that is not what the socket expects, for a clearer error.
std::string describe_wrong_buffer(std::span<const std::uint8_t> b, std::string_view expected) {
  if (b.size() < 8) return fmt::format("{} bytes is too short for a {}", b.size(), expected);
  std::string_view id(reinterpret_cast<const char*>(b.data() + 4), 4);
  for (auto [ident, name] : {std::pair{"MSWK", "WorkerMessage"}, {"MSDM", "DaemonMessage"},
                             {"MSCL", "ClientMessage"}, {"MSCR", "ClientReply"},
                             {"MSEQ", "EnrollRequest"}, {"MSER", "EnrollResponse"},
                             {"MSVL", "Values"}})
    if (id == ident) {
      if (name == expected) return fmt::format("a {} that fails verification", expected);
      return fmt::format("a {} was sent where a {} was expected", name, expected);
    }
  return fmt::format("not a {} (file identifier missing or unknown)", expected);
}

// A zmq message that owns a finished FlatBuffer without copying it.
zmq::message_t to_message(flatbuffers::FlatBufferBuilder& fbb) {
  auto* detached = new flatbuffers::DetachedBuffer(fbb.Release());
  return zmq::message_t(
      detached->data(), detached->size(),
      [](void*, void* hint) { delete static_cast<flatbuffers::DetachedBuffer*>(hint); }, detached);
}

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> payload_vector(
    flatbuffers::FlatBufferBuilder& fbb, const Payload& p) {
  if (p.bytes.empty()) return 0;
  fbb.ForceVectorAlignment(p.bytes.size(), 1, 8);  // a nested buffer needs 8-byte alignment
  return fbb.CreateVector(p.bytes.data(), p.bytes.size());
}

}  // namespace

struct Daemon::Impl {
  DaemonOptions opt;
  zmq::context_t ctx{1};
  zmq::socket_t request{ctx, zmq::socket_type::pub};
  zmq::socket_t response{ctx, zmq::socket_type::router};
  zmq::socket_t client{ctx, zmq::socket_type::router};
  BrokerCore core;
  CallerResolver resolve_caller = [](const Peer&) { return Caller{}; };
  std::uint64_t unroutable = 0;

  explicit Impl(DaemonOptions o)
      : opt(std::move(o)), core(opt.core, Clock::now()) {}

  void setup() {
    for (auto* ep : {&opt.request_address, &opt.response_address, &opt.client_address})
      check_endpoint(*ep, /*curve=*/false, opt.insecure);
    auto max_frame = static_cast<std::int64_t>(opt.max_message_bytes * 2);
    for (auto* s : {&request, &response, &client}) {
      s->set(zmq::sockopt::linger, 2000);
      s->set(zmq::sockopt::sndhwm, 100000);
      s->set(zmq::sockopt::rcvhwm, 100000);
      s->set(zmq::sockopt::maxmsgsize, max_frame);
    }
    response.set(zmq::sockopt::router_mandatory, 1);
    client.set(zmq::sockopt::router_mandatory, 1);
    bind(request, opt.request_address, "request");
    bind(response, opt.response_address, "response");
    bind(client, opt.client_address, "client");
  }

  static void bind(zmq::socket_t& s, const std::string& ep, std::string_view what) {
    prepare_ipc_bind(ep);
    try {
      s.bind(ep);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error(fmt::format("cannot bind the {} socket on {}: {}", what, ep, e.what()));
    }
    spdlog::info("{} socket on {}", what, ep);
  }

  // ---- inbound -----------------------------------------------------------------------

  void on_worker_message(RouterMessage& m) {
    auto now = Clock::now();
    if (m.frame_count < 2) return;  // nothing to answer with
    if (!m.well_formed)
      return core.on_bad_worker_message(
          m.peer, fmt::format("expected one payload frame (after an optional empty delimiter), "
                              "got {} frames",
                              m.frame_count - 1));
    if (m.payload.size() > opt.max_message_bytes)
      return core.on_bad_worker_message(
          m.peer, fmt::format("message of {} bytes exceeds the limit of {} bytes",
                              m.payload.size(), opt.max_message_bytes));
    auto owner = std::make_shared<zmq::message_t>(std::move(m.payload));
    auto bytes = bytes_of(*owner);
    const wire::WorkerMessage* msg = read_worker_message(bytes);
    if (!msg) return core.on_bad_worker_message(m.peer, describe_wrong_buffer(bytes, "WorkerMessage"));
    Caller who = resolve_caller(m.peer);
    std::string worker_id = str(msg->worker_id());
    using wire::WorkerBody;
    switch (msg->body_type()) {
      case WorkerBody::Attach: {
        auto* a = msg->body_as_Attach();
        AttachEvent ev;
        ev.worker_id = str(a->worker_id());
        ev.hostname = str(a->hostname());
        ev.sdk = str(a->sdk());
        ev.pid = a->pid();
        ev.session = str(a->session());
        ev.capacity = a->capacity();
        if (auto* nodes = a->nodes())
          for (auto* n : *nodes) ev.nodes.push_back(decode_node_spec(n));
        return core.on_attach(now, m.peer, who, std::move(ev));
      }
      case WorkerBody::Pong: {
        auto* p = msg->body_as_Pong();
        std::vector<std::uint64_t> in_flight;
        if (auto* v = p->in_flight()) in_flight.assign(v->begin(), v->end());
        return core.on_pong(now, m.peer, who, worker_id, p->seq(), str(p->instance()), in_flight);
      }
      case WorkerBody::Progress: {
        auto* p = msg->body_as_Progress();
        return core.on_progress(now, m.peer, who, worker_id, p->request_id(), p->step(),
                                p->total(), str(p->message()));
      }
      case WorkerBody::Result: {
        auto* r = msg->body_as_Result();
        Payload outputs{owner, payload_bytes(r->outputs())};
        return core.on_result(now, m.peer, who, worker_id, r->request_id(), std::move(outputs));
      }
      case WorkerBody::Failure: {
        auto* f = msg->body_as_Failure();
        return core.on_failure(now, m.peer, who, worker_id, f->request_id(), f->code(),
                               str(f->message()));
      }
      case WorkerBody::Detach:
        return core.on_detach(now, m.peer, who, worker_id);
      default:
        return core.on_bad_worker_message(m.peer, "WorkerMessage without a known body");
    }
  }

  void on_client_message(RouterMessage& m) {
    auto now = Clock::now();
    if (m.frame_count < 2) return;
    if (!m.well_formed)
      return core.on_bad_client_message(
          m.peer, 0,
          fmt::format("expected one payload frame (after an optional empty delimiter), got {} frames",
                      m.frame_count - 1));
    if (m.payload.size() > opt.max_message_bytes)
      return core.on_bad_client_message(
          m.peer, 0,
          fmt::format("message of {} bytes exceeds the limit of {} bytes", m.payload.size(),
                      opt.max_message_bytes));
    auto owner = std::make_shared<zmq::message_t>(std::move(m.payload));
    auto bytes = bytes_of(*owner);
    const wire::ClientMessage* msg = read_client_message(bytes);
    if (!msg)
      return core.on_bad_client_message(m.peer, 0, describe_wrong_buffer(bytes, "ClientMessage"));
    Caller who = resolve_caller(m.peer);
    auto rid = msg->request_id();
    using wire::ClientBody;
    switch (msg->body_type()) {
      case ClientBody::Submit: {
        auto* s = msg->body_as_Submit();
        SubmitEvent ev;
        ev.client_request_id = rid;
        ev.node = str(s->node());
        ev.inputs = Payload{owner, payload_bytes(s->inputs())};
        ev.parameters = Payload{owner, payload_bytes(s->parameters())};
        ev.timeout_ms = s->timeout_ms();
        ev.want_progress = s->want_progress();
        ev.want_accepted = s->want_accepted();
        ev.trace_id = str(s->trace_id());
        return core.on_submit(now, m.peer, who, std::move(ev));
      }
      case ClientBody::Cancel: return core.on_cancel(now, m.peer, rid);
      case ClientBody::ListNodes: return send_node_list(m.peer, rid, who);
      case ClientBody::ListWorkers: return send_worker_list(m.peer, rid, who, now);
      case ClientBody::GetStatus: return send_status(m.peer, rid, now);
      default:
        return core.on_bad_client_message(m.peer, rid, "ClientMessage without a known body");
    }
  }

  // ---- queries (answered directly, they change nothing) ----------------------------------

  std::string visible_workspace(const Caller& who) const {
    return who.role == "admin" && who.identity == "local" ? std::string() : who.workspace;
  }

  void send_reply(const Peer& peer, std::uint64_t rid, flatbuffers::FlatBufferBuilder& fbb,
                  wire::ReplyBody type, flatbuffers::Offset<void> body) {
    wire::ClientReplyBuilder b(fbb);
    b.add_request_id(rid);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::ClientReplyIdentifier());
    if (!send_router(client, peer, to_message(fbb))) {
      ++unroutable;
      spdlog::warn("reply {} to a client that is gone (or not reading) was dropped", rid);
    }
  }

  void send_node_list(const Peer& peer, std::uint64_t rid, const Caller& who) {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<wire::NodeInfo>> infos;
    for (auto& n : core.list_nodes(visible_workspace(who))) {
      auto spec = encode_node_spec(fbb, n.spec);
      auto ws = fbb.CreateString(n.workspace);
      wire::NodeInfoBuilder b(fbb);
      b.add_spec(spec);
      b.add_workspace(ws);
      b.add_workers(n.workers);
      b.add_capacity(n.capacity);
      b.add_in_flight(n.in_flight);
      b.add_queue_depth(n.queue_depth);
      infos.push_back(b.Finish());
    }
    auto list = wire::CreateNodeListDirect(fbb, &infos);
    send_reply(peer, rid, fbb, wire::ReplyBody::NodeList, list.Union());
  }

  void send_worker_list(const Peer& peer, std::uint64_t rid, const Caller& who, TimePoint now) {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<wire::WorkerInfo>> infos;
    for (auto& w : core.list_workers(now, visible_workspace(who))) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> nodes;
      for (auto& n : w.nodes) nodes.push_back(fbb.CreateString(n));
      infos.push_back(wire::CreateWorkerInfoDirect(
          fbb, w.worker_id.c_str(), w.hostname.c_str(), w.sdk.c_str(), w.pid, w.state.c_str(),
          w.capacity, w.in_flight, &nodes, w.workspace.c_str(), w.identity.c_str(), w.attached_ms,
          w.last_seen_ms));
    }
    auto list = wire::CreateWorkerListDirect(fbb, &infos);
    send_reply(peer, rid, fbb, wire::ReplyBody::WorkerList, list.Union());
  }

  void send_status(const Peer& peer, std::uint64_t rid, TimePoint now) {
    auto s = core.status(now);
    flatbuffers::FlatBufferBuilder fbb(512);
    std::vector<flatbuffers::Offset<wire::CodeCount>> failures;
    for (std::size_t i = 1; i < s.failures_by_code.size(); ++i)
      if (s.failures_by_code[i])
        failures.push_back(wire::CreateCodeCount(fbb, static_cast<wire::ErrorCode>(i), s.failures_by_code[i]));
    auto report = wire::CreateStatusReportDirect(
        fbb, MUSTER_DAEMON_VERSION, core.config().instance.c_str(), s.uptime_ms, s.workers,
        s.nodes, s.queued, s.in_flight, s.submitted, s.completed, s.failed, &failures,
        s.redispatched, s.rate_1m);
    send_reply(peer, rid, fbb, wire::ReplyBody::StatusReport, report.Union());
  }

  // ---- outbound ---------------------------------------------------------------------------

  void publish(const std::string& topic, flatbuffers::FlatBufferBuilder& fbb,
               wire::DaemonBody type, flatbuffers::Offset<void> body) {
    wire::DaemonMessageBuilder b(fbb);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::DaemonMessageIdentifier());
    request.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    request.send(to_message(fbb), zmq::send_flags::none);
  }

  void reply_to_worker(const ReplyToWorker& a) {
    flatbuffers::FlatBufferBuilder fbb(256);
    wire::DaemonBody type{};
    flatbuffers::Offset<void> body;
    if (auto* at = std::get_if<AttachedReply>(&a.body)) {
      type = wire::DaemonBody::Attached;
      body = wire::CreateAttachedDirect(fbb, at->worker_id.c_str(), core.config().instance.c_str(),
                                        topic_of(at->worker_id).c_str(), kBroadcastTopic.data(),
                                        static_cast<std::uint64_t>(core.config().ping_interval.count()),
                                        core.config().liveness, opt.max_message_bytes)
                 .Union();
    } else if (auto* ack = std::get_if<AckReply>(&a.body)) {
      type = wire::DaemonBody::Ack;
      body = wire::CreateAck(fbb, ack->late).Union();
    } else {
      auto& r = std::get<RejectedReply>(a.body);
      type = wire::DaemonBody::Rejected;
      body = wire::CreateRejectedDirect(fbb, r.code, r.message.c_str(), r.reattach).Union();
    }
    wire::DaemonMessageBuilder b(fbb);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::DaemonMessageIdentifier());
    if (!send_router(response, a.peer, to_message(fbb))) {
      ++unroutable;
      spdlog::debug("reply to a worker that is gone was dropped");
    }
  }

  void reply_to_client(ReplyToClient& a) {
    flatbuffers::FlatBufferBuilder fbb(256);
    wire::ReplyBody type{};
    flatbuffers::Offset<void> body;
    if (auto* acc = std::get_if<AcceptedBody>(&a.body)) {
      type = wire::ReplyBody::Accepted;
      body = wire::CreateAccepted(fbb, acc->queued).Union();
    } else if (auto* p = std::get_if<ProgressBody>(&a.body)) {
      type = wire::ReplyBody::Progress;
      body = wire::CreateProgressDirect(fbb, a.request_id, p->step, p->total, p->message.c_str()).Union();
    } else if (auto* r = std::get_if<ResultBody>(&a.body)) {
      fbb = flatbuffers::FlatBufferBuilder(r->outputs.bytes.size() + 128);
      auto outputs = payload_vector(fbb, r->outputs);
      wire::ResultBuilder rb(fbb);
      rb.add_request_id(a.request_id);
      if (!outputs.IsNull()) rb.add_outputs(outputs);
      type = wire::ReplyBody::Result;
      body = rb.Finish().Union();
    } else {
      auto& f = std::get<FailureBody>(a.body);
      type = wire::ReplyBody::Failure;
      body = wire::CreateFailureDirect(fbb, a.request_id, f.code, f.message.c_str()).Union();
    }
    send_reply(a.peer, a.request_id, fbb, type, body);
  }

  void send_work(const SendWorkRequest& a) {
    flatbuffers::FlatBufferBuilder fbb(a.inputs.bytes.size() + a.parameters.bytes.size() + 512);
    auto inputs = payload_vector(fbb, a.inputs);
    auto params = payload_vector(fbb, a.parameters);
    auto node = fbb.CreateString(a.node);
    auto caller = wire::CreateCallerContextDirect(fbb, a.caller.identity.c_str(), a.caller.name.c_str(),
                                                  a.caller.workspace.c_str(), a.caller.role.c_str(),
                                                  a.caller.trace_id.c_str());
    wire::WorkRequestBuilder b(fbb);
    b.add_request_id(a.request_id);
    b.add_node(node);
    if (!inputs.IsNull()) b.add_inputs(inputs);
    if (!params.IsNull()) b.add_parameters(params);
    b.add_timeout_ms(a.timeout_ms);
    b.add_attempt(a.attempt);
    b.add_caller(caller);
    auto body = b.Finish();
    publish(topic_of(a.worker_id), fbb, wire::DaemonBody::WorkRequest, body.Union());
  }

  void flush() {
    auto& actions = core.actions();
    for (auto& action : actions) {
      std::visit(
          [&](auto& a) {
            using T = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<T, SendWorkRequest>) {
              send_work(a);
            } else if constexpr (std::is_same_v<T, SendAbort>) {
              flatbuffers::FlatBufferBuilder fbb(128);
              auto body = wire::CreateAbortDirect(fbb, a.request_id, a.code, a.reason.c_str());
              publish(topic_of(a.worker_id), fbb, wire::DaemonBody::Abort, body.Union());
            } else if constexpr (std::is_same_v<T, SendPing>) {
              flatbuffers::FlatBufferBuilder fbb(128);
              auto body = wire::CreatePingDirect(fbb, a.seq, core.config().instance.c_str());
              publish(a.worker_id.empty() ? std::string(kBroadcastTopic) : topic_of(a.worker_id),
                      fbb, wire::DaemonBody::Ping, body.Union());
            } else if constexpr (std::is_same_v<T, ReplyToWorker>) {
              reply_to_worker(a);
            } else {
              reply_to_client(a);
            }
          },
          action);
    }
    actions.clear();
  }

  int run(SignalPipe& signals) {
    setup();
    spdlog::info("musterd {} ready (instance {}), ping every {} ms, liveness {}", MUSTER_DAEMON_VERSION,
                 core.config().instance, core.config().ping_interval.count(), core.config().liveness);
    std::vector<zmq::pollitem_t> items = {
        {response.handle(), 0, ZMQ_POLLIN, 0},
        {client.handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, signals.fd(), ZMQ_POLLIN, 0},
    };
    RouterMessage msg;
    constexpr int kBatch = 256;  // messages per socket per turn, so neither starves the other
    while (!core.finished()) {
      auto now = Clock::now();
      auto wake = core.next_wakeup();
      auto wait = wake <= now ? Millis(0)
                              : std::min(Millis(1000), std::chrono::ceil<Millis>(wake - now));
      try {
        zmq::poll(items.data(), items.size(), wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (items[2].revents & ZMQ_POLLIN) signals.drain();
      if (signals.triggered() && !core.shutting_down()) {
        spdlog::info("signal {} received: shutting down", signals.last_signal());
        core.begin_shutdown(Clock::now());
      }
      for (int i = 0; i < kBatch && recv_router(response, msg); ++i) on_worker_message(msg);
      for (int i = 0; i < kBatch && recv_router(client, msg); ++i) on_client_message(msg);
      now = Clock::now();
      if (now >= core.next_wakeup() || core.shutting_down()) core.tick(now);
      flush();
    }
    flush();
    spdlog::info("musterd stopped: every request got its terminal reply");
    return 0;
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>([&] {
  if (options.core.instance.empty() || options.core.instance == "instance")
    options.core.instance = random_instance();
  return std::move(options);
}())) {}

Daemon::~Daemon() = default;

int Daemon::run(SignalPipe& signals) { return impl_->run(signals); }

}  // namespace muster::broker
