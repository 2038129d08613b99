#include "server/core/hotplug/notifier.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/core/names.h"
#include "server/core/snapshot/snapshot_io.h"
#include "server/core/status.h"

namespace memnode {

Errno InjectedFailure::Notify(MemEvent event, MemoryNotify& arg) {
  if (event != event_ || spent_) return Errno::kOk;
  if (remaining_ > 0 && --remaining_ == 0) spent_ = true;
  return err_;
}

void NotifierChain::Register(MemoryNotifier* n) {
  auto it = chain_.begin();
  while (it != chain_.end() && it->notifier->priority() >= n->priority()) ++it;
  Entry e;
  e.notifier = n;
  chain_.insert(it, std::move(e));
}

absl::Status NotifierChain::Inject(MemEvent event, int priority, Errno err, uint32_t count) {
  if (err == Errno::kOk)
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidField,
                     "an injected failure needs a non-zero errno");
  // Like the kernel's memory notifier error injection, only the events whose
  // result is acted upon can fail: a failed MEM_OFFLINE or CANCEL would stop
  // the chain before KSM's callback and leave its lock held for good.
  if (event != MemEvent::kGoingOffline && event != MemEvent::kGoingOnline)
    return MakeError(absl::StatusCode::kInvalidArgument, Reason::kInvalidField,
                     "only MEM_GOING_OFFLINE and MEM_GOING_ONLINE can be made to fail");
  auto inj = std::make_unique<InjectedFailure>(event, priority, err, count);
  auto it = chain_.begin();
  while (it != chain_.end() && it->notifier->priority() >= priority) ++it;
  Entry e;
  e.notifier = inj.get();
  e.owned = std::move(inj);
  chain_.insert(it, std::move(e));
  return absl::OkStatus();
}

void NotifierChain::ClearInjected() {
  chain_.erase(std::remove_if(chain_.begin(), chain_.end(),
                              [](const Entry& e) { return e.owned != nullptr; }),
               chain_.end());
}

void NotifierChain::PurgeSpent() {
  chain_.erase(std::remove_if(chain_.begin(), chain_.end(),
                              [](const Entry& e) { return e.owned && e.owned->spent(); }),
               chain_.end());
}

Errno NotifierChain::Call(MemEvent e, MemoryNotify& arg, std::vector<std::string>* log) {
  for (Entry& entry : chain_) {
    MemoryNotifier* n = entry.notifier;
    Errno err = n->Notify(e, arg);
    if (log)
      log->push_back(absl::StrCat(MemEventName(e), " ", n->name(), "(", n->priority(), ") ",
                                  err == Errno::kOk ? "ok" : ErrnoName(err)));
    Event ev{EventKind::kNotifier};
    ev.mem_event = e;
    ev.priority = n->priority();
    ev.notifier = n->name();
    ev.block = arg.block;
    ev.result = NegErrno(err);
    events_.Emit(ev);
    if (err != Errno::kOk) return err;  // NOTIFY_BAD stops the chain
  }
  return Errno::kOk;
}

// Snapshot format v1: per entry priority, name, is-registered, the
// injector's event, errno and remaining count.
void NotifierChain::Save(SnapshotWriter& w) const {
  w.U64(chain_.size());
  for (const Entry& e : chain_) {
    w.U64(static_cast<uint64_t>(static_cast<int64_t>(e.notifier->priority())));
    w.Str(e.notifier->name());
    w.U64(e.owned == nullptr);
    w.U64(static_cast<uint64_t>(e.owned ? e.owned->event() : MemEvent::kGoingOffline));
    w.U64(static_cast<uint64_t>(e.owned ? e.owned->err() : Errno::kOk));
    w.U64(e.owned ? e.owned->remaining() : 0);
  }
}

bool NotifierChain::Load(SnapshotReader& r, const std::vector<MemoryNotifier*>& registered) {
  uint64_t nn = r.Count(4);
  chain_.clear();
  for (uint64_t i = 0; i < nn && r.ok(); ++i) {
    int priority = static_cast<int>(static_cast<int64_t>(r.U64()));
    std::string name = r.Str();
    bool is_registered = r.U64() != 0;
    uint64_t ev = r.U64();
    if (ev > 5) return false;
    Errno err = static_cast<Errno>(r.U64());
    uint32_t remaining = static_cast<uint32_t>(r.U64());
    Entry e;
    if (is_registered) {
      for (MemoryNotifier* n : registered)
        if (name == n->name() && priority == n->priority()) e.notifier = n;
      if (!e.notifier) return false;
      for (const Entry& other : chain_)
        if (other.notifier == e.notifier) return false;  // registered twice
    } else {
      e.owned =
          std::make_unique<InjectedFailure>(static_cast<MemEvent>(ev), priority, err, remaining);
      e.notifier = e.owned.get();
    }
    chain_.push_back(std::move(e));
  }
  return r.ok();
}

}  // namespace memnode
