// envelope.cpp — see envelope.hpp.
#include "muster/gateway/envelope.hpp"

#include <chrono>

#include <fmt/format.h>

#include "muster/gateway/json_text.hpp"

namespace muster::gateway {

std::variant<Envelope, ProtocolError> parse_envelope(std::string_view text) {
  if (json_too_deep(text))
    return ProtocolError{fmt::format("message nests deeper than {} levels", kMaxJsonDepth),
                         std::string(codes::kInvalidMessage)};
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ProtocolError{"message is not valid JSON", std::string(codes::kInvalidMessage)};
  if (!j.is_object())
    return ProtocolError{"message must be a JSON object {type, payload, timestamp}",
                         std::string(codes::kInvalidMessage)};
  auto type = j.find("type");
  if (type == j.end() || !type->is_string() || type->get_ref<const std::string&>().empty())
    return ProtocolError{"message needs a non-empty string 'type'", std::string(codes::kInvalidMessage)};
  Envelope env;
  env.type = type->get<std::string>();
  if (env.type.size() > 128) return ProtocolError{"message 'type' is longer than 128 characters",
                                                  std::string(codes::kInvalidMessage)};
  if (auto p = j.find("payload"); p != j.end()) env.payload = std::move(*p);
  if (auto ts = j.find("timestamp"); ts != j.end() && !ts->is_null()) {
    if (!ts->is_number_integer() && !ts->is_number_unsigned())
      return ProtocolError{"message 'timestamp' must be an integer (unix seconds)",
                           std::string(codes::kInvalidMessage)};
    env.timestamp = ts->is_number_unsigned() ? static_cast<std::int64_t>(ts->get<std::uint64_t>() & INT64_MAX)
                                             : ts->get<std::int64_t>();
  }
  return env;
}

std::string make_message(std::string_view type, const Json& payload, std::int64_t unix_seconds) {
  std::string out;
  append_message(out, type, payload, unix_seconds);
  return out;
}

void append_message(std::string& out, std::string_view type, const Json& payload, std::int64_t unix_seconds) {
  // The same bytes as dumping {"type", "payload", "timestamp"}, without copying the payload into
  // a new object first (one message per call event: it counts).
  out += "{\"type\":";
  append_json_string(out, type);
  out += ",\"payload\":";
  append_json(out, payload);
  out += ",\"timestamp\":";
  append_json_integer(out, unix_seconds);
  out += '}';
}

Json error_payload(std::string_view error, std::string_view code) {
  return Json{{"error", error}, {"code", code}};
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace muster::gateway
