// ModelDriver's memory operations (model_driver.h): processes (create,
// fork, exit), mmap (private, shared, MAP_FIXED), writes and fills against
// the shadow copy, madvise (MERGEABLE, UNMERGEABLE, DONTNEED), munmap,
// mprotect, pin/unpin.
#include "tests/testing/model_driver.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/machine.h"
#include "server/core/names.h"
#include "server/core/types.h"
#include "tests/testing/model_driver_check.h"

namespace memnode::testing {

void ModelDriver::NewMapping(Pid pid) {
  Space& s = shadow_[pid];
  if (s.size() >= kMaxPagesPerProcess) return;
  uint64_t pages = 1 + Rand(std::min(kMaxMappingPages, kMaxPagesPerProcess - s.size()));
  bool shared = Chance(15);
  uint32_t prot = Chance(10) ? kProtRead : kProtRead | kProtWrite;
  Vaddr hint = 0;
  bool fixed = false;
  if (!s.empty() && Chance(15)) {  // MAP_FIXED over (part of) a mapping
    auto it = s.begin();
    std::advance(it, Rand(s.size()));
    hint = it->first << kPageShift;
    fixed = true;
  }
  auto r = m_->Mmap(pid, hint, pages * kPageSize, prot, shared, fixed);
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(r->err == Errno::kOk) << r->err;
  if (fixed) {
    MD_EXPECT(r->address == hint) << r->address;
  }
  uint64_t first = r->address >> kPageShift;
  for (uint64_t i = 0; i < pages; ++i) s[first + i] = ShadowPage{ZeroPage(), prot, shared};
  if (shared) cov_->shared_maps++;
  absl::StrAppend(&op_, " mmap pid ", pid.value(), " 0x", absl::Hex(r->address), " pages ", pages,
                  shared ? " shared" : "", fixed ? " fixed" : "", " prot ", prot);
}

void ModelDriver::NewProcess() {
  ProcessParams pp;
  pp.home_node = static_cast<NodeId>(Rand(2));
  pp.privileged = Chance(30);
  auto p = m_->CreateProcess(pp);
  MD_ASSERT(p.ok()) << p.status();
  shadow_[*p];
  privileged_[*p] = pp.privileged;
  absl::StrAppend(&op_, " create pid ", (*p).value(), " home ", pp.home_node, " priv ",
                  pp.privileged);
  NewMapping(*p);
}

void ModelDriver::DoFork() {
  if (shadow_.size() >= kMaxProcesses) return DoWrite();
  Pid parent = AnyPid();
  auto c = m_->Fork(parent);
  MD_ASSERT(c.ok()) << c.status();
  Space& child = shadow_[*c];
  for (const auto& [vpn, pg] : shadow_[parent]) {
    ShadowPage copy = pg;  // MAP_SHARED: the same object
    if (!pg.shared) copy.data = std::make_shared<std::vector<uint8_t>>(*pg.data);
    child[vpn] = copy;
  }
  privileged_[*c] = privileged_[parent];
  absl::StrAppend(&op_, " fork ", parent.value(), " -> ", (*c).value());
}

void ModelDriver::DoForkAndWriteKsm() {
  if (shadow_.size() >= kMaxProcesses) return DoKsmStep();
  std::vector<std::pair<Pid, Vaddr>> ksm;
  for (const auto& [key, pfn] : KsmPages()) ksm.push_back(key);
  if (ksm.empty()) return DoFork();
  const auto [parent, addr] = ksm[Rand(ksm.size())];
  if (!Writable(parent, addr, 1)) return DoFork();
  auto c = m_->Fork(parent);
  MD_ASSERT(c.ok()) << c.status();
  Space& child = shadow_[*c];
  for (const auto& [vpn, pg] : shadow_[parent]) {
    ShadowPage copy = pg;
    if (!pg.shared) copy.data = std::make_shared<std::vector<uint8_t>>(*pg.data);
    child[vpn] = copy;
  }
  privileged_[*c] = privileged_[parent];
  // The parent's write breaks COW of its KSM page; the child keeps it.
  const uint8_t byte = kPatterns[Rand(sizeof(kPatterns))];
  const Vaddr at = addr + Rand(kPageSize);
  auto w = m_->Write(parent, at, &byte, 1);
  MD_ASSERT(w.ok()) << w.status();
  MD_ASSERT(w->err == Errno::kOk) << w->err;
  (*shadow_[parent][at >> kPageShift].data)[at % kPageSize] = byte;
  cov_->fork_writes++;
  absl::StrAppend(&op_, " fork ", parent.value(), " -> ", (*c).value(), " then write pid ",
                  parent.value(), " 0x", absl::Hex(at));
}

void ModelDriver::DoKsmNodelessScenario() {
  if (shadow_.size() >= kMaxProcesses || pins_.size() >= 3 || paused_) return DoKsmStep();
  Pid pid = AnyPid();
  std::vector<Vaddr> cand;
  for (const auto& [vpn, pg] : shadow_[pid])
    if (!pg.shared && Writable(pid, vpn << kPageShift, 1)) cand.push_back(vpn << kPageShift);
  if (cand.size() < 2) return DoWrite();
  size_t i = Rand(cand.size() - 1);
  const Vaddr a1 = cand[i], a2 = cand[i + 1 + Rand(cand.size() - i - 1)];
  std::vector<uint8_t> bytes(kPageSize, kPatterns[Rand(sizeof(kPatterns))]);
  for (Vaddr a : {a1, a2}) {
    auto w = m_->Write(pid, a, bytes.data(), kPageSize);
    MD_ASSERT(w.ok() && w->err == Errno::kOk) << w.status();
    *shadow_[pid][a >> kPageShift].data = bytes;
    auto md = m_->Madvise(pid, a, kPageSize, Advice::kMergeable);
    MD_ASSERT(md.ok()) << md.status();
  }
  auto c = m_->Fork(pid);
  MD_ASSERT(c.ok()) << c.status();
  Space& child = shadow_[*c];
  for (const auto& [vpn, pg] : shadow_[pid]) {
    ShadowPage copy = pg;
    if (!pg.shared) copy.data = std::make_shared<std::vector<uint8_t>>(*pg.data);
    child[vpn] = copy;
  }
  privileged_[*c] = privileged_[pid];
  // The lower page again (a private, writable copy), pinned.
  auto w = m_->Write(pid, a1, bytes.data(), kPageSize);
  MD_ASSERT(w.ok() && w->err == Errno::kOk) << w.status();
  bool already = false;
  for (const auto& [p, x] : pins_) already = already || (p == pid && x == a1);
  if (!already) {
    auto pin = m_->Pin(pid, a1, kPageSize);
    MD_ASSERT(pin.ok() && pin->err == Errno::kOk) << pin.status();
    pins_.emplace_back(pid, a1);
  }
  auto st = m_->KsmStepPasses(3, uint64_t{1} << 20);
  MD_ASSERT(st.ok()) << st.status();
  absl::StrAppend(&op_, " nodeless scenario pid ", pid.value(), " 0x", absl::Hex(a1), " 0x",
                  absl::Hex(a2), " fork -> ", (*c).value());
}

void ModelDriver::DoExit() {
  if (shadow_.size() <= 1) return NewProcess();
  Pid pid = AnyPid();
  auto e = m_->Exit(pid);
  MD_ASSERT(e.ok()) << e.status();
  shadow_.erase(pid);
  pins_.erase(
      std::remove_if(pins_.begin(), pins_.end(), [pid](const auto& x) { return x.first == pid; }),
      pins_.end());
  absl::StrAppend(&op_, " exit ", pid.value());
}

// Byte k of a fill stream (docs/API.md FillMemory: byte / 64-bit pattern / seeded SplitMix64).
uint8_t ModelDriver::FillByte(const FillPattern& fp, uint64_t k) {
  switch (fp.kind) {
    case FillPattern::kByte: return static_cast<uint8_t>(fp.value);
    case FillPattern::kPattern64: return static_cast<uint8_t>(fp.value >> (8 * (k % 8)));
    case FillPattern::kRandom: {
      uint64_t z = fp.value + (k / 8 + 1) * 0x9E3779B97F4A7C15ULL;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z ^= z >> 31;
      return static_cast<uint8_t>(z >> (8 * (k % 8)));
    }
  }
  return 0;
}

bool ModelDriver::Writable(Pid pid, Vaddr start, uint64_t count) {
  Space& s = shadow_[pid];
  for (uint64_t i = 0; i < count; ++i)
    if (!(s[(start >> kPageShift) + i].prot & kProtWrite)) return false;
  return true;
}

void ModelDriver::DoWrite() {
  Pid pid = AnyPid();
  Vaddr start;
  uint64_t count;
  if (!PickRange(pid, &start, &count)) return NewMapping(pid);
  Space& s = shadow_[pid];
  const uint64_t vpn0 = start >> kPageShift;
  if (!Writable(pid, start, count)) {
    // A write needs PROT_WRITE on every page; nothing is written.
    FillPattern fp;
    fp.value = kPatterns[Rand(sizeof(kPatterns))];
    auto r = m_->Fill(pid, start, count * kPageSize, fp);
    MD_ASSERT(r.ok()) << r.status();
    MD_EXPECT(r->err == Errno::kEACCES) << r->err;
    MD_EXPECT(r->bytes_done == 0u) << r->bytes_done;
    cov_->readonly_refusals++;
    absl::StrAppend(&op_, " fill read-only pid ", pid.value(), " 0x", absl::Hex(start), " -> ",
                    ErrnoName(r->err));
    return;
  }
  if (Chance(60)) {
    FillPattern fp;
    uint64_t kind = Rand(10);
    if (kind < 8) {
      fp.kind = FillPattern::kByte;
      fp.value = kPatterns[Rand(sizeof(kPatterns))];
    } else if (kind == 8) {
      fp.kind = FillPattern::kPattern64;
      fp.value = Chance(50) ? 0x0123456789abcdefULL : 0x5a5a5a5a5a5a5a5aULL;
    } else {
      fp.kind = FillPattern::kRandom;
      fp.value = 1 + Rand(3);
    }
    // Mostly whole pages, sometimes a partial range.
    uint64_t off = Chance(80) ? 0 : Rand(kPageSize);
    uint64_t len = count * kPageSize - off;
    if (Chance(20)) len = 1 + Rand(len);
    auto r = m_->Fill(pid, start + off, len, fp);
    MD_ASSERT(r.ok()) << r.status();
    MD_ASSERT(r->err == Errno::kOk) << r->err;
    MD_EXPECT(r->bytes_done == len) << r->bytes_done;
    for (uint64_t k = 0; k < len; ++k) {
      uint64_t a = off + k;
      (*s[vpn0 + a / kPageSize].data)[a % kPageSize] = FillByte(fp, k);
    }
    absl::StrAppend(&op_, " fill(", static_cast<int>(fp.kind), ") pid ", pid.value(), " 0x",
                    absl::Hex(start + off), " len ", len, " value 0x", absl::Hex(fp.value));
    return;
  }
  uint64_t off = Rand(kPageSize);
  uint64_t len = 1 + Rand(std::min<uint64_t>(count * kPageSize - off, 32));
  std::vector<uint8_t> data(len);
  bool same = Chance(50);
  for (uint64_t k = 0; k < len; ++k) {
    uint64_t a = off + k;
    data[k] =
        same ? (*s[vpn0 + a / kPageSize].data)[a % kPageSize] : static_cast<uint8_t>(Rand(256));
  }
  auto r = m_->Write(pid, start + off, data.data(), len);
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(r->err == Errno::kOk) << r->err;
  for (uint64_t k = 0; k < len; ++k) {
    uint64_t a = off + k;
    (*s[vpn0 + a / kPageSize].data)[a % kPageSize] = data[k];
  }
  absl::StrAppend(&op_, " write pid ", pid.value(), " 0x", absl::Hex(start + off), " len ", len,
                  same ? " same bytes" : "");
}

void ModelDriver::DoMadvise(Advice advice) {
  Pid pid = AnyPid();
  Vaddr start;
  uint64_t count;
  if (!PickRange(pid, &start, &count)) return;
  auto r = m_->Madvise(pid, start, count * kPageSize, advice);
  MD_ASSERT(r.ok()) << r.status();
  // SEMANTICS LOCK-3, LOCK-4, CH-3: never blocked by an offline.
  MD_ASSERT(*r == Errno::kOk) << *r;
  if (advice == Advice::kDontNeed) {
    // Private pages read as zero again; shmem keeps its object's pages.
    Space& s = shadow_[pid];
    for (uint64_t i = 0; i < count; ++i) {
      ShadowPage& pg = s[(start >> kPageShift) + i];
      if (!pg.shared) pg.data = ZeroPage();
    }
  }
  absl::StrAppend(&op_, " madvise(", static_cast<int>(advice), ") pid ", pid.value(), " 0x",
                  absl::Hex(start), " pages ", count);
}

void ModelDriver::DoMunmap() {
  Pid pid = AnyPid();
  Vaddr start;
  uint64_t count;
  if (!PickRange(pid, &start, &count)) return;
  auto r = m_->Munmap(pid, start, count * kPageSize);
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(*r == Errno::kOk) << *r;
  Space& s = shadow_[pid];
  for (uint64_t i = 0; i < count; ++i) s.erase((start >> kPageShift) + i);
  cov_->munmaps++;
  absl::StrAppend(&op_, " munmap pid ", pid.value(), " 0x", absl::Hex(start), " pages ", count);
}

void ModelDriver::DoMprotect() {
  Pid pid = AnyPid();
  Vaddr start;
  uint64_t count;
  if (!PickRange(pid, &start, &count)) return;
  uint64_t k = Rand(10);
  uint32_t prot = k < 6 ? kProtRead | kProtWrite : k < 9 ? kProtRead : 0;
  auto r = m_->Mprotect(pid, start, count * kPageSize, prot);
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(*r == Errno::kOk) << *r;
  Space& s = shadow_[pid];
  for (uint64_t i = 0; i < count; ++i) s[(start >> kPageShift) + i].prot = prot;
  cov_->mprotects++;
  absl::StrAppend(&op_, " mprotect pid ", pid.value(), " 0x", absl::Hex(start), " pages ", count,
                  " prot ", prot);
}

void ModelDriver::DoPin() {
  if (!pins_.empty() && Chance(50)) {
    size_t i = Rand(pins_.size());
    auto [pid, a] = pins_[i];
    pins_.erase(pins_.begin() + i);
    auto r = m_->Unpin(pid, a, kPageSize);
    MD_ASSERT(r.ok()) << r.status();
    MD_EXPECT(r->err == Errno::kOk) << r->err;
    absl::StrAppend(&op_, " unpin pid ", pid.value(), " 0x", absl::Hex(a));
    return;
  }
  if (pins_.size() >= 3) return;
  Pid pid = AnyPid();
  Vaddr start;
  uint64_t count;
  if (!PickRange(pid, &start, &count)) return;
  Vaddr a = start + Rand(count) * kPageSize;
  auto t = (*m_->Translate(pid, a, 1))[0];
  if (!t.present || t.pfn == 0) return;
  for (const auto& [p, x] : pins_)
    if (p == pid && x == a) return;
  auto r = m_->Pin(pid, a, kPageSize);
  MD_ASSERT(r.ok()) << r.status();
  MD_ASSERT(r->err == Errno::kOk) << r->err;
  pins_.emplace_back(pid, a);
  absl::StrAppend(&op_, " pin pid ", pid.value(), " 0x", absl::Hex(a));
}

}  // namespace memnode::testing
