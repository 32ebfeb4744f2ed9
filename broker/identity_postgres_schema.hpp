// identity_postgres_schema.hpp — the tables a failover pair's identity and token stores live
// in (docs/DURABILITY.md §12, "Identities, tokens and revocations"): migration 2 of the
// PostgreSQL journal's schema (journal_postgres.cpp applies it with the others, in order, by
// journal_migrations.hpp's rule, so one schema version covers the whole database and a musterd
// that keeps its identities in files refuses a database that holds them).
// Owns: the SQL of those tables. Must never: be edited once released (append a migration).
#pragma once

namespace muster::broker::journal {

inline constexpr const char* kIdentitySchemaDescription = "identities and enrollment tokens, by shard";

// Times are milliseconds since the Unix epoch (the precision of identities.json/tokens.json).
// Text columns hold only what the stores validated (Z85 keys, hex ids, names without control
// characters). No secret is stored: a token's BLAKE2b-256 secret hash only.
inline constexpr const char* kIdentitySchemaSql = R"sql(
  CREATE TABLE identities (
    shard text NOT NULL, id text NOT NULL, public_key text NOT NULL, role text NOT NULL,
    workspace text NOT NULL, name text NOT NULL, hostname text NOT NULL,
    enrolled_ms bigint NOT NULL, token_id text NOT NULL,
    revoked boolean NOT NULL, revoked_ms bigint,
    PRIMARY KEY (shard, id), UNIQUE (shard, public_key));
  CREATE TABLE enrollment_tokens (
    shard text NOT NULL, id text NOT NULL, secret_hash text NOT NULL, role text NOT NULL,
    workspace text NOT NULL, label text NOT NULL,
    created_ms bigint NOT NULL, expires_ms bigint NOT NULL,
    uses_total bigint NOT NULL, uses_left bigint NOT NULL,
    revoked boolean NOT NULL, revoked_ms bigint, last_used_ms bigint,
    PRIMARY KEY (shard, id));
)sql";

}  // namespace muster::broker::journal
