// Byte-level writer and bounds-checked reader for machine snapshots:
// little-endian base-128 varints and raw byte runs.
// Thread safety: one object per thread.
#ifndef MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_IO_H_
#define MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_IO_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace memnode {

// The format version this build writes. 1: the first release; 2: anon_vma
// identities of VMAs and stable rmap items (KSM's reverse map).
inline constexpr uint32_t kSnapshotVersion = 2;

class SnapshotWriter {
 public:
  void U64(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<char>(v));
  }
  void Bytes(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  void Str(absl::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  std::string& buffer() { return buf_; }

 private:
  std::string buf_;
};

// Every read fails softly: after the first error ok() is false and reads
// return zeros, so a decoder checks ok() once per section.
class SnapshotReader {
 public:
  // `version`: the snapshot format version the payload was written in (each
  // component reads the sections of older versions too).
  explicit SnapshotReader(absl::string_view data, uint32_t version = kSnapshotVersion)
      : data_(data), version_(version) {}
  uint32_t version() const { return version_; }
  bool ok() const { return ok_; }
  bool done() const { return data_.empty(); }
  uint64_t U64() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (data_.empty()) return Fail();
      uint8_t b = static_cast<uint8_t>(data_[0]);
      data_.remove_prefix(1);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    return Fail();
  }
  // A count that must fit the remaining input at `min_bytes` per element.
  uint64_t Count(uint64_t min_bytes = 1) {
    uint64_t n = U64();
    if (ok_ && n > data_.size() / (min_bytes ? min_bytes : 1) + 1) return Fail();
    return n;
  }
  bool Bytes(void* p, size_t n) {
    if (!ok_ || data_.size() < n) {
      Fail();
      return false;
    }
    std::memcpy(p, data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }
  // Marks the input as bad (a decoder found an inconsistency).
  void Poison() { Fail(); }
  std::string Str() {
    uint64_t n = Count();
    std::string s(ok_ ? n : 0, '\0');
    if (ok_) Bytes(s.data(), n);
    return ok_ ? s : std::string();
  }

 private:
  uint64_t Fail() {
    ok_ = false;
    data_ = absl::string_view();
    return 0;
  }
  absl::string_view data_;
  uint32_t version_;
  bool ok_ = true;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_SNAPSHOT_SNAPSHOT_IO_H_
