// runtime_dir.hpp — where local muster sockets live, chosen the same way by every program.
// Owns: the lookup order $MUSTER_RUNTIME_DIR, $XDG_RUNTIME_DIR/muster, /tmp/muster-$UID,
// and the 0700 permission rule for that directory.
// Must never: use a directory another user can enter.
#pragma once

#include <filesystem>

namespace muster {

std::filesystem::path runtime_dir();

// Where keys, tokens and identities are kept, the same for every program:
// $MUSTER_DATA_DIR, else $XDG_DATA_HOME/muster, else ~/.local/share/muster.
std::filesystem::path default_data_dir();

// Creates `dir` (and parents) if missing, sets mode 0700, and checks it is owned by us and
// not accessible to group or others. Throws std::runtime_error with a clear message.
void ensure_private_dir(const std::filesystem::path& dir);

}  // namespace muster
