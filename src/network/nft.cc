#include "network/nft.h"

#include <nftables/libnftables.h>

namespace airlock::net {
namespace {

std::string first_lines(const char* text, size_t max_lines) {
  std::string out;
  size_t lines = 0;
  for (const char* p = text ? text : ""; *p && lines < max_lines; ++p) {
    out += *p;
    if (*p == '\n') ++lines;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Nft::Nft() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

Nft::~Nft() { nft_ctx_free(ctx_); }

Status Nft::run(const std::string& commands) {
  std::lock_guard guard(ctx_mu_);
  int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  std::string err = first_lines(nft_ctx_get_error_buffer(ctx_), 6);
  (void)nft_ctx_get_output_buffer(ctx_);  // resets it
  if (rc != 0) return Error{EINVAL, "nftables: " + (err.empty() ? std::string("refused the rules") : err)};
  return {};
}

Result<std::string> Nft::query(const std::string& command) {
  std::lock_guard guard(ctx_mu_);
  int rc = nft_run_cmd_from_buffer(ctx_, command.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx_) ? nft_ctx_get_output_buffer(ctx_) : "";
  std::string err = first_lines(nft_ctx_get_error_buffer(ctx_), 6);
  if (rc != 0) return Error{EINVAL, "nftables: " + err};
  return out;
}

}  // namespace airlock::net
