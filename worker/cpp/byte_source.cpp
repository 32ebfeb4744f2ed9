// byte_source.cpp — a file or a Bytes value read piece by piece (byte_source.hpp).
#include "muster/byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "muster/sha256.hpp"

namespace muster {

FileSource::FileSource(std::filesystem::path path, std::optional<std::array<std::uint8_t, 32>> known_sha256)
    : path_(std::move(path)), sha256_(known_sha256) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path_.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(fmt::format("cannot read {}: {}", path_.string(),
                                         S_ISDIR(st.st_mode) ? "it is a directory"
                                         : err               ? std::strerror(err)
                                                             : "not a regular file"));
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    auto n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("cannot read {}: {}", path_.string(), std::strerror(errno)));
    if (n == 0)
      throw std::runtime_error(fmt::format("cannot read {}: it ends at {} bytes, {} were expected (changed while sent?)",
                                           path_.string(), offset + done, size_));
    done += static_cast<std::size_t>(n);
  }
}

void BytesSource::read_at(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (offset > bytes_.size() || out.size() > bytes_.size() - offset)
    throw std::runtime_error(fmt::format("bytes: a read of {} at {} passes the size of {}", out.size(), offset, bytes_.size()));
  std::memcpy(out.data(), bytes_.data() + offset, out.size());
}

std::array<std::uint8_t, 32> sha256_of(ByteSource& source) {
  if (auto known = source.known_sha256()) return *known;
  Sha256 hash;
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(source.size(), 1u << 20)));
  for (std::uint64_t at = 0; at < source.size();) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), source.size() - at));
    source.read_at(at, std::span(buffer).first(n));
    hash.update(std::span(buffer).first(n));
    at += n;
  }
  return hash.finish();
}

Bytes read_all(ByteSource& source) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(source.size()));
  source.read_at(0, v);
  return Bytes(std::move(v));
}

}  // namespace muster
