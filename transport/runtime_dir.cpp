// runtime_dir.cpp — runtime directory lookup and the 0700 rule.
#include "muster/runtime_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace muster {

std::filesystem::path runtime_dir() {
  if (const char* d = std::getenv("MUSTER_RUNTIME_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x)
    return std::filesystem::path(x) / "muster";
  return fmt::format("/tmp/muster-{}", ::getuid());
}

std::filesystem::path default_data_dir() {
  if (const char* d = std::getenv("MUSTER_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::filesystem::path(x) / "muster";
  if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".local/share/muster";
  return runtime_dir() / "data";
}

void ensure_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("cannot stat {}: {}", dir.string(), std::strerror(errno)));
  if (!S_ISDIR(st.st_mode))
    throw std::runtime_error(fmt::format("{} is not a directory", dir.string()));
  if (st.st_uid != ::getuid())
    throw std::runtime_error(
        fmt::format("{} is owned by uid {}, not by us (uid {}): refusing to use it", dir.string(),
                    st.st_uid, ::getuid()));
  if ((st.st_mode & 0777) != 0700 && ::chmod(dir.c_str(), 0700) != 0)
    throw std::runtime_error(
        fmt::format("cannot make {} private (mode 0700): {}", dir.string(), std::strerror(errno)));
}

}  // namespace muster
