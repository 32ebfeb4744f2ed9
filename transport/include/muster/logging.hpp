// logging.hpp — the one log setup of every muster C++ program (musterd, muster-bridge,
// muster-gateway, the example and bench workers): level, component name, and the common
// formats shared with the Python and TypeScript programs (docs/OPERATIONS.md, "Logs"):
//   text: 2026-12-06T13:27:21.123+00:00 INFO  [musterd] worker attached worker_id=w1 nodes=3
//   json: {"time":"2026-12-06T13:27:21.123+00:00","level":"info","component":"musterd",
//          "message":"worker attached","worker_id":"w1","nodes":3}
// Structured fields are written at the end of a message as key=value (key: [a-z_][a-z0-9_]*;
// value without spaces, or "quoted"); the json format lifts them into fields of their own.
// Owns: the formatters and the names of levels and formats.
// Must never: write a secret. Callers never put a token, a password or a key's secret part in
// a log message; this layer cannot tell them apart.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace muster {

enum class LogFormat { Text, Json };

// "text" or "json"; throws std::invalid_argument otherwise.
LogFormat parse_log_format(std::string_view name);
inline constexpr const char* kLogFormatHelp =
    "Log line format on stderr: text (time level [component] message key=value) or json (one "
    "object per line: time, level, component, message and the key=value fields)";

// "trace", "debug", "info", "warn", "error", "off". Logs go to stderr. Throws on a bad name.
void setup_logging(const std::string& level, const std::string& component,
                   LogFormat format = LogFormat::Text);

// A structured field's value as it goes after `key=` in a message: as is when it is a non-empty
// run without spaces, quotes or control characters, else "quoted" with each `"` turned into `'`
// and each control character into a space (so the field splits back out of the line exactly).
// For values that come from outside (node names, event ids, user names).
std::string log_value(std::string_view value);

// The formatters, for tests and for programs that make loggers of their own.
std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format);

}  // namespace muster
