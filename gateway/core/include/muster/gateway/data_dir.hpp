// data_dir.hpp — what the gateway keeps in its data dir: the JWT signing key (jwt.key, 32
// random bytes) and its stable instance id (instance-id, the `peer_id` it announces), both
// created on first start with mode 0600 in a 0700 directory.
// Must never: widen the permissions of an existing file, or print the key.
#pragma once

#include <filesystem>
#include <string>

namespace muster::gateway {

// Creates `dir` (0700) if missing.
void ensure_data_dir(const std::filesystem::path& dir);
// The key in `path`, created if missing. Throws if the file is shorter than 32 bytes or is
// readable by group or others.
std::string load_or_create_key(const std::filesystem::path& path);
// "gw-" + 16 hex digits, created if missing.
std::string load_or_create_instance_id(const std::filesystem::path& path);

}  // namespace muster::gateway
