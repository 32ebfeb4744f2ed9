// json_text.cpp — see json_text.hpp.
#include "muster/gateway/json_text.hpp"

#include <charconv>

namespace muster::gateway {

namespace {
// Printable ASCII but the two characters JSON escapes: the bytes nlohmann copies unchanged.
bool plain(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

template <class Int>
void append_integer(std::string& out, Int v) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, end);
}

void nlohmann_dump(std::string& out, const Json& j) {
  nlohmann::detail::serializer<Json> s(nlohmann::detail::output_adapter<char, std::string>(out), ' ',
                                       Json::error_handler_t::replace);
  s.dump(j, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
}
}  // namespace

void append_json(std::string& out, const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: out += "null"; return;
    case Json::value_t::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case Json::value_t::number_integer: return append_integer(out, j.get<std::int64_t>());
    case Json::value_t::number_unsigned: return append_integer(out, j.get<std::uint64_t>());
    case Json::value_t::string: return append_json_string(out, j.get_ref<const std::string&>());
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (auto& [key, value] : j.items()) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_json(out, value);
      }
      out += '}';
      return;
    }
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (auto& value : j) {
        if (!first) out += ',';
        first = false;
        append_json(out, value);
      }
      out += ']';
      return;
    }
    default: return nlohmann_dump(out, j);  // floats, binary
  }
}

void append_json_string(std::string& out, std::string_view s) {
  if (!plain(s)) return nlohmann_dump(out, Json(s));
  out += '"';
  out.append(s);
  out += '"';
}

void append_json_integer(std::string& out, std::uint64_t v) { append_integer(out, v); }
void append_json_integer(std::string& out, std::int64_t v) { append_integer(out, v); }

}  // namespace muster::gateway
