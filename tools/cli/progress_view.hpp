// progress_view.hpp — how `muster call --progress` shows a node's progress on stderr: a bar
// redrawn in place on a terminal, plain lines (`progress: 3/10 message`) when stderr is a
// pipe or a file, so logs and scripts get one line per report.
// Owns: the rendering. Must never: write to stdout (that is the result's), or leave a bar
// half-drawn before the next line of output (finish() clears it).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace muster::cli {

class ProgressView {
 public:
  // `tty`: draw a bar (else plain lines); `columns`: the terminal's width.
  ProgressView(std::ostream& out, bool tty, int columns = 80);
  // For stderr: a bar if it is a terminal (and TERM is not "dumb").
  static ProgressView for_stderr();
  void update(std::uint64_t step, std::uint64_t total, const std::string& message);
  void finish();  // clears a drawn bar
  ~ProgressView() { finish(); }

 private:
  std::ostream& out_;
  bool tty_;
  int columns_;
  bool drawn_ = false;
};

}  // namespace muster::cli
