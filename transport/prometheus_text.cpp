// prometheus_text.cpp — see prometheus_text.hpp.
#include "muster/prometheus_text.hpp"

#include <cmath>

#include <fmt/format.h>

namespace muster {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

// HELP text escapes backslash and newline only.
std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void PrometheusText::series(std::string_view name, std::string_view suffix,
                            std::initializer_list<Label> labels, std::string_view extra_key,
                            std::string_view extra_value) {
  out_ += name;
  out_ += suffix;
  if (labels.size() == 0 && extra_key.empty()) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  auto put = [&](std::string_view k, std::string_view v) {
    if (!first) out_ += ',';
    first = false;
    out_ += k;
    out_ += "=\"";
    out_ += escape_label_value(v);
    out_ += '"';
  };
  for (auto& [k, v] : labels) put(k, v);
  if (!extra_key.empty()) put(extra_key, extra_value);
  out_ += "} ";
}

void PrometheusText::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  series(name, "", labels);
  out_ += number(value);
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, std::initializer_list<Label> labels,
                            std::uint64_t value) {
  series(name, "", labels);
  out_ += fmt::format("{}\n", value);
}

void PrometheusText::histogram(std::string_view name, std::initializer_list<Label> labels,
                               std::span<const double> bounds, std::span<const std::uint64_t> counts,
                               double sum) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    series(name, "_bucket", labels, "le", number(bounds[i]));
    out_ += fmt::format("{}\n", cumulative);
  }
  for (std::size_t i = bounds.size(); i < counts.size(); ++i) cumulative += counts[i];
  series(name, "_bucket", labels, "le", "+Inf");
  out_ += fmt::format("{}\n", cumulative);
  series(name, "_sum", labels);
  out_ += number(sum) + "\n";
  series(name, "_count", labels);
  out_ += fmt::format("{}\n", cumulative);
}

}  // namespace muster
