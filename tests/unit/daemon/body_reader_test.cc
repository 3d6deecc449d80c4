// BlockingBodyReader over fake BodyReaders: pieces in order, one read kept ahead, the end, errors,
// read_all's limit, and a callback that comes after the reader is gone.
#include "daemon/body_reader.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>
#include <thread>

namespace airlock::daemon {
namespace {

// Answers each read at once with the next scripted piece (cut to `max`), and counts the reads.
class ScriptedBody final : public BodyReader {
 public:
  explicit ScriptedBody(std::deque<BodyPiece> pieces) : pieces_(std::move(pieces)) {}
  void read(size_t max, Callback callback) override {
    ++reads;
    max_asked = std::max(max_asked, max);
    if (pieces_.empty()) return callback(BodyPiece{{}, false, "read past the scripted end"});
    BodyPiece p = std::move(pieces_.front());
    pieces_.pop_front();
    callback(std::move(p));
  }
  int reads = 0;
  size_t max_asked = 0;

 private:
  std::deque<BodyPiece> pieces_;
};

TEST(BlockingBodyReader, YieldsPiecesInOrderThenEmptyForever) {
  ScriptedBody body({{"abc", false, {}}, {"de", false, {}}, {"f", true, {}}});
  BlockingBodyReader reader(body);
  std::string all;
  while (true) {
    auto piece = reader.next();
    ASSERT_TRUE(piece.ok()) << piece.error().message;
    if (piece.value().empty()) break;
    all += piece.value();
  }
  EXPECT_EQ(all, "abcdef");
  EXPECT_EQ(reader.bytes_read(), 6u);
  EXPECT_EQ(body.reads, 3);  // no read after the piece flagged `end`
  auto again = reader.next();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.value().empty());
  EXPECT_EQ(body.reads, 3);
  EXPECT_EQ(body.max_asked, BodyReader::kMaxPiece);
}

TEST(BlockingBodyReader, ReadsOnePieceAhead) {
  ScriptedBody body({{"one", false, {}}, {"two", false, {}}, {{}, true, {}}});
  BlockingBodyReader reader(body, 1024);
  auto first = reader.next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value(), "one");
  EXPECT_EQ(body.reads, 2);  // the second piece was asked for before the first was handled
  EXPECT_EQ(body.max_asked, 1024u);
  auto second = reader.next();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), "two");
  auto end = reader.next();
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end.value().empty());
}

TEST(BlockingBodyReader, AnErrorEndsTheBody) {
  ScriptedBody body({{"abc", false, {}}, {{}, false, "the client went away"}});
  BlockingBodyReader reader(body);
  ASSERT_TRUE(reader.next().ok());
  auto failed = reader.next();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kInvalidParameter);
  EXPECT_NE(failed.error().message.find("the client went away"), std::string::npos);
  auto after = reader.next();  // no more reads once the body is over
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after.value().empty());
  EXPECT_EQ(body.reads, 2);
}

TEST(BlockingBodyReader, ReadAllWithinAndBeyondItsLimit) {
  {
    ScriptedBody body({{"{\"a\":", false, {}}, {"1}", true, {}}});
    BlockingBodyReader reader(body);
    auto all = reader.read_all(7);
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value(), "{\"a\":1}");
  }
  {
    ScriptedBody body({{"{\"a\":", false, {}}, {"12}", false, {}}, {{}, true, {}}});
    BlockingBodyReader reader(body);
    auto all = reader.read_all(7);
    ASSERT_FALSE(all.ok());
    EXPECT_EQ(all.error().code, ErrorCode::kPayloadTooLarge);
    EXPECT_EQ(all.error().details["limit_bytes"], 7);
  }
}

// Answers from another thread, later: next() waits; a reader destroyed with a read under way is
// safe when the answer finally comes.
class LateBody final : public BodyReader {
 public:
  void read(size_t, Callback callback) override {
    std::lock_guard guard(mu);
    pending.push_back(std::move(callback));
  }
  Callback take() {
    std::lock_guard guard(mu);
    if (pending.empty()) return nullptr;
    Callback c = std::move(pending.front());
    pending.pop_front();
    return c;
  }
  std::mutex mu;
  std::deque<Callback> pending;
};

TEST(BlockingBodyReader, WaitsForAnAnswerFromAnotherThread) {
  LateBody body;
  std::thread answerer([&] {
    for (int sent = 0; sent < 2;) {
      if (auto c = body.take()) {
        c(sent == 0 ? BodyPiece{"late", false, {}} : BodyPiece{{}, true, {}});
        ++sent;
      } else {
        std::this_thread::yield();
      }
    }
  });
  BlockingBodyReader reader(body);
  auto piece = reader.next();
  ASSERT_TRUE(piece.ok());
  EXPECT_EQ(piece.value(), "late");
  auto end = reader.next();
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end.value().empty());
  answerer.join();
}

TEST(BlockingBodyReader, AnAnswerAfterTheReaderIsGoneIsHarmless) {
  LateBody body;
  {
    BlockingBodyReader reader(body);
    std::thread answerer([&] {
      while (true) {
        if (auto c = body.take()) return c(BodyPiece{"x", false, {}});
        std::this_thread::yield();
      }
    });
    ASSERT_TRUE(reader.next().ok());  // and a read ahead is now under way
    answerer.join();
  }
  auto c = body.take();
  ASSERT_TRUE(c);
  c(BodyPiece{"after", false, {}});  // must not touch the destroyed reader
}

}  // namespace
}  // namespace airlock::daemon
