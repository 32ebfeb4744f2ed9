// names.cpp — character rules for names and labels.
// Must never: allow '/', NUL or control characters where they could reach a path or a log.
#include "muster/names.hpp"

#include <algorithm>

namespace muster::keys {

namespace {
bool word_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}
bool word(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max || s.front() == '.' || s.front() == '-') return false;
  for (char c : s)
    if (!word_char(c)) return false;
  return true;
}
}  // namespace

bool is_valid_workspace(std::string_view s) { return word(s, 64); }

std::vector<std::string> workspace_list(std::string_view list) {
  std::vector<std::string> out;
  for (;;) {
    auto comma = list.find(',');
    auto name = list.substr(0, comma);
    if (!is_valid_workspace(name) || std::find(out.begin(), out.end(), name) != out.end() || out.size() == 64)
      return {};
    out.emplace_back(name);
    if (comma == std::string_view::npos) return out;
    list.remove_prefix(comma + 1);
  }
}

bool is_valid_label(std::string_view s) {
  if (s.size() > 128) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

bool is_valid_hostname(std::string_view s) {
  if (s.size() > 255) return false;
  for (char c : s)
    if (!word_char(c)) return false;
  return true;
}

bool is_valid_file_stem(std::string_view s) { return word(s, 64); }

}  // namespace muster::keys
