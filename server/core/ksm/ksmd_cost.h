// A model of ksmd's CPU time: what each kind of visit costs the real ksmd.
// memnode's own scanner runs much faster than the kernel's; the advisor
// (linux-6.18 advisor_mode=scan-time), `KsmInfo::ksmd_cpu_ns` and the
// predictions of what a workload would cost need the kernel's cost instead.
// The figures are medians of the real ksmd of Linux 6.18 measured on a
// 2-vCPU host (docs/BENCHMARKS.md, "the modelled ksmd CPU"): per visit, by
// what the visit did. They are a model, not a measurement of the emulator.
// Thread safety: constants only.
#ifndef MEMNODE_SERVER_CORE_KSM_KSMD_COST_H_
#define MEMNODE_SERVER_CORE_KSM_KSMD_COST_H_

#include <cstdint>

namespace memnode {

// What one ksmd visit did, for its cost.
enum class VisitKind : uint8_t {
  kChecksum,  // checksum taken, nothing else (first visit, or volatile)
  kMerge,     // a merge: into a KSM page or two pages into a new one
  kUnique,    // searched both trees, inserted in (or left out of) the unstable tree
  kRevisit,   // a page already merged: nothing to do
  kSkip,      // smart_scan skipped the page (linux-6.18)
  kCount,
};

// Nanoseconds of ksmd CPU per visit kind (scan of a fresh region 0.45-1.0
// us/page; merges 2.1-2.9 us; unique pages 3.5-3.8 us at 2^16 pages;
// revisit of a merged page 0.13-0.25 us; a skipped page ~0.14 us).
inline constexpr uint64_t kKsmdVisitCostNs[static_cast<int>(VisitKind::kCount)] = {
    800,   // kChecksum
    2400,  // kMerge
    3700,  // kUnique
    150,   // kRevisit
    140,   // kSkip
};

inline uint64_t KsmdVisitCostNs(VisitKind k) { return kKsmdVisitCostNs[static_cast<int>(k)]; }

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_KSM_KSMD_COST_H_
