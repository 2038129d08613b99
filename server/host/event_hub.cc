#include "server/host/event_hub.h"

#include <algorithm>

namespace memnode::host {

// --- EventQueue ---------------------------------------------------------------

EventQueue::EventQueue(size_t capacity, uint64_t kinds)
    : kinds_(kinds), ring_(std::max<size_t>(capacity, 1)) {}

void EventQueue::Push(uint64_t sequence, const Event& e) {
  absl::MutexLock lock(&mu_);
  if (end_ != End::kOpen) return;
  if (size_ == ring_.size()) {
    dropped_++;
    return;
  }
  QueuedEvent& q = ring_[(head_ + size_) % ring_.size()];
  q.sequence = sequence;
  q.event = e;
  size_++;
}

void EventQueue::Close(End why) {
  absl::MutexLock lock(&mu_);
  if (end_ == End::kOpen) end_ = why;
}

EventQueue::End EventQueue::Drain(absl::Duration timeout, std::vector<QueuedEvent>* out,
                                  uint64_t* tail_dropped) {
  out->clear();
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return size_ > 0 || dropped_ > 0 || end_ != End::kOpen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  // Batch: after the first event, wait a moment for more (up to a quarter of
  // the ring or 2 ms), so a busy machine wakes the reader once per batch
  // instead of once per event.
  auto batch = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return size_ >= ring_.size() / 4 || end_ != End::kOpen;
  };
  if (size_ > 0 && end_ == End::kOpen)
    mu_.AwaitWithTimeout(absl::Condition(&batch), absl::Milliseconds(2));
  out->reserve(size_);
  for (; size_ > 0; size_--, head_ = (head_ + 1) % ring_.size()) out->push_back(ring_[head_]);
  *tail_dropped = dropped_;
  dropped_ = 0;
  return end_;
}

// --- EventHub -----------------------------------------------------------------

void EventHub::OnEvent(const Event& e) {
  absl::MutexLock lock(&mu_);
  if (queues_.empty()) return;
  for (EventQueue* q : queues_)
    if (q->Wants(e.kind)) q->Push(e.sequence, e);
}

void EventHub::Subscribe(EventQueue* q) {
  absl::MutexLock lock(&mu_);
  if (closed_ != EventQueue::End::kOpen) {
    q->Close(closed_);
    return;
  }
  queues_.push_back(q);
}

void EventHub::Unsubscribe(EventQueue* q) {
  absl::MutexLock lock(&mu_);
  queues_.erase(std::remove(queues_.begin(), queues_.end(), q), queues_.end());
}

void EventHub::CloseAll(EventQueue::End why) {
  absl::MutexLock lock(&mu_);
  if (closed_ == EventQueue::End::kOpen) closed_ = why;
  for (EventQueue* q : queues_) q->Close(why);
}

// --- EventHubs -----------------------------------------------------------------

EventHubs::EventHubs(Registry& reg) : reg_(reg) { reg_.AddListener(this); }

EventHubs::~EventHubs() {
  reg_.RemoveListener(this);
  std::map<std::string, Hooked> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(hubs_);
  }
  for (auto& [id, h] : left) {
    h.handle->machine().RemoveObserver(h.hub.get());
    h.hub->CloseAll(EventQueue::End::kShutdown);
  }
}

void EventHubs::OnMachineAdded(const std::shared_ptr<MachineHandle>& handle) {
  auto hub = std::make_shared<EventHub>();
  absl::MutexLock lock(&mu_);
  handle->machine().AddObserver(hub.get());
  hubs_[handle->id()] = Hooked{handle, std::move(hub)};
}

void EventHubs::OnMachineRemoved(const std::shared_ptr<MachineHandle>& handle) {
  Hooked h;
  {
    absl::MutexLock lock(&mu_);
    auto it = hubs_.find(handle->id());
    if (it == hubs_.end()) return;
    h = std::move(it->second);
    hubs_.erase(it);
    h.handle->machine().RemoveObserver(h.hub.get());
  }
  h.hub->CloseAll(EventQueue::End::kMachineRemoved);
}

EventHubs::Hooked EventHubs::Find(const std::string& id, bool* shutting_down) {
  absl::MutexLock lock(&mu_);
  *shutting_down = shutting_down_;
  if (shutting_down_) return Hooked{};
  auto it = hubs_.find(id);
  return it == hubs_.end() ? Hooked{} : it->second;
}

void EventHubs::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (auto& [id, h] : hubs_) h.hub->CloseAll(EventQueue::End::kShutdown);
}

}  // namespace memnode::host
