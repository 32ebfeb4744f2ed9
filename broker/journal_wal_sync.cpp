// journal_wal_sync.cpp — see journal_wal_sync.hpp.
#include "journal_wal_sync.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace muster::broker::journal {

WalSync::WalSync(std::filesystem::path wal, std::string store) : wal_(std::move(wal)), store_(std::move(store)) {
  fd_ = ::open(wal_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(fmt::format("cannot open the WAL {} to sync it: {}", wal_.string(), std::strerror(errno)));
  // The WAL was created at this open: its directory entry must be on the disk before any
  // commit counts as durable (SQLite's own directory sync comes at its first WAL sync, which
  // synchronous=NORMAL may never make before a power loss).
  const auto dir = wal_.has_parent_path() ? wal_.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool dir_synced = dfd >= 0 && ::fsync(dfd) == 0;
  const int why = errno;
  if (dfd >= 0) ::close(dfd);
  if (!dir_synced) {
    ::close(fd_);
    fd_ = -1;
    fail(fmt::format("cannot fsync the directory {}: {}", dir.string(), std::strerror(why)));
  }
}

WalSync::~WalSync() {
  if (fd_ >= 0) ::close(fd_);
}

void WalSync::sync() {
  int rc;
  do rc = ::fdatasync(fd_);
  while (rc != 0 && errno == EINTR);
  if (rc != 0)
    fail(fmt::format("fdatasync of the WAL {} failed, the batches written since the last sync are not "
                     "durable: {}", wal_.string(), std::strerror(errno)));
}

void WalSync::fail(const std::string& what) const {
  throw JournalError(fmt::format("journal {}: {}", store_, what));
}

}  // namespace muster::broker::journal
