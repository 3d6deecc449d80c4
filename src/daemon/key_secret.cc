#include "daemon/key_secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace airlock::daemon {
namespace {

bool is_base64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

Status random_bytes(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

std::string base64url(std::span<const uint8_t> data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

Result<std::string> generate_secret() {
  std::array<uint8_t, kSecretRandomBytes> raw{};
  TRY_STATUS(random_bytes(raw));
  std::string secret = std::string(kSecretScheme) + base64url(raw);
  OPENSSL_cleanse(raw.data(), raw.size());
  return secret;
}

Result<std::string> generate_key_id() {
  static constexpr std::string_view kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string id = "key-";
  while (id.size() < 4 + 16) {
    std::array<uint8_t, 32> raw{};
    TRY_STATUS(random_bytes(raw));
    for (uint8_t b : raw) {
      // Rejection sampling: 252 = 7 * 36, so every character is equally likely.
      if (b < 252 && id.size() < 4 + 16) id.push_back(kAlphabet[b % 36]);
    }
  }
  return id;
}

bool looks_like_secret(std::string_view s) {
  if (s.size() != kSecretLength || s.substr(0, kSecretScheme.size()) != kSecretScheme) return false;
  for (char c : s.substr(kSecretScheme.size())) {
    if (!is_base64url_char(c)) return false;
  }
  return true;
}

std::string secret_prefix(std::string_view secret) {
  return std::string(secret.substr(0, std::min(secret.size(), kSecretPrefixLength)));
}

KeyHash hash_secret(std::string_view secret) {
  KeyHash out{};
  unsigned int len = 0;
  // EVP_Digest with SHA-256 cannot fail short of OOM; a zero hash would match nothing stored.
  if (EVP_Digest(secret.data(), secret.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) out.fill(0);
  return out;
}

bool hashes_equal(const KeyHash& a, const KeyHash& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

}  // namespace airlock::daemon
