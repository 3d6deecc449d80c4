// API key secrets: "alk_" + 43 base64url characters (32 random bytes from getrandom), stored only as a
// SHA-256 hash. The first 10 characters ("alk_" + 6) are the key's public `prefix`, which lets the store
// find candidate rows without an index on the hash; the hashes are then compared in constant time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock::daemon {

inline constexpr std::string_view kSecretScheme = "alk_";
inline constexpr size_t kSecretRandomBytes = 32;
inline constexpr size_t kSecretLength = 4 + 43;  // "alk_" + base64url(32 bytes) without padding
inline constexpr size_t kSecretPrefixLength = 4 + 6;

using KeyHash = std::array<uint8_t, 32>;

// Fills `out` from the kernel's CSPRNG (getrandom(2), blocking until it is seeded).
Status random_bytes(std::span<uint8_t> out);
// A fresh secret: "alk_Zq3xT1mP0vLr8sYb2NwQe5KcHd7JfGa9UiOo4XtRzAy".
Result<std::string> generate_secret();
// A fresh key id: "key-" + 16 characters of [0-9a-z].
Result<std::string> generate_key_id();
// True when `s` has the shape of a secret (checked before any store lookup).
bool looks_like_secret(std::string_view s);
// The public part shown in listings: the first 10 characters.
std::string secret_prefix(std::string_view secret);
KeyHash hash_secret(std::string_view secret);
// Constant-time: how long the comparison takes says nothing about where the hashes differ.
bool hashes_equal(const KeyHash& a, const KeyHash& b);
// RFC 4648 §5 without padding.
std::string base64url(std::span<const uint8_t> data);

}  // namespace airlock::daemon
