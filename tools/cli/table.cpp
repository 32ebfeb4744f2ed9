// table.cpp — see table.hpp.
#include "table.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace muster::cli {

namespace {
// Display width of UTF-8 text: code points, not bytes (good enough for the names muster allows).
std::size_t width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}
}  // namespace

Table::Table(std::vector<std::string> headers) {
  for (auto& h : headers) {
    bool right = !h.empty() && h[0] == '>';
    right_.push_back(right);
    headers_.push_back(right ? h.substr(1) : h);
  }
}

Table& Table::row(std::vector<std::string> cells) {
  if (cells.size() != headers_.size()) throw std::logic_error("table row with the wrong number of cells");
  rows_.push_back(std::move(cells));
  return *this;
}

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> w(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    w[c] = width(headers_[c]);
    for (auto& r : rows_) w[c] = std::max(w[c], width(r[c]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      std::string pad(w[c] - width(cells[c]), ' ');
      if (c) text += "  ";
      text += right_[c] ? pad + cells[c] : cells[c] + pad;
    }
    text.erase(text.find_last_not_of(' ') + 1);
    out << text << "\n";
  };
  line(headers_);
  for (auto& r : rows_) line(r);
}

std::string Table::str() const {
  std::ostringstream s;
  print(s);
  return s.str();
}

}  // namespace muster::cli
