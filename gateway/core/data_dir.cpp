// data_dir.cpp — see data_dir.hpp.
#include "muster/gateway/data_dir.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::gateway {

namespace fs = std::filesystem;

void ensure_data_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot create the data dir '{}': {}", dir.string(), ec.message()));
    ::chmod(dir.c_str(), 0700);
  }
}

namespace {
std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", path.string()));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Creates `path` with mode 0600 holding `content`; false if it already exists.
bool create_private(const fs::path& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw std::runtime_error(fmt::format("cannot create '{}'", path.string()));
  }
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("cannot write '{}'", path.string()));
  return true;
}

std::string random_bytes(std::size_t n) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}
}  // namespace

std::string load_or_create_key(const fs::path& path) {
  if (!fs::exists(path)) create_private(path, random_bytes(32));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(fmt::format("cannot stat '{}'", path.string()));
  if (st.st_mode & 077)
    throw std::runtime_error(fmt::format("the JWT key '{}' is readable by others (mode {:o}); chmod 600 it",
                                         path.string(), st.st_mode & 0777));
  auto key = read_all(path);
  if (key.size() < 32) throw std::runtime_error(fmt::format("the JWT key '{}' holds fewer than 32 bytes", path.string()));
  return key;
}

std::string load_or_create_instance_id(const fs::path& path) {
  if (!fs::exists(path)) {
    auto raw = random_bytes(8);
    std::string id = "gw-";
    for (unsigned char c : raw) id += fmt::format("{:02x}", c);
    create_private(path, id + "\n");
  }
  auto id = read_all(path);
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r' || id.back() == ' ')) id.pop_back();
  if (id.empty() || id.size() > 64) throw std::runtime_error(fmt::format("'{}' holds no valid instance id", path.string()));
  return id;
}

}  // namespace muster::gateway
