// journal_migrations.hpp — the numbered schema migrations both journals (journal_sqlite.cpp,
// journal_postgres.cpp) keep, and the one rule for applying them.
// Owns: which migrations a store at a given version still needs, and the refusal of a store
// written by a newer muster. Must never: run SQL itself (each journal applies and records a
// migration in its own transaction, in its own dialect).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include <fmt/format.h>

namespace muster::broker::journal {

// Migration N takes the schema from version N-1 to N, applied in the transaction that records
// it. Append only: a released migration is never edited.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// For a store at schema `version`: fail(message) if a newer muster wrote it (the message ends
// with `advice`), else apply(m) for every migration above `version`, in order.
template <std::size_t N, class Apply, class Fail>
void migrate(int version, const std::array<Migration, N>& migrations, std::string_view advice,
             Apply&& apply, Fail&& fail) {
  const int known = migrations.back().version;
  if (version > known)
    fail(fmt::format("written by a newer muster (schema version {}, this musterd knows up to {}); {}",
                     version, known, advice));
  for (const Migration& m : migrations)
    if (m.version > version) apply(m);
}

}  // namespace muster::broker::journal
