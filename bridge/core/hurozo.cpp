// hurozo.cpp — see hurozo.hpp.
#include "muster/bridge/hurozo.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "muster/bridge/ws_token.hpp"

namespace muster::bridge {

namespace {

Json parse_object(std::string_view text) {
  Json j = parse_json(text);
  return j.is_object() ? j : Json();
}

// Why parse_json discarded `text`, for the log.
std::string not_json(std::string_view text) {
  return json_too_deep(text) ? fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth) : "not JSON";
}

// nullopt if `j` is not an array of non-empty strings; duplicates dropped.
std::optional<std::vector<std::string>> string_list(const Json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (auto& e : j) {
    if (!e.is_string() || e.get_ref<const std::string&>().empty()) return std::nullopt;
    const auto& s = e.get_ref<const std::string&>();
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

Json string_array(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (auto& s : v) a.push_back(s);
  return a;
}

std::optional<std::string> uuid_of(const Json& j) {
  auto it = j.find("uuid");
  if (it == j.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return it->dump();
  return std::nullopt;
}

}  // namespace

Json parse_json(std::string_view text) {
  if (json_too_deep(text)) return Json(Json::value_t::discarded);
  return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

std::variant<RegisterRequest, ApiError> parse_register_request(std::string_view body) {
  Json j = parse_object(body);
  RegisterRequest r;
  auto name = j.is_object() ? j.find("name") : j.end();
  if (!j.is_object() || name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
      name->get_ref<const std::string&>().find('/') != std::string::npos)
    return ApiError{400, std::string(kMissingOrInvalidName)};
  r.name = name->get<std::string>();
  auto outputs = j.find("outputs");
  if (outputs == j.end() || outputs->is_null() || (outputs->is_array() && outputs->empty()))
    return ApiError{400, std::string(kAtLeastOneOutput)};
  auto outs = string_list(*outputs);
  if (!outs) return ApiError{400, std::string(kInvalidOutputs)};
  r.outputs = std::move(*outs);
  auto inputs = j.find("inputs");
  if (inputs != j.end() && !inputs->is_null()) {
    auto ins = string_list(*inputs);
    if (!ins) return ApiError{400, std::string(kInvalidInputs)};
    r.inputs = std::move(*ins);
  }
  return r;
}

std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

Json error_body(std::string_view message) { return Json{{"error", std::string(message)}}; }

Json register_response(const Registration& r, const std::string& websocket_url, const std::string& token) {
  return Json{{"status", "registered"},
              {"websocket_url", websocket_url},
              {"token", token},
              {"inputs", string_array(r.inputs)},
              {"outputs", string_array(r.outputs)}};
}

Json list_response(const std::vector<Registration>& regs) {
  Json nodes = Json::array();
  for (auto& r : regs)
    nodes.push_back(Json{{"name", r.name}, {"inputs", string_array(r.inputs)}, {"outputs", string_array(r.outputs)}});
  return Json{{"nodes", nodes}};
}

Json register_payload(const RegisterRequest& r) {
  return Json{{"name", r.name}, {"inputs", string_array(r.inputs)}, {"outputs", string_array(r.outputs)}};
}

Json event_message(const RemoteEvent& e) {
  return Json{{"node", e.node}, {"inputs", e.inputs.is_object() ? e.inputs : Json::object()}, {"uuid", e.uuid}};
}

Json reply_message(const RemoteReply& r) {
  return Json{{"node", r.node}, {"outputs", r.outputs.is_object() ? r.outputs : Json::object()}, {"uuid", r.uuid}};
}

std::variant<RemoteEvent, std::string> parse_event(std::string_view text) {
  Json j = parse_json(text);
  if (j.is_discarded()) return not_json(text);
  if (!j.is_object()) return std::string("not a JSON object");
  auto node = j.find("node");
  if (node == j.end() || !node->is_string()) return std::string("no string \"node\"");
  auto uuid = uuid_of(j);
  if (!uuid) return std::string("no \"uuid\"");
  RemoteEvent e;
  e.node = node->get<std::string>();
  e.uuid = std::move(*uuid);
  auto inputs = j.find("inputs");
  e.inputs = (inputs != j.end() && inputs->is_object()) ? *inputs : Json::object();
  return e;
}

std::variant<RemoteReply, std::string> parse_reply(std::string_view text) {
  Json j = parse_json(text);
  if (j.is_discarded()) return not_json(text);
  if (!j.is_object()) return std::string("not a JSON object");
  auto uuid = uuid_of(j);
  if (!uuid) return std::string("no \"uuid\"");
  RemoteReply r;
  r.uuid = std::move(*uuid);
  if (auto node = j.find("node"); node != j.end() && node->is_string()) r.node = node->get<std::string>();
  if (auto out = j.find("outputs"); out != j.end() && out->is_object()) r.outputs = *out;
  return r;
}

Map outputs_from_reply(const std::vector<std::string>& registered, const Json& outputs,
                       std::vector<std::string>* missing) {
  Map out;
  out.reserve(registered.size());
  for (auto& name : registered) {
    const Json* v = nullptr;
    if (outputs.is_object())
      if (auto it = outputs.find(name); it != outputs.end()) v = &*it;
    if (!v) {
      if (missing) missing->push_back(name);
      out.set(name, Value());
      continue;
    }
    try {
      out.set(name, from_json(*v));
    } catch (const std::exception&) {
      out.set(name, Value(v->dump()));
    }
  }
  return out;
}

Json outputs_for_reply(const std::vector<std::string>& registered, const Map& outputs) {
  Json out = Json::object();
  for (auto& name : registered) {
    const Value* v = outputs.find(name);
    out[name] = v ? to_json(*v) : Json();
  }
  return out;
}

Json null_outputs(const std::vector<std::string>& registered) {
  Json out = Json::object();
  for (auto& name : registered) out[name] = nullptr;
  return out;
}

Json inputs_for_event(const std::vector<std::string>& registered, const Map& inputs) {
  Json out = Json::object();
  for (auto& name : registered) {
    const Value* v = inputs.find(name);
    out[name] = v ? to_json(*v) : Json();
  }
  for (auto& [key, value] : inputs)
    if (!out.contains(key)) out[key] = to_json(value);
  return out;
}

std::string new_uuid() {
  std::string b = random_bytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string h;
  for (unsigned char c : b) h += fmt::format("{:02x}", c);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

bool glob_match(std::string_view p, std::string_view t) {
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace muster::bridge
