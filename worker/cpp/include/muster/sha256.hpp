// sha256.hpp — SHA-256 of the C++ SDK's chunked values (PROTOCOL.md §7.9), backed by OpenSSL's
// EVP digest (libcrypto): several times faster than libsodium's portable crypto_hash_sha256
// (docs/PERFORMANCE.md, muster-bench-stream), and every streamed byte is hashed at both ends.
// Owns: one running hash (Sha256) and the one-shot sha256().
// Must never: return a digest other than FIPS 180-4 SHA-256 of exactly the bytes given, in
// order, or expose OpenSSL's headers to its includers.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace muster {

using Sha256Digest = std::array<std::uint8_t, 32>;

// A running SHA-256: update() with the bytes in order, finish() for the digest of all of them
// so far. Copyable (the copy continues from the same bytes). Throws std::runtime_error if
// OpenSSL fails (out of memory); never otherwise.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;
  ~Sha256();

  void update(std::span<const std::uint8_t> data);
  // The digest of every byte given so far; the hash stays usable (more bytes may follow).
  Sha256Digest finish() const;

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const noexcept;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// The SHA-256 of `data`, in one call.
Sha256Digest sha256(std::span<const std::uint8_t> data);

}  // namespace muster
