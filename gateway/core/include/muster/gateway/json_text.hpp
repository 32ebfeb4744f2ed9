// json_text.hpp — JSON text appended to a caller's (reused) string: the hot messages
// (execution.updated, every envelope) are written without building a Json tree first or
// allocating a new string per message.
// Owns: the exact bytes of the gateway's JSON output, which are nlohmann's dump(-1, ' ',
// ensure_ascii=false, error_handler_t::replace): strings of printable ASCII are copied as they
// are, every other string (escapes, UTF-8, invalid bytes) goes through nlohmann's serializer.
// Must never: produce bytes that differ from that dump (tests/unit/gateway_json_text.cpp
// checks them against it and against nlohmann's parser).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "muster/value_json.hpp"

namespace muster::gateway {

// `s` as a JSON string literal (with its quotes).
void append_json_string(std::string& out, std::string_view s);
// Any JSON value, as Json::dump would write it.
void append_json(std::string& out, const Json& j);
void append_json_integer(std::string& out, std::uint64_t v);
void append_json_integer(std::string& out, std::int64_t v);

}  // namespace muster::gateway
