// Host id ranges are owned through flock on per-range lock files: these tests use a private lock
// directory and check ownership within one process, across a fork, and after a holder dies.
#include "engine/id_range.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace airlock {
namespace {

namespace fs = std::filesystem;

class IdRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/airlock-id-range-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    lock_dir_ = root_ + "/ids";  // not created: the allocator must create it
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::string lock_file(uint32_t index) const { return lock_dir_ + "/" + std::to_string(index) + ".lock"; }
  static bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  std::string root_;
  std::string lock_dir_;
};

// A forked process that runs `body` and then waits for the parent's go-ahead before _exit.
// The child reports one byte (the result of `body`) so the parent knows when it is holding.
class HoldingChild {
 public:
  template <typename Body>
  explicit HoldingChild(Body body) {
    int ready[2], go[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      char report = body();
      (void)!::write(ready[1], &report, 1);
      char ignored;
      (void)!::read(go[0], &ignored, 1);  // the go-ahead, or EOF if the parent gave up
      ::_exit(0);                         // no destructors: whatever body() holds is never released
    }
    ::close(ready[1]);
    ::close(go[0]);
    ready_ = UniqueFd(ready[0]);
    go_ = UniqueFd(go[1]);
  }
  ~HoldingChild() { finish(); }

  bool started() const { return pid_ > 0; }
  // The byte the child reported, or 0 if it died first.
  char report() {
    char c = 0;
    if (::read(ready_.get(), &c, 1) != 1) return 0;
    return c;
  }
  // Lets the child _exit and reaps it; returns its wait status.
  int finish() {
    if (pid_ <= 0) return -1;
    go_.reset();
    int status = -1;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd ready_;
  UniqueFd go_;
};

TEST_F(IdRangeTest, TwoAllocationsGetDifferentIndexes) {
  IdRangeAllocator ids(lock_dir_);
  auto a = ids.allocate();
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = ids.allocate();
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_TRUE(a->held());
  EXPECT_TRUE(b->held());
  EXPECT_NE(a->index(), b->index());
  EXPECT_TRUE(exists(lock_file(a->index())));
  EXPECT_TRUE(exists(lock_file(b->index())));
}

TEST_F(IdRangeTest, CreatesAPrivateLockDirectory) {
  IdRangeAllocator ids(lock_dir_ + "/nested");
  auto a = ids.allocate();
  ASSERT_TRUE(a.ok()) << a.error().message;
  struct stat st;
  ASSERT_EQ(::stat((lock_dir_ + "/nested").c_str(), &st), 0);
  // Only root may create or lock range files: another user could otherwise squat every range.
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((lock_dir_ + "/nested/" + std::to_string(a->index()) + ".lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
}

TEST_F(IdRangeTest, HostBaseIsBasePlusIndexTimesSizeAndRangesNeverOverlap) {
  IdRangeAllocator ids(lock_dir_);
  std::vector<IdRange> held;
  for (int i = 0; i < 8; ++i) {
    auto r = ids.allocate(static_cast<uint32_t>(1 + i * 1000));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->host_base(), 0x40000000u + r->index() * 65536u);
    held.push_back(std::move(r).value());
  }
  for (size_t i = 0; i < held.size(); ++i) {
    for (size_t j = i + 1; j < held.size(); ++j) {
      uint64_t a = held[i].host_base(), b = held[j].host_base();
      EXPECT_TRUE(a + kIdRangeSize <= b || b + kIdRangeSize <= a)
          << "ranges " << held[i].index() << " and " << held[j].index() << " overlap";
    }
  }
  // The first range starts at the base; the last ends exactly at 0x80000000 (no uint32 overflow).
  auto first = ids.try_acquire(0);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->host_base(), kIdRangeBase);
  auto last = ids.try_acquire(kIdRangeCount - 1);
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(uint64_t{last->host_base()} + kIdRangeSize, 0x80000000ull);
}

TEST_F(IdRangeTest, ReleasedRangeIsReusableAndItsLockFileIsGone) {
  IdRangeAllocator ids(lock_dir_);
  auto a = ids.try_acquire(7);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(exists(lock_file(7)));
  a->release();
  EXPECT_FALSE(a->held());
  EXPECT_FALSE(exists(lock_file(7)));
  auto again = ids.try_acquire(7);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->index(), 7u);
  a->release();  // a second release of the old handle must not touch the new owner's file
  EXPECT_TRUE(exists(lock_file(7)));
  EXPECT_FALSE(ids.try_acquire(7).ok());
}

TEST_F(IdRangeTest, DestructorReleases) {
  IdRangeAllocator ids(lock_dir_);
  {
    auto a = ids.try_acquire(3);
    ASSERT_TRUE(a.ok()) << a.error().message;
  }
  EXPECT_FALSE(exists(lock_file(3)));
  EXPECT_TRUE(ids.try_acquire(3).ok());
}

TEST_F(IdRangeTest, MoveTransfersOwnershipAndMoveAssignReleasesTheOldRange) {
  IdRangeAllocator ids(lock_dir_);
  auto a = ids.try_acquire(1);
  ASSERT_TRUE(a.ok());
  IdRange moved(std::move(*a));
  EXPECT_FALSE(a->held());
  EXPECT_TRUE(moved.held());
  EXPECT_EQ(moved.index(), 1u);
  a->release();  // the moved-from handle owns nothing
  EXPECT_TRUE(exists(lock_file(1)));

  auto b = ids.try_acquire(2);
  ASSERT_TRUE(b.ok());
  moved = std::move(*b);  // range 1 is released, range 2 is now owned by `moved`
  EXPECT_EQ(moved.index(), 2u);
  EXPECT_FALSE(exists(lock_file(1)));
  EXPECT_TRUE(ids.try_acquire(1).ok());
  EXPECT_FALSE(ids.try_acquire(2).ok());
}

TEST_F(IdRangeTest, TryAcquireOfAHeldIndexFailsWithEbusy) {
  IdRangeAllocator ids(lock_dir_);
  auto a = ids.try_acquire(42);
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = ids.try_acquire(42);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().errnum, EBUSY);
  EXPECT_NE(b.error().message.find("42"), std::string::npos) << b.error().message;
  // A second allocator on the same directory (another airlock process) sees the same.
  IdRangeAllocator other(lock_dir_);
  auto c = other.try_acquire(42);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().errnum, EBUSY);
}

TEST_F(IdRangeTest, PlantedSymlinkLockFileIsNotFollowed) {
  // Attack: a symlink at the lock path would make us create/lock (and later unlink) a file of
  // the attacker's choosing. O_NOFOLLOW must refuse it, and the victim must stay untouched.
  ASSERT_EQ(::mkdir(lock_dir_.c_str(), 0700), 0);
  std::string victim = root_ + "/victim";
  ASSERT_EQ(::symlink(victim.c_str(), lock_file(9).c_str()), 0);
  IdRangeAllocator ids(lock_dir_);
  auto r = ids.try_acquire(9);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().errnum, ELOOP);
  EXPECT_FALSE(exists(victim));
}

TEST_F(IdRangeTest, ChildHoldingARangeBlocksTheParentUntilItDiesWithoutReleasing) {
  IdRangeAllocator ids(lock_dir_);
  HoldingChild child([&] {
    auto r = ids.try_acquire(5);
    if (!r.ok()) return 'n';
    static IdRange keep;  // outlives the lambda; _exit never runs its destructor
    keep = std::move(r).value();
    return 'y';
  });
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.report(), 'y');

  auto taken = ids.try_acquire(5);
  ASSERT_FALSE(taken.ok()) << "parent took range 5 while the child holds it";
  EXPECT_EQ(taken.error().errnum, EBUSY);
  auto other = ids.allocate(5);
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_EQ(other->index(), 6u);

  int status = child.finish();
  ASSERT_TRUE(WIFEXITED(status));
  // The child never released: its lock file is still there, but the kernel dropped its lock.
  EXPECT_TRUE(exists(lock_file(5)));
  auto after = ids.try_acquire(5);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->index(), 5u);
}

TEST_F(IdRangeTest, ChildAllocationSkipsTheParentsRange) {
  IdRangeAllocator ids(lock_dir_);
  auto mine = ids.allocate(0);
  ASSERT_TRUE(mine.ok()) << mine.error().message;
  ASSERT_EQ(mine->index(), 0u);
  // The child inherits the parent's lock fd; its own open must still conflict with it.
  HoldingChild child([&]() -> char {
    auto r = ids.allocate(0);
    if (!r.ok()) return 'E';
    char index = static_cast<char>('0' + r->index());
    static IdRange keep;
    keep = std::move(r).value();
    return index;
  });
  ASSERT_TRUE(child.started());
  EXPECT_EQ(child.report(), '1');
  // While the child holds 1, the parent's next allocation gets 2.
  auto next = ids.allocate(0);
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(next->index(), 2u);
  child.finish();
  EXPECT_TRUE(ids.try_acquire(1).ok());
}

TEST_F(IdRangeTest, ExhaustionReturnsEagain) {
  IdRangeAllocator ids(lock_dir_, 0, 3);
  std::vector<IdRange> held;
  std::set<uint32_t> indexes;
  for (int i = 0; i < 3; ++i) {
    auto r = ids.allocate();
    ASSERT_TRUE(r.ok()) << r.error().message;
    indexes.insert(r->index());
    held.push_back(std::move(r).value());
  }
  EXPECT_EQ(indexes, (std::set<uint32_t>{0, 1, 2}));
  auto none = ids.allocate(1);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().errnum, EAGAIN);
  EXPECT_NE(none.error().message.find("all 3 ranges are in use"), std::string::npos) << none.error().message;
  held[1].release();
  auto freed = ids.allocate();
  ASSERT_TRUE(freed.ok()) << freed.error().message;
  EXPECT_EQ(freed->index(), held[1].index());
}

TEST_F(IdRangeTest, NoConfiguredRangesIsAnError) {
  IdRangeAllocator ids(lock_dir_, 0, 0);
  EXPECT_FALSE(ids.allocate().ok());
}

TEST_F(IdRangeTest, HintWrapsAround) {
  IdRangeAllocator ids(lock_dir_, 0, 4);
  std::vector<uint32_t> order;
  std::vector<IdRange> held;
  for (int i = 0; i < 4; ++i) {
    auto r = ids.allocate(2);
    ASSERT_TRUE(r.ok()) << r.error().message;
    order.push_back(r->index());
    held.push_back(std::move(r).value());
  }
  EXPECT_EQ(order, (std::vector<uint32_t>{2, 3, 0, 1}));
}

TEST_F(IdRangeTest, HintPastTheCountWraps) {
  IdRangeAllocator ids(lock_dir_, 0, 4);
  auto r = ids.allocate(6);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->index(), 2u);
}

TEST_F(IdRangeTest, IndexesStayWithinFirstAndCount) {
  IdRangeAllocator ids(lock_dir_, 100, 2);
  auto a = ids.allocate();
  auto b = ids.allocate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((std::set<uint32_t>{a->index(), b->index()}), (std::set<uint32_t>{100, 101}));
  EXPECT_EQ(a->host_base(), kIdRangeBase + a->index() * kIdRangeSize);
  auto c = ids.allocate();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().errnum, EAGAIN);
}

}  // namespace
}  // namespace airlock
