// output_sink.hpp — where a caller's chunked outputs go instead of memory (CallOptions::
// output_sink): the bytes of each of the worker's streams are written as they come, and kept
// only once the Result named the stream's port and its size and sha256 checked out.
// Owns: the interface, and DirectorySink (one file per output port in a directory).
// Must never: leave a partial or unchecked value behind under an output's name (a stream is
// written aside and renamed only on commit; discard removes it).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>

#include "muster/value.hpp"

namespace muster {

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  // The next bytes of the worker's chunked stream `stream`, in order from offset 0 (the port
  // is not known yet: the Result that names it comes after the chunks). Throws
  // std::runtime_error to fail the call (the stream is then discarded).
  virtual void write(std::uint32_t stream, std::span<const std::uint8_t> data) = 0;
  // The Result named `stream` as output `port`, with exactly the bytes written (size and
  // sha256 checked): keep them. Throws std::runtime_error when they cannot be kept.
  virtual void commit(std::uint32_t stream, const std::string& port) = 0;
  // The stream is not wanted: the call failed, was cancelled or lost its connection, or the
  // value did not check out. Drops what was written.
  virtual void discard(std::uint32_t stream) noexcept = 0;
};

// One file per output port in `dir`: a stream is written to `.<port-to-be>.stream-N.part` and
// renamed `dir/<port>` on commit (replacing a file of that name). A port name that cannot
// name a file (empty, "." or "..", with "/" or a NUL) is refused on commit.
class DirectorySink final : public OutputSink {
 public:
  // Creates `dir` if it is missing. Throws std::runtime_error "cannot write to <dir>: <reason>"
  // when it cannot be created or is not a writable directory (checked now, by creating and
  // removing a probe file).
  explicit DirectorySink(std::filesystem::path dir);
  ~DirectorySink() override;

  void write(std::uint32_t stream, std::span<const std::uint8_t> data) override;
  void commit(std::uint32_t stream, const std::string& port) override;
  void discard(std::uint32_t stream) noexcept override;

  // Where output `port` is (or would be) kept. Throws std::runtime_error for a port name that
  // cannot name a file.
  std::filesystem::path path_of(const std::string& port) const;
  // Writes a whole (inline) bytes output as `dir/<port>`, the same way (aside, then renamed).
  std::filesystem::path write_file(const std::string& port, std::span<const std::uint8_t> data);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Open {
    std::FILE* file = nullptr;
    std::filesystem::path path;
  };
  std::filesystem::path part_path(std::uint32_t stream) const;
  std::filesystem::path dir_;
  std::map<std::uint32_t, Open> open_;
};

}  // namespace muster
