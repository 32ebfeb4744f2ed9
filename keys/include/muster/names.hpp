// names.hpp — which strings may name a workspace, label a token or identity, name a host, or
// become part of a file name.
// Owns: the character and length rules, so the stores, the daemon and the CLI agree.
// Must never: accept control characters (they forge log lines and terminal output) or a file
// stem that could leave its directory.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace muster::keys {

inline constexpr std::string_view kDefaultWorkspace = "default";

// [A-Za-z0-9_.-]{1,64}, not starting with '.' or '-'.
bool is_valid_workspace(std::string_view s);
// The workspaces a gateway identity is enrolled for. Its token's and identity's `workspace`
// field holds them comma-separated ("alpha,beta"; docs/SECURITY.md §6.2): workspace names never
// contain ',', so the list is unambiguous. Empty if `list` is not 1 to 64 distinct valid names.
std::vector<std::string> workspace_list(std::string_view list);
// Free text for people: 0..128 bytes, no control characters (bytes < 0x20 and 0x7f).
bool is_valid_label(std::string_view s);
// 0..255 bytes of [A-Za-z0-9.-_] (what a hostname or FQDN can hold).
bool is_valid_hostname(std::string_view s);
// [A-Za-z0-9_.-]{1,64}, not starting with '.' or '-': usable as <name> in <name>-curve.key.
bool is_valid_file_stem(std::string_view s);

}  // namespace muster::keys
