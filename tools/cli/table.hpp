// table.hpp — aligned text tables for the CLI's listings: each column as wide as its widest
// cell, numbers right-aligned, two spaces between columns, no trailing blanks.
// Owns: layout only. Must never: truncate a cell (scripts should use --json, but a human copy
// of a long id must still be whole).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace muster::cli {

class Table {
 public:
  // A header starting with '>' is a right-aligned column (the '>' is not printed).
  explicit Table(std::vector<std::string> headers);
  Table& row(std::vector<std::string> cells);  // as many cells as headers
  void print(std::ostream& out) const;
  std::string str() const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace muster::cli
