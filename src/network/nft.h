// nftables through libnftables: a batch of commands in nft syntax is applied atomically (all or
// nothing), and the library's error text comes back in the Error. Not thread-safe by itself:
// Nft serialises callers.
#pragma once

#include <mutex>
#include <string>

#include "common/result.h"

struct nft_ctx;

namespace airlock::net {

class Nft {
 public:
  Nft();
  ~Nft();
  Nft(const Nft&) = delete;
  Nft& operator=(const Nft&) = delete;

  // Applies `commands` (one nft batch). EINVAL with nft's message when it refuses them.
  Status run(const std::string& commands);
  // Runs a command and returns what nft printed (e.g. "list table inet airlock").
  Result<std::string> query(const std::string& command);

 private:
  std::mutex ctx_mu_;
  nft_ctx* ctx_;
};

}  // namespace airlock::net
