// ModelDriver's other operations (model_driver.h): snapshot + restore (the
// driver goes on with the restored machine) and API misuse that must change
// nothing.
#include "tests/testing/model_driver.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/machine.h"
#include "server/core/status.h"
#include "server/core/types.h"
#include "tests/testing/model_driver_check.h"

namespace memnode::testing {

void ModelDriver::DoSnapshot() {
  auto s = m_->Snapshot();
  if (paused_) {
    MD_EXPECT(s.status().code() == absl::StatusCode::kFailedPrecondition) << s.status();
    MD_EXPECT(ErrorReason(s.status()) == "OFFLINE_IN_PROGRESS") << s.status();
    absl::StrAppend(&op_, " snapshot while paused -> refused");
    return;
  }
  MD_ASSERT(s.ok()) << s.status();
  std::string before = m_->Check().state_digest;
  auto r = Machine::Restore(*s);
  MD_ASSERT(r.ok()) << r.status();
  CheckResult c = (*r)->Check();
  MD_ASSERT(c.ok()) << absl::StrJoin(c.violations, "\n");
  MD_EXPECT(c.state_digest == before) << "restored digest " << c.state_digest << " != " << before;
  auto again = (*r)->Snapshot();
  MD_ASSERT(again.ok()) << again.status();
  MD_EXPECT(*again == *s) << "snapshot of the restored machine differs (" << again->size() << " vs "
                          << s->size() << " bytes)";
  m_ = std::move(*r);  // go on with the restored machine
  cov_->snapshots++;
  absl::StrAppend(&op_, " snapshot+restore ", s->size(), " bytes");
}

// API misuse that must change nothing: unknown pids and blocks, unaligned
// or overflowing ranges, invalid knob values.
void ModelDriver::DoMisuse() {
  cov_->misuses++;
  const Pid ghost = 100000 + static_cast<Pid>(Rand(1000));
  Pid pid = AnyPid();
  uint64_t k = Rand(10);
  switch (k) {
    case 0: {
      auto r = m_->Fill(ghost, Machine::kMmapBase, kPageSize, FillPattern{});
      MD_EXPECT(r.status().code() == absl::StatusCode::kNotFound) << r.status();
      break;
    }
    case 1: {
      auto r = m_->Munmap(pid, Machine::kMmapBase + 1, kPageSize);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(*r == Errno::kEINVAL) << *r;
      break;
    }
    case 2: {
      auto r = m_->Read(pid, ~uint64_t{0} - 10, 100);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(r->err == Errno::kEFAULT) << r->err;
      break;
    }
    case 3: {
      auto r = m_->Madvise(pid, Machine::kMmapBase, ~uint64_t{0} - 4096, Advice::kMergeable);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(*r != Errno::kOk) << *r;
      break;
    }
    case 4: {
      auto r = m_->KsmWriteSysfs("pages_to_scan", "not-a-number");
      MD_EXPECT(!r.ok() || *r == Errno::kEINVAL) << r.status();
      break;
    }
    case 5: {
      auto r = m_->OnlineBlock(1000 + static_cast<BlockId>(Rand(10)));
      MD_EXPECT(!r.ok()) << "online of a missing block";
      break;
    }
    case 6: {
      auto r = m_->MovePages(pid, pid, {Machine::kMmapBase - kPageSize * 7}, {0}, 2);
      MD_ASSERT(r.ok()) << r.status();
      if (r->err == Errno::kOk && r->status.size() == 1) {
        MD_EXPECT(r->status[0] == -14 || r->status[0] == -2) << r->status[0];
      }
      break;
    }
    case 7: {
      auto r = m_->Mbind(pid, Machine::kMmapBase, kPageSize, MemPolicy::kBind, 0, 2);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(*r == Errno::kEINVAL) << *r;
      break;
    }
    case 8: {
      auto r = m_->Unpin(pid, 0x1000, kPageSize);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(r->err == Errno::kEINVAL) << r->err;
      break;
    }
    default: {
      auto r = m_->Write(pid, 0x1000, reinterpret_cast<const uint8_t*>("x"), 1);
      MD_ASSERT(r.ok()) << r.status();
      MD_EXPECT(r->err == Errno::kEFAULT) << r->err;
      break;
    }
  }
  absl::StrAppend(&op_, " misuse ", k, " pid ", pid);
}

}  // namespace memnode::testing
