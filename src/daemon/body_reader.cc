#include "daemon/body_reader.h"

#include <condition_variable>
#include <mutex>
#include <optional>

namespace airlock::daemon {

struct BlockingBodyReader::State {
  std::mutex mu;  // guards piece
  std::condition_variable cv;
  std::optional<BodyPiece> piece;  // the answer to the read under way, once it came
};

BlockingBodyReader::BlockingBodyReader(BodyReader& reader, size_t piece)
    : reader_(reader), piece_size_(piece), state_(std::make_shared<State>()) {}

BlockingBodyReader::~BlockingBodyReader() = default;

void BlockingBodyReader::ask() {
  asked_ = true;
  // The callback holds the state, not this object: it may come after this reader is gone.
  reader_.read(piece_size_, [state = state_](BodyPiece piece) {
    {
      std::lock_guard guard(state->mu);
      state->piece = std::move(piece);
    }
    state->cv.notify_all();
  });
}

ApiResult<std::string_view> BlockingBodyReader::next() {
  current_.clear();
  if (ended_) return std::string_view();
  if (!asked_) ask();
  BodyPiece piece;
  {
    std::unique_lock lock(state_->mu);
    state_->cv.wait(lock, [&] { return state_->piece.has_value(); });
    piece = std::move(*state_->piece);
    state_->piece.reset();
  }
  asked_ = false;
  if (!piece.error.empty()) {
    ended_ = true;
    return api_error(ErrorCode::kInvalidParameter, "request body: " + piece.error);
  }
  ended_ = piece.end;
  bytes_read_ += piece.data.size();
  current_ = std::move(piece.data);
  if (!ended_) ask();  // read ahead while the caller handles this piece
  if (current_.empty() && !ended_) return next();  // only the end may be empty; guard anyway
  return std::string_view(current_);
}

ApiResult<std::string> BlockingBodyReader::read_all(size_t limit) {
  std::string all;
  while (true) {
    API_TRY(auto piece, next());
    if (piece.empty()) return all;
    if (piece.size() > limit - all.size()) {
      return api_error(ErrorCode::kPayloadTooLarge, "request body exceeds " + std::to_string(limit) + " bytes")
          .with_details({{"limit_bytes", limit}});
    }
    all.append(piece);
  }
}

}  // namespace airlock::daemon
