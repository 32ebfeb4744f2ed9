// progress_view.cpp — see progress_view.hpp.
#include "progress_view.hpp"

#include <cstdlib>
#include <iostream>

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace muster::cli {

ProgressView::ProgressView(std::ostream& out, bool tty, int columns)
    : out_(out), tty_(tty), columns_(columns < 20 ? 20 : columns) {}

ProgressView ProgressView::for_stderr() {
  const char* term = std::getenv("TERM");
  bool tty = ::isatty(STDERR_FILENO) && !(term && std::string(term) == "dumb");
  int columns = 80;
  winsize ws{};
  if (tty && ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) columns = ws.ws_col;
  return ProgressView(std::cerr, tty, columns);
}

void ProgressView::update(std::uint64_t step, std::uint64_t total, const std::string& message) {
  if (!tty_) {
    out_ << fmt::format("progress: {}/{} {}\n", step, total, message) << std::flush;
    return;
  }
  std::string line;
  if (total > 0) {
    const std::uint64_t shown = step > total ? total : step;
    constexpr int kBar = 24;
    const int filled = static_cast<int>(shown * kBar / total);
    line = fmt::format("[{}{}] {:>3}% {}/{} ", std::string(static_cast<std::size_t>(filled), '#'),
                       std::string(static_cast<std::size_t>(kBar - filled), '-'), shown * 100 / total,
                       step, total);
  } else {
    line = fmt::format("[{}] {} ", "working", step);
  }
  line += message;
  if (static_cast<int>(line.size()) >= columns_) line.resize(static_cast<std::size_t>(columns_ - 1));
  out_ << "\r\033[K" << line << std::flush;
  drawn_ = true;
}

void ProgressView::finish() {
  if (drawn_) out_ << "\r\033[K" << std::flush;
  drawn_ = false;
}

}  // namespace muster::cli
