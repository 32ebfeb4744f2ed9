// identity_postgres_import.hpp — the one-time import of a daemon's identities.json and
// tokens.json into the identity and token stores it shares with its failover pair in
// PostgreSQL (docs/DURABILITY.md §12, "Identities, tokens and revocations").
// When a daemon that keeps its stores in PostgreSQL takes the lease and finds these files in its
// data dir (it ran alone before, or its files were copied from the other host), it merges them
// into the shard's rows and renames them to `<name>.imported`, so they are read once.
// Owns: the merge rules, safe in the direction that matters — a revocation in either wins, a
// token keeps the fewest uses left and the latest use, nothing shared is removed — and the
// refusal of what cannot be merged (one key under two identities, one id with two keys, roles
// or workspaces, one token id with two secrets).
// Must never: write anything when a merge is refused, or read a file again once imported.
#pragma once

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "muster/identity_store.hpp"
#include "muster/token_store.hpp"

namespace muster::broker {

// What cannot be merged; what() names both sides and what to do.
struct ImportConflict : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `shared` with `imported` merged in (rules above). Throws ImportConflict naming the
// identity or token and `source` (the file, for the message).
keys::IdentityMap merge_identities(keys::IdentityMap shared, const std::vector<keys::Identity>& imported,
                                   const std::string& source);
keys::TokenMap merge_tokens(keys::TokenMap shared, const std::vector<keys::StoredToken>& imported,
                            const std::string& source);

struct ImportReport {
  std::size_t identities_added = 0, identities_revoked = 0;  // revoked by the import
  std::size_t tokens_added = 0, tokens_updated = 0;
  std::vector<std::filesystem::path> renamed;  // the files now named <name>.imported
};

// Imports `data_dir`'s identities.json and tokens.json (those that exist; files are validated as
// the file stores would) into `identities` and `tokens`, then renames them. Both merges are
// decided before anything is written; a conflict throws ImportConflict (with what to do) and
// changes nothing. A crash between the writes and the renames imports the files again at the
// next takeover, which changes nothing more (the merge is idempotent).
ImportReport import_file_stores(const std::filesystem::path& data_dir, const std::string& daemon_key_z85,
                                keys::IdentityBacking& identities, keys::TokenBacking& tokens);

}  // namespace muster::broker
