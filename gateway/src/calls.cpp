// calls.cpp — node calls through the gateway: execution.start / execution.cancel on a
// WebSocket and POST /api/nodes/{name}/call both become one Execution, submitted to musterd
// through the DaemonLink; each of its events becomes an execution.updated (WebSocket) or the
// HTTP answer (REST, terminal only).
// Owns: execution ids, who may see and cancel an execution (the socket that started it).
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/gateway/call_errors.hpp"
#include "muster/gateway/envelope.hpp"
#include "muster/messages.hpp"

namespace muster::gateway {

namespace {
Json refusal(std::string_view error, std::string_view code, const Json& client_ref) {
  Json j = error_payload(error, code);
  if (!client_ref.is_null()) j["client_ref"] = client_ref;
  return j;
}
}  // namespace

std::uint64_t Gateway::begin_call(CallRequest request, Execution ex, const std::string& user, Role role) {
  std::uint64_t id = ++next_execution_;
  OnBehalfOf as{user, ex.workspace, std::string(role_name(role))};
  ex.state.execution_id = id;
  ex.state.node = request.node;
  ex.state.client_ref = request.client_ref;
  ex.state.started_at = unix_now();
  ex.started = std::chrono::steady_clock::now();
  executions_.emplace(id, std::move(ex));
  calls_->submit(id, std::move(request), std::move(as));
  return id;
}

void Gateway::start_execution(WsPeer& peer, const Json& payload) {
  Json client_ref = payload.is_object() && payload.contains("client_ref") ? payload["client_ref"] : Json();
  if (!role_allows(peer.role, Role::Call))
    return send_to(peer, "error",
                   refusal(fmt::format("user '{}' has role '{}': calls need role call or admin", peer.user, role_name(peer.role)),
                           codes::kPermissionDenied, client_ref));
  auto parsed = parse_execution_start(payload, file_refs_of(peer.user));
  if (auto* why = std::get_if<std::string>(&parsed))
    return send_to(peer, "error", refusal(fmt::format("execution.start: {}", *why), codes::kInvalidRequest, client_ref));
  if (peer.executions.size() >= opt_.max_executions_per_socket)
    return send_to(peer, "error",
                   refusal(fmt::format("{} executions are open on this connection (--max-executions-per-socket)",
                                       peer.executions.size()),
                           codes::kTooManyExecutions, client_ref));
  if (have_snapshot_ && !last_.up)
    return send_to(peer, "error", refusal(fmt::format("musterd is unreachable: {}", last_.error), codes::kUnavailable, client_ref));
  Execution ex;
  ex.workspace = peer.workspace;
  ex.peer = peer.weak_from_this();
  auto id = begin_call(std::move(std::get<CallRequest>(parsed)), std::move(ex), peer.user, peer.role);
  peer.executions.insert(id);
  send_execution(peer, executions_.at(id).state);
}

InputsRewriter Gateway::file_refs_of(const std::string& user) const {
  return [this, user](Json& inputs, std::vector<FileInput>& streamed) {
    return uploads_->resolve_file_refs(inputs, user, &streamed);
  };
}

void Gateway::cancel_execution(WsPeer& peer, const Json& payload) {
  auto parsed = parse_execution_cancel(payload);
  if (auto* why = std::get_if<std::string>(&parsed))
    return send_to(peer, "error", error_payload(fmt::format("execution.cancel: {}", *why), codes::kInvalidRequest));
  auto id = std::get<std::uint64_t>(parsed);
  if (!peer.executions.contains(id))
    return send_to(peer, "error",
                   error_payload(fmt::format("no open execution {} on this connection", id), codes::kNotFound));
  calls_->cancel(id);  // the terminal execution.updated (cancelled) follows from musterd
}

void Gateway::send_execution(WsPeer& peer, const ExecutionState& s) {
  metrics_.messages_sent(1);
  out_.clear();
  append_execution_updated(out_, s, unix_now());
  peer.send(out_);
}

void Gateway::on_call_event(CallEvent ev) {
  auto it = executions_.find(ev.call_id);
  if (it == executions_.end()) return;
  auto& ex = it->second;
  auto& s = ex.state;
  bool terminal = false;
  if (auto* p = std::get_if<ProgressEvent>(&ev.body)) {
    s.status = "running";
    s.step = p->step;
    s.total = p->total;
    s.message = p->message;
  } else if (auto* r = std::get_if<ResultEvent>(&ev.body)) {
    terminal = true;
    s.status = "completed";
    s.outputs = to_json(r->outputs);
    ++completed_;
    ++workspace(ex.workspace).completed;
  } else {
    auto& f = std::get<FailureEvent>(ev.body);
    terminal = true;
    s.status = std::string(execution_status_for(f.code));
    s.error_code = std::string(error_code_name(f.code));
    s.error_message = f.message;
    auto& ws = workspace(ex.workspace);
    (f.code == wire::ErrorCode::Cancelled ? cancelled_ : failed_)++;
    (f.code == wire::ErrorCode::Cancelled ? ws.cancelled : ws.failed)++;
  }
  if (terminal) {
    s.completed_at = unix_now();
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - ex.started);
    workspace(ex.workspace).latency.add(static_cast<std::uint64_t>(took.count()));
    metrics_.call(s.status, static_cast<double>(took.count()) / 1e6);
  }
  if (ex.rest) {
    if (terminal) {
      Request shape;
      if (s.status == "completed") {
        ex.rest(json_response(shape, http::status::ok, Json{{"outputs", std::move(s.outputs)}, {"execution_id", s.execution_id}}));
      } else {
        auto code = error_code_from_name(s.error_code).value_or(wire::ErrorCode::Internal);
        ex.rest(json_response(shape, static_cast<http::status>(http_status_for(code)),
                              Json{{"error", s.error_message}, {"code", s.error_code}, {"execution_id", s.execution_id}}));
      }
    }
  } else if (auto peer = ex.peer.lock()) {
    send_execution(*peer, s);
    if (terminal) peer->executions.erase(s.execution_id);
  }
  if (terminal) executions_.erase(it);
}

}  // namespace muster::gateway
