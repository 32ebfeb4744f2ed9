// executions.cpp — see executions.hpp.
#include "muster/gateway/executions.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "muster/gateway/json_text.hpp"
#include "muster/node_spec.hpp"

namespace muster::gateway {

namespace {
// inputs / parameters: a JSON object mapped one to one onto a muster Map.
std::optional<std::string> read_map(const Json& obj, const char* key, Map& out, const InputsRewriter& rewrite = {},
                                    std::vector<FileInput>* streamed = nullptr) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return fmt::format("'{}' must be an object", key);
  try {
    Json copy;
    if (rewrite) {
      copy = *it;
      if (auto err = rewrite(copy, *streamed)) return fmt::format("'{}': {}", key, *err);
    }
    Value v = from_json(rewrite ? copy : *it);
    out = v.as_map();
  } catch (const std::exception& e) {
    return fmt::format("'{}': {}", key, e.what());
  }
  return std::nullopt;
}

std::optional<std::string> read_call_fields(const Json& obj, CallRequest& r, const InputsRewriter& rewrite) {
  if (auto err = read_map(obj, "inputs", r.inputs, rewrite, &r.file_inputs)) return err;
  if (auto err = read_map(obj, "parameters", r.parameters)) return err;
  if (auto it = obj.find("timeout_ms"); it != obj.end() && !it->is_null()) {
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
      return std::string("'timeout_ms' must be a non-negative integer");
    r.timeout_ms = it->get<std::uint64_t>();
  }
  return std::nullopt;
}
}  // namespace

std::variant<CallRequest, std::string> parse_execution_start(const Json& payload, const InputsRewriter& rewrite) {
  if (!payload.is_object()) return std::string("payload must be an object {node, inputs, parameters, timeout_ms, client_ref}");
  CallRequest r;
  if (auto it = payload.find("client_ref"); it != payload.end()) r.client_ref = *it;
  auto node = payload.find("node");
  if (node == payload.end() || !node->is_string()) return std::string("'node' must be a string");
  r.node = node->get<std::string>();
  if (!valid_node_name(r.node)) return fmt::format("'{}' is not a valid node name", r.node);
  if (auto err = read_call_fields(payload, r, rewrite)) return *err;
  return r;
}

std::variant<CallRequest, std::string> parse_rest_call(const std::string& node, std::string_view body,
                                                       const InputsRewriter& rewrite) {
  CallRequest r;
  r.node = node;
  if (!valid_node_name(node)) return fmt::format("'{}' is not a valid node name", node);
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;
  if (json_too_deep(body)) return fmt::format("the body nests deeper than {} levels", kMaxJsonDepth);
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::string("the body is not valid JSON");
  if (!j.is_object()) return std::string("the body must be an object {inputs, parameters, timeout_ms}");
  for (auto& [k, v] : j.items())
    if (k != "inputs" && k != "parameters" && k != "timeout_ms")
      return fmt::format("unknown field '{}' (expected inputs, parameters, timeout_ms)", k);
  if (auto err = read_call_fields(j, r, rewrite)) return *err;
  return r;
}

std::variant<std::uint64_t, std::string> parse_execution_cancel(const Json& payload) {
  if (!payload.is_object()) return std::string("payload must be an object {execution_id}");
  auto it = payload.find("execution_id");
  if (it == payload.end() || !it->is_number_unsigned()) return std::string("'execution_id' must be a positive integer");
  return it->get<std::uint64_t>();
}

Json execution_payload(ExecutionState& s, bool take_outputs) {
  Json j = Json::object();
  j["execution_id"] = s.execution_id;
  j["node"] = s.node;
  j["client_ref"] = s.client_ref;
  j["status"] = s.status;
  j["progress"] = Json{{"step", s.step}, {"total", s.total}, {"message", s.message}};
  j["outputs"] = take_outputs ? std::move(s.outputs) : s.outputs;
  j["error"] = s.error_code.empty() ? Json(nullptr) : Json{{"code", s.error_code}, {"message", s.error_message}};
  j["started_at"] = s.started_at;
  j["completed_at"] = s.completed_at ? Json(s.completed_at) : Json(nullptr);
  return j;
}

void append_execution_updated(std::string& out, const ExecutionState& s, std::int64_t unix_seconds) {
  out += R"({"type":"execution.updated","payload":{"execution_id":)";
  append_json_integer(out, s.execution_id);
  out += R"(,"node":)";
  append_json_string(out, s.node);
  out += R"(,"client_ref":)";
  append_json(out, s.client_ref);
  out += R"(,"status":)";
  append_json_string(out, s.status);
  out += R"(,"progress":{"step":)";
  append_json_integer(out, s.step);
  out += R"(,"total":)";
  append_json_integer(out, s.total);
  out += R"(,"message":)";
  append_json_string(out, s.message);
  out += R"(},"outputs":)";
  append_json(out, s.outputs);
  out += R"(,"error":)";
  if (s.error_code.empty()) {
    out += "null";
  } else {
    out += R"({"code":)";
    append_json_string(out, s.error_code);
    out += R"(,"message":)";
    append_json_string(out, s.error_message);
    out += '}';
  }
  out += R"(,"started_at":)";
  append_json_integer(out, s.started_at);
  out += R"(,"completed_at":)";
  if (s.completed_at)
    append_json_integer(out, s.completed_at);
  else
    out += "null";
  out += R"(},"timestamp":)";
  append_json_integer(out, unix_seconds);
  out += '}';
}

void LatencyWindow::add(std::uint64_t micros) {
  ++count_;
  window_.push_back(micros);
  if (window_.size() > capacity_) window_.pop_front();
}

Json LatencyWindow::summary() const {
  std::vector<std::uint64_t> v(window_.begin(), window_.end());
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) -> std::uint64_t {  // nearest rank
    if (v.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
  };
  return Json{{"count", count_}, {"p50_us", pct(0.50)}, {"p90_us", pct(0.90)}, {"p99_us", pct(0.99)}};
}

}  // namespace muster::gateway
