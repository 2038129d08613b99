// Overview: the emulator's byte-level access to a process's memory - write,
// fill, read, digest, touch (read fault), pin, translate - as a user program
// and get_user_pages would see it. Writes go through the fault path
// (fault.cc); reads never allocate; fills of one byte or a 64-bit pattern
// intern one page content for the whole range.
#include <algorithm>
#include <cstring>

#include "server/core/mem/sha256.h"
#include "server/core/mm/mm.h"
#include "server/core/status.h"

namespace memnode {
namespace {

constexpr uint64_t kSplitmixGamma = 0x9E3779B97F4A7C15ULL;

uint64_t SplitmixOutput(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * kSplitmixGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Byte k of a fill that starts at byte 0 of the range.
inline uint8_t PatternByte(const FillPattern& fp, uint64_t k) {
  switch (fp.kind) {
    case FillPattern::kByte: return static_cast<uint8_t>(fp.value);
    case FillPattern::kPattern64: return static_cast<uint8_t>(fp.value >> (8 * (k % 8)));
    case FillPattern::kRandom:
      return static_cast<uint8_t>(SplitmixOutput(fp.value, k / 8) >> (8 * (k % 8)));
  }
  return 0;
}

// Writes bytes [k, k+n) of the fill stream to dst.
void PatternBytes(const FillPattern& fp, uint64_t k, uint32_t n, uint8_t* dst) {
  if (fp.kind == FillPattern::kByte) {
    std::memset(dst, static_cast<int>(fp.value & 0xff), n);
    return;
  }
  uint32_t i = 0;
  while (i < n && (k + i) % 8 != 0) {
    dst[i] = PatternByte(fp, k + i);
    ++i;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w =
        fp.kind == FillPattern::kPattern64 ? fp.value : SplitmixOutput(fp.value, (k + i) / 8);
    std::memcpy(dst + i, &w, 8);  // little-endian host
  }
  for (; i < n; ++i) dst[i] = PatternByte(fp, k + i);
}

}  // namespace

Errno Mm::CheckAccess(Process& p, Vaddr addr, uint64_t len, uint32_t prot_needed, Vaddr* fault) {
  if (len == 0) return Errno::kOk;
  if (addr + len < addr) {
    *fault = addr;
    return Errno::kEFAULT;
  }
  Vaddr a = addr;
  const Vaddr end = addr + len;
  while (a < end) {
    Vma* v = FindVma(p, a);
    if (!v) {
      *fault = a;
      return Errno::kEFAULT;
    }
    // x86: any access needs some permission; a write needs PROT_WRITE.
    if (v->prot == 0 || (prot_needed & kProtWrite && !(v->prot & kProtWrite))) {
      *fault = a;
      return Errno::kEACCES;
    }
    a = v->end;
  }
  return Errno::kOk;
}

absl::StatusOr<AccessResult> Mm::Write(Pid pid, Vaddr addr, const uint8_t* data, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtWrite, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    Vma* v = FindVma(*p, a);
    Errno e = WritePage(*p, *v, vpn, off, n, data + done);
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = a;
      break;
    }
    done += n;
  }
  r.bytes_done = done;
  return r;
}

absl::StatusOr<AccessResult> Mm::Fill(Pid pid, Vaddr addr, uint64_t length,
                                      const FillPattern& pattern) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtWrite, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  // Full pages of a byte or 64-bit pattern all hold the same content: build
  // it once (its phase is fixed by the range's start).
  Content* same = nullptr;
  uint8_t partial[kPageSize];
  uint64_t done = 0;
  Vma* v = nullptr;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    if (!v || a >= v->end) v = FindVma(*p, a);
    Errno e;
    if (n == kPageSize) {
      Content* c;
      if (pattern.kind == FillPattern::kRandom) {
        PatternBytes(pattern, done, n, mem_.contents().scratch_bytes());
        c = mem_.contents().Intern(mem_.contents().scratch_bytes());
      } else {
        if (!same) {
          PatternBytes(pattern, done, n, mem_.contents().scratch_bytes());
          same = mem_.contents().Intern(mem_.contents().scratch_bytes());
        }
        c = same;
        mem_.contents().Ref(c);
      }
      e = StorePage(*p, *v, vpn, c);
    } else {
      PatternBytes(pattern, done, n, partial);
      e = WritePage(*p, *v, vpn, off, n, partial);
    }
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = a;
      break;
    }
    done += n;
  }
  if (same) mem_.contents().Unref(same);
  r.bytes_done = done;
  return r;
}

absl::StatusOr<ReadResult> Mm::Read(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  ReadResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  r.data.resize(length);
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    std::memcpy(&r.data[done], ContentAt(*p, a >> kPageShift)->bytes + off, n);
    done += n;
  }
  return r;
}

absl::StatusOr<DigestResult> Mm::Digest(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  DigestResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk) return r;
  Sha256 outer;
  uint64_t done = 0;
  while (done < length) {
    Vaddr a = addr + done;
    uint64_t vpn = a >> kPageShift;
    uint32_t off = static_cast<uint32_t>(a & ~kPageMask);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kPageSize - off, length - done));
    Content* c = ContentAt(*p, vpn);
    if (c != mem_.contents().zero()) r.populated_pages++;
    if (n == kPageSize) {
      const Sha256::Digest& d = mem_.contents().Digest(c);
      outer.Update(d.data(), d.size());
    } else {
      Sha256::Digest d = Sha256::Of(c->bytes + off, n);
      outer.Update(d.data(), d.size());
    }
    done += n;
  }
  r.digest = Sha256::Hex(outer.Finish());
  return r;
}

absl::StatusOr<AccessResult> Mm::Touch(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  AccessResult r;
  r.err = CheckAccess(*p, addr, length, kProtRead, &r.fault_address);
  if (r.err != Errno::kOk || length == 0) return r;
  uint64_t first = addr >> kPageShift, last = (addr + length - 1) >> kPageShift;
  for (uint64_t vpn = first; vpn <= last; ++vpn) {
    Errno e = ReadFault(*p, *FindVma(*p, vpn << kPageShift), vpn);
    if (e != Errno::kOk) {
      r.err = e;
      r.fault_address = std::max(addr, vpn << kPageShift);
      r.bytes_done = r.fault_address - addr;
      return r;
    }
  }
  r.bytes_done = length;
  return r;
}

absl::StatusOr<PinResult> Mm::Pin(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  PinResult r;
  if (!PageAligned(addr)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  uint64_t pages = (length + kPageSize - 1) >> kPageShift;
  uint64_t first = addr >> kPageShift;
  for (uint64_t i = 0; i < pages; ++i) {  // all or nothing
    auto it = p->ptes.find(first + i);
    if (it == p->ptes.end() || it->second.pfn == mem_.zero_pfn()) {
      r.err = Errno::kEFAULT;
      return r;
    }
  }
  for (uint64_t i = 0; i < pages; ++i) {
    Pfn pfn = p->ptes[first + i].pfn;
    PageFrame& f = mem_.Frame(pfn);
    f.pins++;
    f.refcount++;
    p->pins.emplace((first + i) << kPageShift, pfn);
  }
  r.pages = pages;
  return r;
}

absl::StatusOr<PinResult> Mm::Unpin(Pid pid, Vaddr addr, uint64_t length) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  PinResult r;
  if (!PageAligned(addr)) {
    r.err = Errno::kEINVAL;
    return r;
  }
  Vaddr end = addr + ((length + kPageSize - 1) & kPageMask);
  auto lo = p->pins.lower_bound(addr), hi = p->pins.lower_bound(end);
  if (lo == hi) {
    r.err = Errno::kEINVAL;
    return r;
  }
  for (auto it = lo; it != hi; ++it) {
    mem_.Frame(it->second).pins--;
    mem_.PutPage(it->second);
    r.pages++;
  }
  p->pins.erase(lo, hi);
  return r;
}

absl::StatusOr<std::vector<Translation>> Mm::Translate(Pid pid, Vaddr addr, uint64_t pages) {
  MEMNODE_ASSIGN_OR_RETURN(Process * p, LiveProcess(pid));
  std::vector<Translation> out;
  out.reserve(pages);
  Vaddr base = PageAlignDown(addr);
  for (uint64_t i = 0; i < pages; ++i) {
    Translation t;
    t.address = base + i * kPageSize;
    t.mapped = FindVma(*p, t.address) != nullptr;
    auto it = p->ptes.find(t.address >> kPageShift);
    if (it != p->ptes.end()) {
      t.present = true;
      t.pfn = it->second.pfn;
      t.node = mem_.BlockOf(t.pfn).node;
      t.state = mem_.Frame(t.pfn).state;
    }
    out.push_back(t);
  }
  return out;
}

}  // namespace memnode
