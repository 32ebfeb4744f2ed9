// prometheus_text.hpp — writes the Prometheus text exposition format (version 0.0.4), the
// format of musterd's and the gateway's /metrics.
// Owns: HELP/TYPE lines, label escaping, number formatting, histogram series (_bucket with
// cumulative counts and le="+Inf", _sum, _count).
// Must never: do I/O. It is hand-written because no Prometheus client library is packaged in
// Debian 12 (libprometheus-cpp is not), and the format is a few lines of text.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace muster {

using Label = std::pair<std::string_view, std::string_view>;

class PrometheusText {
 public:
  // The HTTP Content-Type of the format.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts a metric family: its # HELP and # TYPE lines. `type`: counter, gauge, histogram.
  // Every sample of the family must follow before the next family starts.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value);
  // One histogram series: `bounds` (ascending upper bounds, in the metric's unit) with the
  // count of observations in each bucket (not cumulative; `counts` has one more element than
  // `bounds`, for the observations above the last bound), their sum and count.
  void histogram(std::string_view name, std::initializer_list<Label> labels,
                 std::span<const double> bounds, std::span<const std::uint64_t> counts, double sum);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void series(std::string_view name, std::string_view suffix, std::initializer_list<Label> labels,
              std::string_view extra_key = {}, std::string_view extra_value = {});
  std::string out_;
};

// A label value as Prometheus writes it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

}  // namespace muster
