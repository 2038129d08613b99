// Unit tests of the emulated machine: topology, allocator, faults, COW,
// fork/exit, shared memory, pins, fills and digests, invariants, determinism.
// Expected outcomes follow kernel-semantics.md (cited) and the 2.6.33 fault
// paths described in server/core/mm.cc.
#include <cstring>
#include <map>
#include <random>

#include "gtest/gtest.h"
#include "server/core/machine.h"
#include "server/core/mem/page_frame.h"
#include "server/core/mem/sha256.h"
#include "tests/testing/machine_fixture.h"

namespace memnode {
namespace {

using testing::PfnAt;
using testing::ReadAll;
using testing::SmallMachine;
using testing::Unwrap;
using testing::WriteStr;

constexpr Vaddr kBase = Machine::kMmapBase;
constexpr uint32_t kRW = kProtRead | kProtWrite;

Vaddr MapAnon(Machine& m, Pid pid, uint64_t len, uint32_t prot = kRW, bool shared = false) {
  MmapResult r = Unwrap(m.Mmap(pid, 0, len, prot, shared, false));
  EXPECT_EQ(r.err, Errno::kOk);
  return r.address;
}

Pid NewProc(Machine& m, NodeId home = 0) {
  ProcessParams pp;
  pp.home_node = home;
  return Unwrap(m.CreateProcess(pp));
}

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(Sha256::Hex(Sha256::Of("abc", 3)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256::Hex(Sha256::Of("", 0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string million(1000000, 'a');
  EXPECT_EQ(Sha256::Hex(Sha256::Of(million.data(), million.size())),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(MachineTest, TopologyAndContiguousPfns) {
  auto m = SmallMachine(2, 4, 64);
  MachineInfo mi = m->Info();
  EXPECT_EQ(mi.total_pages, 2u * 4 * 64);
  ASSERT_EQ(mi.nodes.size(), 2u);
  // pfn 0 is the shared zero page (reserved), so node 0 has one page fewer free.
  EXPECT_EQ(mi.nodes[0].free_pages, 4u * 64 - 1);
  EXPECT_EQ(mi.nodes[0].reserved_pages, 1u);
  EXPECT_EQ(mi.nodes[1].free_pages, 4u * 64);
  // Node 0's blocks first, then node 1's.
  EXPECT_EQ(Unwrap(m->GetFrame(255)).node, 0u);
  EXPECT_EQ(Unwrap(m->GetFrame(256)).node, 1u);
  EXPECT_EQ(Unwrap(m->GetFrame(256)).block, 4u);
  EXPECT_EQ(Unwrap(m->GetFrame(0)).state, PageState::kZero);
  EXPECT_EQ(m->GetFrame(512).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(MachineTest, BadTopologyRejected) {
  MachineConfig c;
  c.pages_per_block = 100;  // not a multiple of 64
  EXPECT_EQ(Machine::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = MachineConfig();
  c.nodes = 0;
  EXPECT_EQ(Machine::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = MachineConfig();
  c.profile = "linux-6.18";
  EXPECT_EQ(Machine::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MachineTest, TerabyteMachineIsCheapUntilTouched) {
  MachineConfig c;
  c.nodes = 2;
  c.blocks_per_node = 4096;  // 2 x 4096 x 128 MiB = 1 TiB
  c.pages_per_block = 32768;
  auto m = Machine::Create(c);
  ASSERT_TRUE(m.ok());
  HostMemory hm = (*m)->HostMemoryUsage();
  // Only block 0 (the zero page) has frame metadata: 32768 x 32 bytes.
  EXPECT_LE(hm.frame_bytes, 32768u * sizeof(PageFrame));
  EXPECT_LT(hm.frame_bytes + hm.block_bytes, 4u << 20);
  EXPECT_LE(sizeof(PageFrame), 64u);  // no larger than struct page
}

TEST(MachineTest, WriteAllocatesOnHomeNodeAndFallsBack) {
  auto m = SmallMachine(2, 1, 64);  // 64 pages per node
  Pid p0 = NewProc(*m, 0), p1 = NewProc(*m, 1);
  Vaddr a0 = MapAnon(*m, p0, 64 * kPageSize), a1 = MapAnon(*m, p1, kPageSize);
  EXPECT_EQ(WriteStr(*m, p1, a1, "x"), Errno::kOk);
  EXPECT_GE(PfnAt(*m, p1, a1), 64u);  // node 1's pfns are 64..127
  // Node 0 has 63 free pages: the 64th write falls back to node 1.
  for (int i = 0; i < 64; ++i) ASSERT_EQ(WriteStr(*m, p0, a0 + i * kPageSize, "y"), Errno::kOk);
  EXPECT_LT(PfnAt(*m, p0, a0), 64u);
  EXPECT_GE(PfnAt(*m, p0, a0 + 63 * kPageSize), 64u);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, EnomemWhenEveryNodeIsFullKeepsEarlierBytes) {
  auto m = SmallMachine(1, 1, 64);  // 63 usable pages
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 70 * kPageSize);
  AccessResult r = Unwrap(m->Fill(p, a, 70 * kPageSize, FillPattern{FillPattern::kRandom, 1}));
  EXPECT_EQ(r.err, Errno::kENOMEM);
  EXPECT_EQ(r.bytes_done, 63 * kPageSize);
  EXPECT_EQ(r.fault_address, a + 63 * kPageSize);
  EXPECT_EQ(m->Info().nodes[0].free_pages, 0u);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, FaultErrnos) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  Vaddr ro = MapAnon(*m, p, kPageSize, kProtRead);
  Vaddr none = MapAnon(*m, p, kPageSize, 0);
  std::string before = m->Check().state_digest;
  // Outside any mapping: EFAULT, nothing done.
  AccessResult r = Unwrap(m->Write(p, 0x1000, reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(r.err, Errno::kEFAULT);
  EXPECT_EQ(r.bytes_done, 0u);
  // Read-only mapping: EACCES on write.
  EXPECT_EQ(WriteStr(*m, p, ro, "a"), Errno::kEACCES);
  // PROT_NONE: even reads fault.
  EXPECT_EQ(Unwrap(m->Read(p, none, 1)).err, Errno::kEACCES);
  // A write that runs off the end of a mapping changes nothing.
  Vaddr rw = MapAnon(*m, p, kPageSize);
  std::string two_pages(2 * kPageSize, 'z');
  before = m->Check().state_digest;
  EXPECT_EQ(WriteStr(*m, p, rw, two_pages), Errno::kEFAULT);
  EXPECT_EQ(m->Check().state_digest, before);
}

TEST(MachineTest, TouchMapsZeroPageWriteCopiesIt) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 2 * kPageSize);
  EXPECT_EQ(PfnAt(*m, p, a), kNoPfn);
  EXPECT_EQ(Unwrap(m->Touch(p, a, 2 * kPageSize)).err, Errno::kOk);
  auto t = Unwrap(m->Translate(p, a, 2));
  EXPECT_TRUE(t[0].present);
  EXPECT_EQ(t[0].state, PageState::kZero);
  EXPECT_EQ(t[0].pfn, 0u);
  // A read fault gives the vma no anon_vma (ksmd would skip it).
  EXPECT_FALSE(Unwrap(m->GetProcess(p)).vmas[0].anon_vma);
  EXPECT_EQ(ReadAll(*m, p, a, 4), std::string(4, '\0'));
  EXPECT_EQ(WriteStr(*m, p, a + 1, "Q"), Errno::kOk);
  t = Unwrap(m->Translate(p, a, 1));
  EXPECT_EQ(t[0].state, PageState::kAnon);
  EXPECT_NE(t[0].pfn, 0u);
  EXPECT_EQ(ReadAll(*m, p, a, 3), std::string("\0Q\0", 3));
  EXPECT_TRUE(Unwrap(m->GetProcess(p)).vmas[0].anon_vma);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, ForkIsCopyOnWrite) {
  auto m = SmallMachine();
  Pid parent = NewProc(*m);
  Vaddr a = MapAnon(*m, parent, 3 * kPageSize);
  ASSERT_EQ(Unwrap(m->Fill(parent, a, 3 * kPageSize, FillPattern{FillPattern::kByte, 'p'})).err,
            Errno::kOk);
  Pfn p0 = PfnAt(*m, parent, a), p1 = PfnAt(*m, parent, a + kPageSize);
  uint64_t free_before = m->Info().nodes[0].free_pages;
  Pid child = Unwrap(m->Fork(parent));
  // No page is copied by fork itself.
  EXPECT_EQ(m->Info().nodes[0].free_pages, free_before);
  EXPECT_EQ(PfnAt(*m, child, a), p0);
  EXPECT_EQ(Unwrap(m->GetFrame(p0)).mapcount, 2);
  // The child's write copies; the parent keeps its page and data.
  EXPECT_EQ(WriteStr(*m, child, a, "child"), Errno::kOk);
  EXPECT_NE(PfnAt(*m, child, a), p0);
  EXPECT_EQ(PfnAt(*m, parent, a), p0);
  EXPECT_EQ(ReadAll(*m, parent, a, 5), "ppppp");
  EXPECT_EQ(ReadAll(*m, child, a, 5), "child");
  EXPECT_EQ(Unwrap(m->GetFrame(p0)).mapcount, 1);
  // Untouched pages stay shared.
  EXPECT_EQ(PfnAt(*m, child, a + 2 * kPageSize), PfnAt(*m, parent, a + 2 * kPageSize));
  // The parent's write to a shared page copies too; afterwards the child is
  // the sole mapper of the old page and writes it in place.
  EXPECT_EQ(WriteStr(*m, parent, a + kPageSize, "parent"), Errno::kOk);
  EXPECT_NE(PfnAt(*m, parent, a + kPageSize), p1);
  EXPECT_EQ(WriteStr(*m, child, a + kPageSize, "again"), Errno::kOk);
  EXPECT_EQ(PfnAt(*m, child, a + kPageSize), p1);
  // The parent's sole page p0 is written in place.
  EXPECT_EQ(WriteStr(*m, parent, a, "P"), Errno::kOk);
  EXPECT_EQ(PfnAt(*m, parent, a), p0);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, SharedAnonymousMemoryStaysShared) {
  auto m = SmallMachine();
  Pid parent = NewProc(*m);
  Vaddr a = MapAnon(*m, parent, 2 * kPageSize, kRW, /*shared=*/true);
  EXPECT_EQ(WriteStr(*m, parent, a, "before"), Errno::kOk);
  Pid child = Unwrap(m->Fork(parent));
  EXPECT_EQ(ReadAll(*m, child, a, 6), "before");
  EXPECT_EQ(WriteStr(*m, child, a, "after!"), Errno::kOk);
  EXPECT_EQ(ReadAll(*m, parent, a, 6), "after!");
  EXPECT_EQ(Unwrap(m->Translate(parent, a, 1))[0].state, PageState::kShmem);
  // The object's pages outlive one mapping and are freed with the last one.
  uint64_t free_before = m->Info().nodes[0].free_pages;
  EXPECT_EQ(Unwrap(m->Munmap(parent, a, 2 * kPageSize)), Errno::kOk);
  EXPECT_EQ(m->Info().nodes[0].free_pages, free_before);
  EXPECT_EQ(ReadAll(*m, child, a, 6), "after!");
  Unwrap(m->Exit(child));
  EXPECT_EQ(m->Info().nodes[0].free_pages, free_before + 1);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, MunmapAndExitFreePages) {
  auto m = SmallMachine();
  uint64_t free0 = m->Info().nodes[0].free_pages;
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 8 * kPageSize);
  Unwrap(m->Fill(p, a, 8 * kPageSize, FillPattern{FillPattern::kRandom, 9}));
  EXPECT_EQ(m->Info().nodes[0].free_pages, free0 - 8);
  EXPECT_EQ(Unwrap(m->Munmap(p, a, 2 * kPageSize)), Errno::kOk);
  EXPECT_EQ(m->Info().nodes[0].free_pages, free0 - 6);
  EXPECT_EQ(Unwrap(m->Read(p, a, 1)).err, Errno::kEFAULT);
  EXPECT_EQ(Unwrap(m->Exit(p)), 6u);
  EXPECT_EQ(m->Info().nodes[0].free_pages, free0);
  EXPECT_EQ(m->GetProcess(p).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m->Info().process_count, 0u);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, PinsHoldFramesUntilUnpinnedOrExit) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 2 * kPageSize);
  EXPECT_EQ(Unwrap(m->Pin(p, a, kPageSize)).err, Errno::kEFAULT);  // nothing there yet
  WriteStr(*m, p, a, "pinned");
  PinResult pr = Unwrap(m->Pin(p, a, kPageSize));
  EXPECT_EQ(pr.err, Errno::kOk);
  EXPECT_EQ(pr.pages, 1u);
  Pfn pfn = PfnAt(*m, p, a);
  FrameInfo fi = Unwrap(m->GetFrame(pfn));
  EXPECT_EQ(fi.pins, 1);
  EXPECT_EQ(fi.refcount, 2);
  // Unmapped but pinned: the frame survives with refcount 1, mapcount 0.
  Unwrap(m->Munmap(p, a, kPageSize));
  fi = Unwrap(m->GetFrame(pfn));
  EXPECT_EQ(fi.state, PageState::kAnon);
  EXPECT_EQ(fi.mapcount, 0);
  EXPECT_EQ(fi.refcount, 1);
  EXPECT_INVARIANTS(*m);
  EXPECT_EQ(Unwrap(m->Unpin(p, a, kPageSize)).pages, 1u);
  EXPECT_EQ(Unwrap(m->GetFrame(pfn)).state, PageState::kFree);
  EXPECT_EQ(Unwrap(m->Unpin(p, a, kPageSize)).err, Errno::kEINVAL);
  // Exit releases pins.
  WriteStr(*m, p, a + kPageSize, "again");
  Unwrap(m->Pin(p, a + kPageSize, kPageSize));
  Pfn pfn2 = PfnAt(*m, p, a + kPageSize);
  Unwrap(m->Exit(p));
  EXPECT_EQ(Unwrap(m->GetFrame(pfn2)).state, PageState::kFree);
  EXPECT_INVARIANTS(*m);
}

// splitmix64 as documented for FillMemoryRequest.random_seed.
uint64_t Splitmix(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

TEST(MachineTest, FillPatternsMatchTheirDefinitions) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 4 * kPageSize);
  const uint64_t len = 2 * kPageSize + 100;
  const Vaddr start = a + 37;  // unaligned on purpose
  Unwrap(m->Fill(p, start, len, FillPattern{FillPattern::kRandom, 42}));
  std::string got = ReadAll(*m, p, start, len);
  uint64_t state = 42;
  std::string want;
  while (want.size() < len) {
    uint64_t v = Splitmix(state);
    for (int i = 0; i < 8 && want.size() < len; ++i)
      want.push_back(static_cast<char>(v >> (8 * i)));
  }
  EXPECT_EQ(got, want);
  Unwrap(m->Fill(p, start, len, FillPattern{FillPattern::kPattern64, 0x0123456789abcdefULL}));
  got = ReadAll(*m, p, start, len);
  for (uint64_t k = 0; k < len; ++k)
    ASSERT_EQ(static_cast<uint8_t>(got[k]),
              static_cast<uint8_t>(0x0123456789abcdefULL >> (8 * (k % 8))));
  EXPECT_EQ(ReadAll(*m, p, a, 37), std::string(37, '\0'));  // bytes before untouched
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, DigestIsShaOfPerPageShas) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  Vaddr a = MapAnon(*m, p, 4 * kPageSize);
  Unwrap(m->Fill(p, a + kPageSize, kPageSize, FillPattern{FillPattern::kRandom, 3}));
  const Vaddr start = a + 100;
  const uint64_t len = 3 * kPageSize;
  std::string bytes = ReadAll(*m, p, start, len);
  Sha256 outer;
  uint64_t done = 0;
  while (done < len) {
    uint64_t off = (start + done) % kPageSize;
    uint64_t n = std::min(kPageSize - off, len - done);
    auto d = Sha256::Of(bytes.data() + done, n);
    outer.Update(d.data(), d.size());
    done += n;
  }
  DigestResult dr = Unwrap(m->Digest(p, start, len));
  EXPECT_EQ(dr.digest, Sha256::Hex(outer.Finish()));
  EXPECT_EQ(dr.populated_pages, 1u);
}

TEST(MachineTest, MmapPlacementAndErrors) {
  auto m = SmallMachine();
  Pid p = NewProc(*m);
  EXPECT_EQ(MapAnon(*m, p, kPageSize), kBase);
  EXPECT_EQ(MapAnon(*m, p, 3 * kPageSize), kBase + kPageSize);
  EXPECT_EQ(Unwrap(m->Mmap(p, 0, 0, kRW, false, false)).err, Errno::kEINVAL);
  EXPECT_EQ(Unwrap(m->Mmap(p, kBase + 1, kPageSize, kRW, false, true)).err, Errno::kEINVAL);
  EXPECT_EQ(Unwrap(m->Mmap(p, 0, kPageSize, 8, false, false)).err, Errno::kEINVAL);
  EXPECT_EQ(Unwrap(m->Munmap(p, kBase + 5, kPageSize)), Errno::kEINVAL);
  // MAP_FIXED over an existing mapping replaces it.
  WriteStr(*m, p, kBase, "old");
  EXPECT_EQ(Unwrap(m->Mmap(p, kBase, kPageSize, kRW, false, true)).address, kBase);
  EXPECT_EQ(ReadAll(*m, p, kBase, 3), std::string(3, '\0'));
  // mprotect over a hole: ENOMEM (parts before it changed).
  Unwrap(m->Munmap(p, kBase + 2 * kPageSize, kPageSize));
  EXPECT_EQ(Unwrap(m->Mprotect(p, kBase, 4 * kPageSize, kProtRead)), Errno::kENOMEM);
  EXPECT_EQ(WriteStr(*m, p, kBase + kPageSize, "x"), Errno::kEACCES);
  EXPECT_INVARIANTS(*m);
}

TEST(MachineTest, UnknownProcessIsNotFound) {
  auto m = SmallMachine();
  EXPECT_EQ(m->Fork(99).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m->Mmap(99, 0, 1, kRW, false, false).status().code(), absl::StatusCode::kNotFound);
  ProcessParams pp;
  pp.home_node = 7;
  EXPECT_EQ(m->CreateProcess(pp).status().code(), absl::StatusCode::kOutOfRange);
}

// Applies the same pseudo-random operations to a machine and checks every
// process's memory against a shadow after each step.
class Driver {
 public:
  Driver(Machine& m, uint64_t seed) : m_(m), rng_(seed) {}
  void Step() {
    std::uniform_int_distribution<int> op(0, 9);
    if (procs_.empty()) {
      Spawn();
      return;
    }
    auto it = procs_.begin();
    std::advance(it, rng_() % procs_.size());
    Pid pid = it->first;
    std::string& shadow = it->second;
    switch (op(rng_)) {
      case 0:
        if (procs_.size() < 6) Spawn();
        break;
      case 1: {
        if (procs_.size() >= 6) break;
        Pid child = Unwrap(m_.Fork(pid));
        procs_[child] = procs_[pid];
        break;
      }
      case 2:
        if (procs_.size() > 1) {
          Unwrap(m_.Exit(pid));
          procs_.erase(pid);
        }
        break;
      case 3: {
        uint64_t page = rng_() % kPages;
        Unwrap(m_.Touch(pid, kBase + page * kPageSize, 1));
        break;
      }
      case 4: {
        uint64_t page = rng_() % kPages;
        Unwrap(m_.Madvise(pid, kBase + page * kPageSize, kPageSize, Advice::kDontNeed));
        std::fill(shadow.begin() + page * kPageSize, shadow.begin() + (page + 1) * kPageSize, '\0');
        break;
      }
      default: {
        uint64_t off = rng_() % (kPages * kPageSize);
        uint64_t len = 1 + rng_() % (2 * kPageSize);
        len = std::min(len, kPages * kPageSize - off);
        std::string data(len, static_cast<char>('a' + rng_() % 4));
        AccessResult r =
            Unwrap(m_.Write(pid, kBase + off, reinterpret_cast<const uint8_t*>(data.data()), len));
        if (r.err == Errno::kOk)
          shadow.replace(off, len, data);
        else
          ASSERT_EQ(r.err, Errno::kENOMEM);
        if (r.err == Errno::kENOMEM)
          shadow.replace(off, r.bytes_done, data.substr(0, r.bytes_done));
        break;
      }
    }
  }
  void Verify() {
    for (auto& [pid, shadow] : procs_)
      ASSERT_EQ(ReadAll(m_, pid, kBase, shadow.size()), shadow) << "pid " << pid;
    EXPECT_INVARIANTS(m_);
  }

 private:
  static constexpr uint64_t kPages = 12;
  void Spawn() {
    ProcessParams pp;
    pp.home_node = rng_() % 2;
    Pid p = Unwrap(m_.CreateProcess(pp));
    ASSERT_EQ(Unwrap(m_.Mmap(p, kBase, kPages * kPageSize, kRW, false, true)).err, Errno::kOk);
    procs_[p] = std::string(kPages * kPageSize, '\0');
  }
  Machine& m_;
  std::mt19937_64 rng_;
  std::map<Pid, std::string> procs_;
};

TEST(MachineTest, RandomizedOperationsKeepInvariantsAndContents) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    auto m = SmallMachine(2, 2, 64);
    Driver d(*m, seed);
    for (int i = 0; i < 250; ++i) {
      d.Step();
      d.Verify();
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "seed " << seed << " step " << i;
        return;
      }
    }
  }
}

TEST(MachineTest, SameCallsSameDigest) {
  auto a = SmallMachine(), b = SmallMachine();
  for (int round = 0; round < 2; ++round) {
    Driver da(*a, 77), db(*b, 77);
    for (int i = 0; i < 150; ++i) {
      da.Step();
      db.Step();
    }
  }
  EXPECT_EQ(a->Check().state_digest, b->Check().state_digest);
  Pid p = NewProc(*b);
  (void)p;
  EXPECT_NE(a->Check().state_digest, b->Check().state_digest);
}

}  // namespace
}  // namespace memnode
