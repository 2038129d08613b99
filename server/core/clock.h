// The emulated clock of a machine: advanced by ksmd batches (sleep_millisecs
// per batch) and by offline migration rounds, never by the host's clock, so
// a MANUAL machine is deterministic. REALTIME machines run their ksmd thread
// on wall time in the host layer; their emulated clock advances the same way.
// Thread safety: used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_CLOCK_H_
#define MEMNODE_SERVER_CORE_CLOCK_H_

#include <cstdint>

namespace memnode {

class EmulatedClock {
 public:
  uint64_t now_ns() const { return now_ns_; }
  const uint64_t* now_ptr() const { return &now_ns_; }
  void Advance(uint64_t ns) { now_ns_ += ns; }
  void Set(uint64_t ns) { now_ns_ = ns; }

 private:
  uint64_t now_ns_ = 0;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_CLOCK_H_
