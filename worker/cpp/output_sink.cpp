// output_sink.cpp — chunked outputs written to files of a directory (output_sink.hpp).
#include "muster/output_sink.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace muster {

namespace fs = std::filesystem;

DirectorySink::DirectorySink(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot write to {}: {}", dir_.string(), ec.message()));
  if (!fs::is_directory(dir_)) throw std::runtime_error(fmt::format("cannot write to {}: not a directory", dir_.string()));
  auto probe = dir_ / fmt::format(".muster-probe-{}", ::getpid());
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("cannot write to {}: {}", dir_.string(), std::strerror(errno)));
  std::fclose(f);
  fs::remove(probe, ec);
}

DirectorySink::~DirectorySink() {
  while (!open_.empty()) discard(open_.begin()->first);
}

fs::path DirectorySink::part_path(std::uint32_t stream) const {
  return dir_ / fmt::format(".muster-stream-{}-{}.part", stream, ::getpid());
}

fs::path DirectorySink::path_of(const std::string& port) const {
  if (port.empty() || port == "." || port == ".." || port.find('/') != std::string::npos ||
      port.find('\0') != std::string::npos)
    throw std::runtime_error(fmt::format("output \"{}\": the name cannot name a file in {}", port, dir_.string()));
  return dir_ / port;
}

void DirectorySink::write(std::uint32_t stream, std::span<const std::uint8_t> data) {
  auto it = open_.find(stream);
  if (it == open_.end()) {
    Open o{nullptr, part_path(stream)};
    o.file = std::fopen(o.path.c_str(), "wb");
    if (!o.file) throw std::runtime_error(fmt::format("cannot write {}: {}", o.path.string(), std::strerror(errno)));
    it = open_.emplace(stream, o).first;
  }
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), it->second.file) != data.size())
    throw std::runtime_error(fmt::format("cannot write {}: {}", it->second.path.string(), std::strerror(errno)));
}

void DirectorySink::commit(std::uint32_t stream, const std::string& port) {
  auto target = path_of(port);
  if (!open_.contains(stream)) write(stream, {});  // a stream of 0 bytes: an empty file
  auto& o = open_.at(stream);
  bool flushed = std::fclose(o.file) == 0;
  o.file = nullptr;
  if (!flushed) throw std::runtime_error(fmt::format("cannot write {}: {}", o.path.string(), std::strerror(errno)));
  std::error_code ec;
  fs::rename(o.path, target, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot write {}: {}", target.string(), ec.message()));
  open_.erase(stream);
}

void DirectorySink::discard(std::uint32_t stream) noexcept {
  auto it = open_.find(stream);
  if (it == open_.end()) return;
  if (it->second.file) std::fclose(it->second.file);
  std::error_code ec;
  fs::remove(it->second.path, ec);
  open_.erase(it);
}

fs::path DirectorySink::write_file(const std::string& port, std::span<const std::uint8_t> data) {
  // An inline value goes the way a stream does, under a stream number no worker uses.
  constexpr std::uint32_t kInline = 0;
  discard(kInline);
  try {
    write(kInline, data);
    commit(kInline, port);
  } catch (...) {
    discard(kInline);
    throw;
  }
  return path_of(port);
}

}  // namespace muster
