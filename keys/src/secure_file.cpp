// secure_file.cpp — atomic writes and private reads for the security core.
// Must never: keep a temp file after a failed write, or follow up a failed check by reading.
#include "muster/secure_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace muster::keys {
namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes a descriptor on scope exit unless released.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, std::string_view data, const std::string& what) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("cannot write {}: {}", what, errno_text()));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::optional<std::string> read_fd(int fd, const fs::path& path) {
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("cannot read {}: {}", path.string(), errno_text()));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Opens for reading; nullopt-equivalent (-1 with ENOENT) is reported through `missing`.
int open_for_read(const fs::path& path, bool& missing) {
  missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return -1;
    }
    throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), errno_text()));
  }
  return fd;
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view content, mode_t mode) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string leaf = ".";
  leaf.append(path.filename().string()).append(".tmp-XXXXXX");
  std::string tmpl = (dir / leaf).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');

  Fd f;
  f.fd = ::mkostemp(name.data(), O_CLOEXEC);  // created 0600: never briefly world-readable
  if (f.fd < 0)
    throw std::runtime_error(
        fmt::format("cannot create a temp file next to {}: {}", path.string(), errno_text()));
  const std::string tmp(name.data());
  try {
    if (::fchmod(f.fd, mode) != 0)
      throw std::runtime_error(fmt::format("cannot chmod {}: {}", tmp, errno_text()));
    write_all(f.fd, content, tmp);
    if (::fsync(f.fd) != 0)
      throw std::runtime_error(fmt::format("cannot fsync {}: {}", tmp, errno_text()));
    int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0)
      throw std::runtime_error(fmt::format("cannot close {}: {}", tmp, errno_text()));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error(
          fmt::format("cannot rename {} to {}: {}", tmp, path.string(), errno_text()));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename is only durable once the directory entry is on disk.
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0 || ::fsync(d.fd) != 0)
    throw std::runtime_error(
        fmt::format("cannot fsync directory {}: {}", dir.string(), errno_text()));
}

std::optional<std::string> read_file(const fs::path& path) {
  bool missing = false;
  Fd f;
  f.fd = open_for_read(path, missing);
  if (missing) return std::nullopt;
  return read_fd(f.fd, path);
}

std::optional<std::string> read_private_file(const fs::path& path) {
  bool missing = false;
  Fd f;
  f.fd = open_for_read(path, missing);
  if (missing) return std::nullopt;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0)
    throw std::runtime_error(fmt::format("cannot stat {}: {}", path.string(), errno_text()));
  if (!S_ISREG(st.st_mode))
    throw std::runtime_error(fmt::format("{} is not a regular file", path.string()));
  if ((st.st_mode & 077) != 0)
    throw PermissionError(fmt::format(
        "{} holds a secret but is accessible by group or others (mode {:04o}); refusing to use "
        "it. Fix: chmod 600 {}",
        path.string(), st.st_mode & 07777, path.string()));
  return read_fd(f.fd, path);
}

void ensure_data_dir(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT)
      throw std::runtime_error(fmt::format("cannot stat {}: {}", dir.string(), errno_text()));
    if (dir.has_parent_path() && !dir.parent_path().empty()) {
      std::error_code ec;
      fs::create_directories(dir.parent_path(), ec);
      if (ec)
        throw std::runtime_error(
            fmt::format("cannot create {}: {}", dir.parent_path().string(), ec.message()));
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("cannot create {}: {}", dir.string(), errno_text()));
    if (::stat(dir.c_str(), &st) != 0)
      throw std::runtime_error(fmt::format("cannot stat {}: {}", dir.string(), errno_text()));
  }
  if (!S_ISDIR(st.st_mode))
    throw std::runtime_error(fmt::format("{} is not a directory", dir.string()));
  if (st.st_uid != ::geteuid())
    throw PermissionError(fmt::format(
        "data directory {} is owned by uid {}, not by us (uid {}), so its owner could replace keys "
        "or identities; refusing to use it. Fix: use a directory of your own (--data-dir)",
        dir.string(), st.st_uid, ::geteuid()));
  if ((st.st_mode & 022) != 0)
    throw PermissionError(fmt::format(
        "data directory {} is writable by group or others (mode {:04o}), so they could replace "
        "keys or identities; refusing to use it. Fix: chmod 700 {}",
        dir.string(), st.st_mode & 07777, dir.string()));
}

}  // namespace muster::keys
