// secure_file.hpp — how the security core touches the disk: atomic replacement of a file,
// reading a file that must be private, and the data directory rule.
// Owns: temp-file + fsync + rename + directory fsync, and the "no group/other access" checks.
// Must never: leave a half-written file under the final name, or read a secret from a file
// that other users can read.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace muster::keys {

// Raised when a file or directory has permissions that would leak or let others tamper with a
// secret. what() names the path and says how to fix it (e.g. "run: chmod 600 FILE").
class PermissionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Replaces `path` with `content` atomically: a temp file is created in the same directory,
// given `mode`, written, fsync'd, renamed over `path`, and the directory is fsync'd. After a
// crash at any point `path` holds either its old content or the new one, never a mix; on any
// error the temp file is removed and std::runtime_error (naming the path) is thrown.
void write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       mode_t mode = 0600);

// The whole content of `path`, or nullopt if it does not exist. Throws std::runtime_error on
// any other error.
std::optional<std::string> read_file(const std::filesystem::path& path);

// Like read_file, but the file must be private to its owner: if it grants any permission to
// group or others it is not read and PermissionError is thrown, naming the file and the fix
// (`chmod 600 FILE`). The check is made on the opened descriptor (no race with a rename).
std::optional<std::string> read_private_file(const std::filesystem::path& path);

// Makes sure `dir` exists and is a directory that only we can change: creates it (and parents)
// with mode 0700 if missing; if it exists and group or others may write it, throws
// PermissionError naming the directory, its mode and the fix (`chmod 700 DIR`); if another user
// owns it, throws PermissionError too. It never changes an existing directory's mode (a
// directory someone else could write is refused, not repaired and trusted).
void ensure_data_dir(const std::filesystem::path& dir);

}  // namespace muster::keys
