// The linux-2.6.33 profile: Linux 2.6.33 with the seed commit "ksm: memory
// hotremove migration only" (docs/SEMANTICS.md states every rule).
//   - /sys/kernel/mm/ksm: run, pages_to_scan, sleep_millisecs (rw) and the
//     five counters (ro). Stores parse with strict_strtoul (digits and one
//     optional trailing newline; the value wraps on overflow like
//     simple_strtoul) and refuse values above UINT_MAX with EINVAL; run
//     accepts 0..2 and takes ksm_thread_mutex, so it waits for an offline.
//   - KSM pages migrate only for hot-remove (the seed's `offlining`).
//   - An offline gives up after the caller's timeout (120 s by default) when
//     pages would not move, and after 5 failed rounds (EBUSY/ENOMEM).
//   - `removable`: is_mem_section_removable pageblock by pageblock.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/core/api.h"
#include "server/core/ksm/ksm.h"
#include "server/core/profile/profiles.h"

namespace memnode {
namespace {

// strict_strtoul(buf, 10) of the 2.6.33 stores: digits only, one optional
// trailing newline; the value wraps on overflow like simple_strtoul (the
// > UINT_MAX checks of the stores catch most large values).
std::optional<uint64_t> ParseStrictUl(absl::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

// A store taking an unsigned int: strict_strtoul, then `value > UINT_MAX`
// (and the file's own maximum) is EINVAL.
std::function<Errno(absl::string_view, uint64_t*)> UintStore(uint64_t max) {
  return [max](absl::string_view text, uint64_t* value) {
    std::optional<uint64_t> v = ParseStrictUl(text);
    if (!v || *v > 0xffffffffULL || *v > max) return Errno::kEINVAL;
    *value = *v;
    return Errno::kOk;
  };
}

KsmSysfsFile Counter(const char* name, const char* description, uint64_t (*get)(const KsmInfo&)) {
  KsmSysfsFile f;
  f.name = name;
  f.description = description;
  f.read = [get](const Ksm& k) { return absl::StrCat(get(k.Info())); };
  return f;
}

std::vector<KsmSysfsFile> Files() {
  std::vector<KsmSysfsFile> files;
  files.push_back(Counter("full_scans", "passes over every registered mm completed",
                          [](const KsmInfo& i) { return i.full_scans; }));
  files.push_back(Counter("pages_shared", "KSM pages in use (stable nodes with sharers)",
                          [](const KsmInfo& i) { return i.pages_shared; }));
  files.push_back(Counter("pages_sharing", "further mappings of KSM pages (the saving)",
                          [](const KsmInfo& i) { return i.pages_sharing; }));
  KsmSysfsFile pages_to_scan;
  pages_to_scan.name = "pages_to_scan";
  pages_to_scan.writable = true;
  pages_to_scan.default_value = "100";
  pages_to_scan.description = "visits per ksmd batch";
  pages_to_scan.read = [](const Ksm& k) { return absl::StrCat(k.pages_to_scan()); };
  pages_to_scan.parse = UintStore(0xffffffffULL);
  pages_to_scan.apply = [](Ksm& k, uint64_t v) {
    k.set_pages_to_scan(static_cast<uint32_t>(v));
    return Errno::kOk;
  };
  files.push_back(std::move(pages_to_scan));
  files.push_back(Counter("pages_unshared", "unique pages in the unstable tree",
                          [](const KsmInfo& i) { return i.pages_unshared; }));
  files.push_back(Counter("pages_volatile", "rmap items whose page changes too fast",
                          [](const KsmInfo& i) { return i.pages_volatile; }));
  KsmSysfsFile run;
  run.name = "run";
  run.writable = true;
  run.waits_for_offline = true;  // run_store takes ksm_thread_mutex
  run.default_value = "0";
  run.description = "0 stop ksmd, 1 run ksmd, 2 stop and unmerge every KSM page";
  run.read = [](const Ksm& k) { return absl::StrCat(k.run()); };
  run.parse = UintStore(2);
  run.apply = [](Ksm& k, uint64_t v) { return k.WriteRun(v); };
  files.push_back(std::move(run));
  KsmSysfsFile sleep;
  sleep.name = "sleep_millisecs";
  sleep.writable = true;
  sleep.default_value = "20";
  sleep.description = "ksmd's sleep between batches, ms";
  sleep.read = [](const Ksm& k) { return absl::StrCat(k.sleep_millisecs()); };
  sleep.parse = UintStore(0xffffffffULL);
  sleep.apply = [](Ksm& k, uint64_t v) {
    k.set_sleep_millisecs(static_cast<uint32_t>(v));
    return Errno::kOk;
  };
  files.push_back(std::move(sleep));
  return files;
}

class Linux2633 final : public KernelProfile {
 public:
  absl::string_view name() const override { return "linux-2.6.33"; }
  absl::string_view description() const override {
    return "Linux 2.6.33 with the seed commit \"ksm: memory hotremove migration only\"";
  }
  const std::vector<KsmSysfsFile>& ksm_files() const override { return files_; }
  bool KsmPageMigratable(bool offlining) const override { return offlining; }
  OfflinePolicy offline_policy(uint64_t requested_timeout_ns) const override {
    OfflinePolicy p;
    p.timeout_ns = requested_timeout_ns;
    p.retry_max = 5;
    return p;
  }
  // is_mem_section_removable (mm/memory_hotplug.c, 2.6.33), pageblock by
  // pageblock (512 pages, or the whole block when smaller): a pageblock that
  // is not MOVABLE and not entirely free makes the block not removable, and
  // so does a pageblock whose first page is PageReserved. memnode's model: a
  // pageblock holding an unmovable kernel page is UNMOVABLE; an isolated
  // block's pageblocks are ISOLATE; the zero page and kernel pages are
  // PageReserved; an offline block's pages are all reserved.
  bool Removable(const MemoryBlock& b) const override {
    if (b.state == BlockState::kOffline || b.state == BlockState::kRemoved) return false;
    if (!b.frames) return true;  // never used: every pageblock free and movable
    const uint64_t pb = std::min<uint64_t>(512, b.pages);
    for (uint64_t start = 0; start < b.pages; start += pb) {
      const uint64_t end = std::min(b.pages, start + pb);
      bool all_free = true, unmovable = false;
      for (uint64_t i = start; i < end; ++i) {
        all_free = all_free && b.frames[i].state == PageState::kFree;
        unmovable = unmovable ||
                    (b.frames[i].state == PageState::kReserved && b.frames[i].unmovable) ||
                    b.frames[i].state == PageState::kZero;
      }
      const bool movable = b.state == BlockState::kOnline && !unmovable;
      if (!movable && !all_free) return false;
      const PageState first = b.frames[start].state;
      if (first == PageState::kReserved || first == PageState::kZero) return false;
    }
    return true;
  }

 private:
  const std::vector<KsmSysfsFile> files_ = Files();
};

}  // namespace

const KernelProfile& Linux2633Profile() {
  static const Linux2633* p = new Linux2633;
  return *p;
}

}  // namespace memnode
