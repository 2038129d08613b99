// The event stream's building blocks on a real MANUAL machine: per-machine
// sequence numbers, kind filters, bounded queues that drop and count.
// Expected events are derived from kernel-semantics.md (ks 10.1, ks 2.3 r9f).
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "server/host/event_hub.h"
#include "tests/testing/machine_fixture.h"

namespace memnode::host {
namespace {

using memnode::testing::PfnAt;
using memnode::testing::SmallMachine;
using memnode::testing::Unwrap;

std::vector<QueuedEvent> DrainAll(EventQueue& q, uint64_t* tail) {
  std::vector<QueuedEvent> out;
  q.Drain(absl::ZeroDuration(), &out, tail);
  return out;
}

std::pair<Pid, Vaddr> ProcessWithPage(Machine& m, uint8_t byte) {
  Pid pid = Unwrap(m.CreateProcess(ProcessParams{}));
  Vaddr a = Unwrap(m.Mmap(pid, 0, kPageSize, kProtRead | kProtWrite, false, false)).address;
  FillPattern f;
  f.value = byte;
  EXPECT_EQ(Unwrap(m.Fill(pid, a, kPageSize, f)).err, Errno::kOk);
  EXPECT_EQ(Unwrap(m.Madvise(pid, a, kPageSize, Advice::kMergeable)), Errno::kOk);
  return {pid, a};
}

TEST(EventQueueTest, ScenarioOneInOrderWithSequenceNumbers) {
  auto m = SmallMachine();
  EventHub hub;
  m->AddObserver(&hub);
  EventQueue all(64, 0);
  EventQueue merges_only(64, KindBit(EventKind::kMerge));
  hub.Subscribe(&all);
  hub.Subscribe(&merges_only);

  auto [a, va] = ProcessWithPage(*m, 9);
  auto [b, vb] = ProcessWithPage(*m, 9);
  const Pfn b_page = PfnAt(*m, b, vb);
  Unwrap(m->KsmStepPasses(2, 1 << 20));

  // ks 10.1: pass 1 stores checksums only, then the pass ends (full_scans 1);
  // pass 2 merges: node created with A's (tree) item, B's item appended
  // (ks 2.3 r9f), kpfn = B's original page (r10); then the pass ends.
  uint64_t tail = 0;
  auto ev = DrainAll(all, &tail);
  EXPECT_EQ(tail, 0u);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].event.kind, EventKind::kPassEnd);
  EXPECT_EQ(ev[0].event.value, 1u);
  EXPECT_EQ(ev[1].event.kind, EventKind::kMerge);
  EXPECT_EQ(ev[1].event.pid, a);
  EXPECT_EQ(ev[1].event.address, va);
  EXPECT_TRUE(ev[1].event.new_node);
  EXPECT_EQ(ev[1].event.pfn, b_page);
  EXPECT_EQ(ev[2].event.kind, EventKind::kMerge);
  EXPECT_EQ(ev[2].event.pid, b);
  EXPECT_FALSE(ev[2].event.new_node);
  EXPECT_EQ(ev[2].event.pfn, b_page);
  EXPECT_EQ(ev[2].event.node_id, ev[1].event.node_id);
  EXPECT_EQ(ev[3].event.kind, EventKind::kPassEnd);
  EXPECT_EQ(ev[3].event.value, 2u);
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].sequence, i + 1);
  }

  // The filtered stream sees the merges with the machine's numbers.
  auto mo = DrainAll(merges_only, &tail);
  ASSERT_EQ(mo.size(), 2u);
  EXPECT_EQ(mo[0].sequence, 2u);
  EXPECT_EQ(mo[1].sequence, 3u);

  hub.Unsubscribe(&all);
  hub.Unsubscribe(&merges_only);
  m->RemoveObserver(&hub);
}

TEST(EventQueueTest, FullQueueDropsAndReportsOnce) {
  EventQueue q(2, 0);
  Event e{EventKind::kPassEnd};
  for (uint64_t s = 1; s <= 5; ++s) q.Push(s, e);  // 1, 2 queued; 3, 4, 5 lost
  uint64_t tail = 0;
  auto got = DrainAll(q, &tail);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sequence, 1u);
  EXPECT_EQ(got[1].sequence, 2u);
  EXPECT_EQ(tail, 3u);  // lost after the last delivered event: reported now
  got = DrainAll(q, &tail);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(tail, 0u);  // ... and only once

  q.Push(6, e);
  q.Push(7, e);
  q.Push(8, e);  // lost
  got = DrainAll(q, &tail);
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(tail, 1u);
  q.Push(9, e);
  got = DrainAll(q, &tail);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].sequence, 9u);
  EXPECT_EQ(tail, 0u);
}

TEST(EventQueueTest, ClosedHubClosesLateSubscribers) {
  EventHub hub;
  hub.CloseAll(EventQueue::End::kMachineRemoved);
  EventQueue q(4, 0);
  hub.Subscribe(&q);
  std::vector<QueuedEvent> out;
  uint64_t tail = 0;
  EXPECT_EQ(q.Drain(absl::Seconds(5), &out, &tail), EventQueue::End::kMachineRemoved);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace memnode::host
