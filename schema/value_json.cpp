// value_json.cpp — Value <-> JSON (PROTOCOL.md §4) and base64.
#include "muster/value_json.hpp"

#include <cmath>
#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

namespace muster {

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const Bytes& b) {
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < b.size(); i += 3) {
    std::uint32_t n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i + 1 == b.size()) {
    std::uint32_t n = b[i] << 16;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == b.size()) {
    std::uint32_t n = (b[i] << 16) | (b[i + 1] << 8);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

Bytes base64_decode(std::string_view s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (s.size() % 4 != 0) throw std::invalid_argument("base64 length is not a multiple of 4");
  std::vector<std::uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    int pad = 0;
    std::uint32_t n = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i + k];
      if (c == '=') {
        if (i + 4 != s.size() || k < 2) throw std::invalid_argument("misplaced base64 padding");
        ++pad;
        n <<= 6;
        continue;
      }
      if (pad) throw std::invalid_argument("misplaced base64 padding");
      int v = val(c);
      if (v < 0) throw std::invalid_argument(fmt::format("invalid base64 character '{}'", c));
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    out.push_back(static_cast<std::uint8_t>(n >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(n >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(n));
  }
  return out;
}

bool json_too_deep(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

Json to_json(const Map& m) {
  if (m.size() == 1) {
    auto& [key, value] = *m.begin();
    if ((key == "$bytes" && value.kind() == ValueKind::String) ||
        ((key == "$error" || key == "$chunked") && value.kind() == ValueKind::Map))
      throw std::invalid_argument(fmt::format(
          "a map whose only key is \"{}\" has no JSON form (it would read back as {})", key,
          key == "$bytes" ? "bytes" : key == "$error" ? "an error" : "a chunked value"));
  }
  auto j = Json::object();
  for (auto& [k, v] : m) j[k] = to_json(v);
  return j;
}

Json to_json(const Value& v) {
  switch (v.kind()) {
    case ValueKind::Null: return nullptr;
    case ValueKind::Bool: return std::get<bool>(v.v);
    case ValueKind::Int: return std::get<std::int64_t>(v.v);
    case ValueKind::Float: {
      double d = std::get<double>(v.v);
      if (!std::isfinite(d)) throw std::invalid_argument("a non-finite float has no JSON form");
      return d;
    }
    case ValueKind::String: return std::get<std::string>(v.v);
    case ValueKind::Bytes: return {{"$bytes", base64_encode(std::get<Bytes>(v.v))}};
    case ValueKind::List: {
      auto j = Json::array();
      for (auto& item : std::get<List>(v.v)) j.push_back(to_json(item));
      return j;
    }
    case ValueKind::Map: return to_json(std::get<Map>(v.v));
    case ValueKind::Error: {
      auto& e = std::get<ErrorValue>(v.v);
      return {{"$error", {{"code", e.code}, {"message", e.message}}}};
    }
    case ValueKind::Chunked: {
      auto& c = std::get<ChunkedValue>(v.v);
      std::string hex;
      for (auto byte : c.sha256) hex += fmt::format("{:02x}", byte);
      return {{"$chunked", {{"stream", c.stream}, {"size", c.size}, {"sha256", hex}}}};
    }
  }
  throw std::logic_error("unreachable value kind");
}

namespace {
// {"stream": 1..2^32-1, "size": uint64, "sha256": 64 hex digits}; anything else is refused.
ChunkedValue chunked_from_json(const Json& j, const std::string& path) {
  auto bad = [&](std::string_view what) {
    return std::invalid_argument(fmt::format("{}: $chunked: {}", path, what));
  };
  auto stream = j.find("stream");
  auto size = j.find("size");
  auto sha = j.find("sha256");
  if (j.size() != 3 || stream == j.end() || size == j.end() || sha == j.end())
    throw bad("expected exactly stream, size and sha256");
  if (!stream->is_number_unsigned() || stream->get<std::uint64_t>() == 0 ||
      stream->get<std::uint64_t>() > UINT32_MAX)
    throw bad("stream must be an integer from 1 to 4294967295");
  if (!size->is_number_unsigned()) throw bad("size must be a non-negative integer");
  ChunkedValue c;
  c.stream = static_cast<std::uint32_t>(stream->get<std::uint64_t>());
  c.size = size->get<std::uint64_t>();
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
  };
  const std::string* hex = sha->is_string() ? &sha->get_ref<const std::string&>() : nullptr;
  if (!hex || hex->size() != 64) throw bad("sha256 must be 64 lowercase hex digits");
  for (std::size_t i = 0; i < 32; ++i) {
    int hi = nibble((*hex)[2 * i]), lo = nibble((*hex)[2 * i + 1]);
    if (hi < 0 || lo < 0) throw bad("sha256 must be 64 lowercase hex digits");
    c.sha256[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return c;
}

Value from_json_at(const Json& j, const std::string& path, std::size_t depth) {
  using T = Json::value_t;
  if ((j.is_array() || j.is_object()) && ++depth > kMaxJsonDepth)
    throw std::invalid_argument(fmt::format("{}: nested deeper than {} levels", path, kMaxJsonDepth));
  switch (j.type()) {
    case T::null: return Value();
    case T::boolean: return Value(j.get<bool>());
    case T::number_integer: return Value(static_cast<long long>(j.get<std::int64_t>()));
    case T::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<long long>(u));
    }
    case T::number_float: return Value(j.get<double>());
    case T::string: return Value(j.get<std::string>());
    case T::array: {
      List l;
      l.reserve(j.size());
      std::size_t i = 0;
      for (auto& item : j) l.push_back(from_json_at(item, fmt::format("{}[{}]", path, i++), depth));
      return Value(std::move(l));
    }
    case T::object: {
      if (j.size() == 1) {
        auto it = j.begin();
        if (it.key() == "$bytes" && it->is_string()) {
          try {
            return Value(base64_decode(it->get_ref<const std::string&>()));
          } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(fmt::format("{}: $bytes: {}", path, e.what()));
          }
        }
        if (it.key() == "$chunked" && it->is_object()) return Value(chunked_from_json(*it, path));
        if (it.key() == "$error" && it->is_object()) {
          ErrorValue e;
          if (auto c = it->find("code"); c != it->end() && c->is_string()) e.code = *c;
          if (auto m = it->find("message"); m != it->end() && m->is_string()) e.message = *m;
          return Value(std::move(e));
        }
      }
      Map m;
      m.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        m.set(it.key(), from_json_at(it.value(), path + "." + it.key(), depth));
      return Value(std::move(m));
    }
    case T::binary: {
      auto& bin = j.get_binary();
      return Value(Bytes(bin.begin(), bin.end()));
    }
    case T::discarded: break;
  }
  throw std::invalid_argument(fmt::format("{}: unsupported JSON value", path));
}
}  // namespace

Value from_json(const Json& j) { return from_json_at(j, "$", 0); }

Map map_from_json_text(std::string_view text) {
  if (json_too_deep(text))
    throw std::invalid_argument(fmt::format("invalid JSON: nested deeper than {} levels", kMaxJsonDepth));
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    throw std::invalid_argument(fmt::format("invalid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw std::invalid_argument("expected a JSON object");
  Value v = from_json(j);
  // {"$bytes": "..."} or {"$error": {...}} at the top level is a value, not a map of inputs.
  if (v.kind() != ValueKind::Map)
    throw std::invalid_argument(fmt::format("expected a JSON object of values, got a {} value",
                                            kind_name(v.kind())));
  return std::move(v.as_map());
}

}  // namespace muster
