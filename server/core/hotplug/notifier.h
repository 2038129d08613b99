// The memory notifier chain: callbacks called by priority at each memory
// hotplug event, any of which may veto a GOING_* event. KSM's callback is a
// MemoryNotifier (ksm/ksm_notifier.h); failure injectors are others.
// Linux analogue: register_memory_notifier / memory_notify (mm/memory_hotplug.c,
// drivers/base/memory.c), include/linux/notifier.h chains, and the memory
// notifier error injection module.
// Thread safety: not thread-safe; used under the machine's lock.
#ifndef MEMNODE_SERVER_CORE_HOTPLUG_NOTIFIER_H_
#define MEMNODE_SERVER_CORE_HOTPLUG_NOTIFIER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/events.h"
#include "server/core/types.h"

namespace memnode {

class SnapshotReader;
class SnapshotWriter;

// struct memory_notify: what a callback is told, and what it reports back.
struct MemoryNotify {
  BlockId block = 0;
  Pfn start_pfn = 0;
  uint64_t nr_pages = 0;
  // Out: stable nodes KSM's callback pruned at MEM_OFFLINE.
  uint64_t stable_nodes_pruned = 0;
};

class MemoryNotifier {
 public:
  virtual ~MemoryNotifier() = default;
  virtual int priority() const = 0;
  virtual const char* name() const = 0;
  // The callback: kOk, or an errno that vetoes (NOTIFY_BAD) the event.
  virtual Errno Notify(MemEvent event, MemoryNotify& arg) = 0;
};

// A notifier that fails `event` with `err` for its next `count` calls
// (0 = until cleared).
class InjectedFailure final : public MemoryNotifier {
 public:
  InjectedFailure(MemEvent event, int priority, Errno err, uint32_t count)
      : event_(event), priority_(priority), err_(err), remaining_(count) {}
  int priority() const override { return priority_; }
  const char* name() const override { return "inject"; }
  Errno Notify(MemEvent event, MemoryNotify& arg) override;
  // Used up: it stays registered (and sees the CANCEL that follows, like any
  // notifier) until the operation ends.
  bool spent() const { return spent_; }
  MemEvent event() const { return event_; }
  Errno err() const { return err_; }
  uint32_t remaining() const { return remaining_; }

 private:
  MemEvent event_;
  int priority_;
  Errno err_;
  uint32_t remaining_;
  bool spent_ = false;
};

class NotifierChain {
 public:
  explicit NotifierChain(EventSink& events) : events_(events) {}
  // notifier_chain_register: after every entry of equal or higher priority.
  void Register(MemoryNotifier* n);
  absl::Status Inject(MemEvent event, int priority, Errno err, uint32_t count);
  void ClearInjected();
  // Removes injectors used up by the operation that just ended.
  void PurgeSpent();
  // Calls the chain for `e` by descending priority; returns the first
  // failure's errno (the chain stops there) or kOk. `log`, when given,
  // receives "MEM_GOING_OFFLINE ksm(100) ok" lines.
  Errno Call(MemEvent e, MemoryNotify& arg, std::vector<std::string>* log);

  // Snapshot: the chain in order. `registered` are the non-injector
  // notifiers a machine always has (by name) to link back on Load.
  void Save(SnapshotWriter& w) const;
  bool Load(SnapshotReader& r, const std::vector<MemoryNotifier*>& registered);

 private:
  struct Entry {
    MemoryNotifier* notifier = nullptr;
    std::unique_ptr<InjectedFailure> owned;  // set for injectors
  };
  EventSink& events_;
  std::vector<Entry> chain_;
};

}  // namespace memnode

#endif  // MEMNODE_SERVER_CORE_HOTPLUG_NOTIFIER_H_
