// byte_source.hpp — a bytes value read piece by piece instead of held whole: what a caller gives
// for an input that may be larger than memory (a file), and what ChunkSender cuts into chunks
// (chunking.hpp, PROTOCOL.md §7.9).
// Owns: the interface (size, read at an offset, the sha256 when already known) and its two
// implementations: a file on disk (pread, never loaded whole) and a Bytes value in memory.
// Must never: hand out fewer bytes than asked within size() (a read that cannot be served
// throws, naming the source), or keep more than the caller's buffer in memory.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "muster/value.hpp"

namespace muster {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The number of bytes, fixed for the source's life.
  virtual std::uint64_t size() const = 0;
  // Fills `out` with the bytes at [offset, offset + out.size()), a range within size(). Throws
  // std::runtime_error naming the source when it cannot (an I/O error, a file that shrank).
  virtual void read_at(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
  // The SHA-256 of all the bytes when already known (an uploaded file's), else nullopt: the
  // reader hashes the source itself, in one streaming pass (sha256_of).
  virtual std::optional<std::array<std::uint8_t, 32>> known_sha256() const { return std::nullopt; }
  // What it is, for error messages ("file data.bin").
  virtual std::string describe() const = 0;
  // Whether a range can be read again (a file, memory: yes). A source that says false (a pipe,
  // a socket) is read once, in order, and must give known_sha256(); a ChunkSender keeps the
  // last kResumeKeepBytes it sent of it to resume from (chunking.hpp, PROTOCOL.md §7.9 R10).
  virtual bool rereadable() const { return true; }
};

// A regular file, read with pread at the offsets asked: never loaded whole. The size is taken
// when it is opened; a file that is shorter when read fails that read.
class FileSource final : public ByteSource {
 public:
  // Throws std::runtime_error "cannot read <path>: <reason>" (missing, unreadable, not a
  // regular file). `known_sha256`: the file's hash when the caller knows it already.
  explicit FileSource(std::filesystem::path path, std::optional<std::array<std::uint8_t, 32>> known_sha256 = {});
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const override { return size_; }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  std::optional<std::array<std::uint8_t, 32>> known_sha256() const override { return sha256_; }
  std::string describe() const override { return "file " + path_.string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::optional<std::array<std::uint8_t, 32>> sha256_;
};

// A Bytes value as a source (shares its storage).
class BytesSource final : public ByteSource {
 public:
  explicit BytesSource(Bytes bytes) : bytes_(std::move(bytes)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  void read_at(std::uint64_t offset, std::span<std::uint8_t> out) override;
  std::string describe() const override { return "bytes"; }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

// The SHA-256 of the whole source: known_sha256() if it has one, else read in one pass of
// 1 MiB reads (sha256.hpp).
std::array<std::uint8_t, 32> sha256_of(ByteSource& source);
// All of a (small) source in memory.
Bytes read_all(ByteSource& source);

}  // namespace muster
