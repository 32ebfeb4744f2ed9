// sha256.cpp — SHA-256 over OpenSSL's EVP digest (sha256.hpp).
#include "muster/sha256.hpp"

#include <stdexcept>

#include <openssl/evp.h>

namespace muster {

namespace {
EVP_MD_CTX* new_context() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) throw std::runtime_error("OpenSSL: cannot allocate a SHA-256 context");
  return ctx;
}
void check(int ok, const char* what) {
  if (ok != 1) throw std::runtime_error(std::string("OpenSSL: SHA-256 ") + what + " failed");
}
}  // namespace

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const noexcept { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(new_context()) { check(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr), "init"); }

Sha256::Sha256(const Sha256& other) : ctx_(new_context()) {
  check(EVP_MD_CTX_copy_ex(ctx_.get(), other.ctx_.get()), "copy");
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) {
    if (!ctx_) ctx_.reset(new_context());  // a moved-from hash
    check(EVP_MD_CTX_copy_ex(ctx_.get(), other.ctx_.get()), "copy");
  }
  return *this;
}

Sha256::~Sha256() = default;

void Sha256::update(std::span<const std::uint8_t> data) {
  if (!data.empty()) check(EVP_DigestUpdate(ctx_.get(), data.data(), data.size()), "update");
}

Sha256Digest Sha256::finish() const {
  Sha256 copy(*this);  // finishing consumes a context: finish a copy, keep this one running
  Sha256Digest out{};
  unsigned int n = 0;
  check(EVP_DigestFinal_ex(copy.ctx_.get(), out.data(), &n), "final");
  if (n != out.size()) throw std::runtime_error("OpenSSL: SHA-256 gave a digest of the wrong size");
  return out;
}

Sha256Digest sha256(std::span<const std::uint8_t> data) {
  Sha256 hash;
  hash.update(data);
  return hash.finish();
}

}  // namespace muster
