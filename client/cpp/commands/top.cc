// top: a live view of KSM counters (with deltas), blocks per node and state
// (GetKsm, ListMemoryBlocks at each refresh) and migration outcomes counted
// from the event stream since top started.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/commands/events.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"
#include "google/protobuf/struct.pb.h"

namespace memnode {
namespace cli {

namespace {

// Tallies of the events `top` watches (migration outcomes, offline results).
struct EventTally {
  std::mutex mu;
  // (reason, result) -> pages.
  std::map<std::pair<std::string, std::string>, uint64_t> migrations;
  uint64_t ksm_moved = 0;
  std::map<std::string, uint64_t> offlines;  // result -> requests
  uint64_t held_batches = 0;
  uint64_t lost = 0;
  bool subscribed = false;  // the server's headers arrived
  bool ended = false;
  std::string end_message;          // why the stream ended (shown in the view)
  std::condition_variable changed;  // subscribed or ended
};

// Reads the event stream into `tally` until it ends or is cancelled.
void CountEvents(grpc::ClientReader<v1::MachineEvent>* reader, EventTally* tally) {
  reader->WaitForInitialMetadata();
  {
    std::lock_guard<std::mutex> lock(tally->mu);
    tally->subscribed = true;
  }
  tally->changed.notify_all();
  v1::MachineEvent e;
  while (reader->Read(&e)) {
    std::lock_guard<std::mutex> lock(tally->mu);
    switch (e.kind()) {
      case v1::EVENT_KIND_MIGRATE:
        tally->migrations[{DisplayName(e.migrate_reason()), DisplayName(e.errnum())}]++;
        if (e.ksm() && e.errnum() == v1::ERRNO_OK) tally->ksm_moved++;
        break;
      case v1::EVENT_KIND_OFFLINE_RESULT: tally->offlines[DisplayName(e.errnum())]++; break;
      case v1::EVENT_KIND_KSM_BATCH_HELD: tally->held_batches++; break;
      case v1::EVENT_KIND_DROPPED: tally->lost += e.dropped(); break;
      default: break;
    }
  }
  grpc::Status status = reader->Finish();
  std::lock_guard<std::mutex> lock(tally->mu);
  tally->ended = true;
  if (status.error_code() != grpc::StatusCode::CANCELLED) {
    tally->end_message = absl::StrCat(CodeName(status.error_code()), ": ", status.error_message());
  }
  tally->changed.notify_all();
}

using Counters = std::vector<std::pair<const char*, uint64_t>>;
// node -> state -> blocks
using BlocksPerNode = std::map<uint32_t, std::map<v1::MemoryBlockState, uint64_t>>;

// The block states shown, one column each: every value of the enum but
// UNSPECIFIED, in declaration order.
const std::vector<v1::MemoryBlockState>& States() {
  static const auto* const kStates = [] {
    auto* states = new std::vector<v1::MemoryBlockState>;
    for (int n : EnumNumbers(v1::MemoryBlockState_descriptor())) {
      if (n != v1::MEMORY_BLOCK_STATE_UNSPECIFIED) {
        states->push_back(static_cast<v1::MemoryBlockState>(n));
      }
    }
    return states;
  }();
  return *kStates;
}

// One refresh: what was read, and the tallies copied under their lock.
struct View {
  uint64_t iteration = 0;
  v1::Ksm ksm;
  Counters counters;
  const Counters* previous = nullptr;  // null at the first refresh
  BlocksPerNode per_node;
  std::map<std::pair<std::string, std::string>, uint64_t> migrations;
  std::map<std::string, uint64_t> offlines;
  uint64_t ksm_moved = 0, held = 0, lost = 0;
  bool ended = false;
  std::string end_message;
};

void PrintJsonView(const Context& ctx, const View& v) {
  google::protobuf::Struct doc;
  auto& f = *doc.mutable_fields();
  f["machine"].set_string_value(ctx.MachineName());
  f["iteration"].set_number_value(static_cast<double>(v.iteration));
  f["run"].set_number_value(v.ksm.run());
  f["locked_by_offline"].set_bool_value(v.ksm.locked_by_offline());
  auto& kf = *f["ksm"].mutable_struct_value()->mutable_fields();
  auto& df = *f["ksm_delta"].mutable_struct_value()->mutable_fields();
  for (size_t c = 0; c < v.counters.size(); ++c) {
    kf[v.counters[c].first].set_number_value(static_cast<double>(v.counters[c].second));
    if (v.previous != nullptr) {
      df[v.counters[c].first].set_number_value(static_cast<double>(v.counters[c].second) -
                                               static_cast<double>((*v.previous)[c].second));
    }
  }
  auto& nodes = *f["blocks"].mutable_list_value();
  for (const auto& [node, by_state] : v.per_node) {
    auto& nf = *nodes.add_values()->mutable_struct_value()->mutable_fields();
    nf["node"].set_number_value(node);
    for (v1::MemoryBlockState s : States()) {
      auto it = by_state.find(s);
      nf[DisplayName(s)].set_number_value(it == by_state.end() ? 0
                                                               : static_cast<double>(it->second));
    }
  }
  auto& mig = *f["migrations"].mutable_list_value();
  for (const auto& [key, n] : v.migrations) {
    auto& mf = *mig.add_values()->mutable_struct_value()->mutable_fields();
    mf["reason"].set_string_value(key.first);
    mf["result"].set_string_value(key.second);
    mf["pages"].set_number_value(static_cast<double>(n));
  }
  f["ksm_pages_migrated"].set_number_value(static_cast<double>(v.ksm_moved));
  auto& off = *f["offlines"].mutable_struct_value()->mutable_fields();
  for (const auto& [result, n] : v.offlines) off[result].set_number_value(static_cast<double>(n));
  f["ksm_batches_held"].set_number_value(static_cast<double>(v.held));
  f["events_lost"].set_number_value(static_cast<double>(v.lost));
  std::cout << Context::ToJson(doc) << "\n";
}

void PrintTextView(const Context& ctx, const View& v, uint64_t iterations,
                   const std::string& interval, bool tty) {
  std::ostringstream out;
  if (tty) out << "\033[H\033[2J";  // home, clear screen
  out << "memnodectl top: " << ctx.MachineName() << "  iteration " << v.iteration;
  if (iterations != 0) out << "/" << iterations;
  out << "  every " << interval << " s  run=" << v.ksm.run()
      << "  locked_by_offline=" << YesNo(v.ksm.locked_by_offline()) << "\n\n";
  Table kt({"KSM", "VALUE", "DELTA"});
  for (size_t c = 0; c < v.counters.size(); ++c) {
    std::string delta = "-";
    if (v.previous != nullptr) {
      const int64_t d = static_cast<int64_t>(v.counters[c].second - (*v.previous)[c].second);
      delta = d > 0 ? absl::StrCat("+", d) : absl::StrCat(d);
    }
    kt.AddRow({v.counters[c].first, absl::StrCat(v.counters[c].second), delta});
  }
  kt.Print(out);
  out << "\n";
  std::vector<std::string> header = {"NODE"};
  for (v1::MemoryBlockState s : States()) header.push_back(UpperName(s));
  header.push_back("TOTAL");
  Table bt(header);
  for (const auto& [node, by_state] : v.per_node) {
    std::vector<std::string> row = {absl::StrCat(node)};
    uint64_t total = 0;
    for (v1::MemoryBlockState s : States()) {
      auto it = by_state.find(s);
      const uint64_t n = it == by_state.end() ? 0 : it->second;
      total += n;
      row.push_back(absl::StrCat(n));
    }
    row.push_back(absl::StrCat(total));
    bt.AddRow(row);
  }
  bt.Print(out);
  out << "\nmigrations since top started (from the event stream):\n";
  if (v.migrations.empty()) {
    out << "  none\n";
  } else {
    Table mt({"REASON", "RESULT", "PAGES"});
    for (const auto& [key, n] : v.migrations) mt.AddRow({key.first, key.second, absl::StrCat(n)});
    mt.Print(out, "  ");
  }
  std::vector<std::string> off;
  for (const auto& [result, n] : v.offlines) off.push_back(absl::StrCat(result, "=", n));
  out << "  ksm_pages_migrated=" << v.ksm_moved
      << "  offlines: " << (off.empty() ? std::string("none") : absl::StrJoin(off, " "))
      << "  ksm_batches_held=" << v.held << "\n";
  if (v.lost > 0) out << "  (" << v.lost << " events lost: tallies are low)\n";
  if (v.ended && !v.end_message.empty()) {
    out << "  (event stream ended: " << v.end_message << ")\n";
  }
  if (!tty) out << "\n";
  std::cout << out.str() << std::flush;
}

// GetKsm and ListMemoryBlocks of one refresh.
int ReadState(Context& ctx, View* v) {
  v1::GetKsmRequest ksm_request;
  ksm_request.set_name(ctx.KsmName());
  if (int rc = ctx.Call(ctx.ksm(), &v1::KsmService::Stub::GetKsm, ksm_request, &v->ksm)) return rc;
  v1::ListMemoryBlocksResponse blocks;
  if (int rc =
          ctx.FetchAll(&blocks, [&](const std::string& token, v1::ListMemoryBlocksResponse* page) {
            v1::ListMemoryBlocksRequest request;
            request.set_parent(ctx.MachineName());
            request.set_page_size(kBlockPageSize);
            request.set_page_token(token);
            return ctx.Call(ctx.blocks(), &v1::MemoryBlockService::Stub::ListMemoryBlocks, request,
                            page);
          })) {
    return rc;
  }
  const v1::Ksm& k = v->ksm;
  v->counters = {
      {"pages_shared", k.pages_shared()},     {"pages_sharing", k.pages_sharing()},
      {"pages_unshared", k.pages_unshared()}, {"pages_volatile", k.pages_volatile()},
      {"full_scans", k.full_scans()},         {"stable_nodes", k.stable_nodes()},
      {"rmap_items", k.rmap_items()},         {"mm_slots", k.mm_slots()},
      {"visits_total", k.visits_total()},
  };
  for (const v1::MemoryBlock& b : blocks.memory_blocks()) v->per_node[b.node()][b.state()]++;
  return kExitOk;
}

struct TopArgs {
  std::string interval = "1";
  uint64_t iterations = 0;  // 0: until Ctrl-C
};

int Top(Context& ctx, const TopArgs& a) {
  double interval = 1;
  (void)absl::SimpleAtod(a.interval, &interval);  // checked by Seconds()
  if (!StopSignal::Install()) return kExitUsage;
  const bool tty = !ctx.json() && isatty(STDOUT_FILENO) != 0;

  // Migration outcomes come from the event stream (MIGRATE, OFFLINE_RESULT,
  // KSM_BATCH_HELD), counted from the moment top started.
  EventTally tally;
  grpc::ClientContext stream_context;
  ctx.Prepare(&stream_context, /*deadline=*/false);
  v1::WatchEventsRequest watch;
  watch.set_name(ctx.MachineName());
  watch.add_kinds(v1::EVENT_KIND_MIGRATE);
  watch.add_kinds(v1::EVENT_KIND_OFFLINE_RESULT);
  watch.add_kinds(v1::EVENT_KIND_KSM_BATCH_HELD);
  std::unique_ptr<grpc::ClientReader<v1::MachineEvent>> reader =
      ctx.events()->WatchEvents(&stream_context, watch);
  std::thread stream_thread(CountEvents, reader.get(), &tally);
  {
    // Counting starts when the stream is in place (bounded by --timeout).
    const double wait = ctx.flags().timeout_seconds > 0 ? ctx.flags().timeout_seconds : 30;
    std::unique_lock<std::mutex> lock(tally.mu);
    tally.changed.wait_for(lock, std::chrono::duration<double>(wait),
                           [&] { return tally.subscribed || tally.ended; });
  }

  Counters previous;
  int rc = kExitOk;
  for (uint64_t i = 1;; ++i) {
    View v;
    v.iteration = i;
    if ((rc = ReadState(ctx, &v))) break;
    v.previous = previous.empty() ? nullptr : &previous;
    {
      std::lock_guard<std::mutex> lock(tally.mu);
      v.migrations = tally.migrations;
      v.offlines = tally.offlines;
      v.ksm_moved = tally.ksm_moved;
      v.held = tally.held_batches;
      v.lost = tally.lost;
      v.ended = tally.ended;
      v.end_message = tally.end_message;
    }
    if (ctx.json()) {
      PrintJsonView(ctx, v);
    } else {
      PrintTextView(ctx, v, a.iterations, a.interval, tty);
    }
    if (!std::cout) break;  // stdout closed
    previous = v.counters;
    if (a.iterations != 0 && i >= a.iterations) break;
    if (StopSignal::Wait(static_cast<int>(interval * 1000))) break;
  }
  stream_context.TryCancel();
  stream_thread.join();
  return rc;
}

}  // namespace

void AddTopCommand(CommandSet& set) {
  auto& a = set.Store<TopArgs>();
  set.Add("top",
          "Live view of KSM counters (with deltas), blocks per node and state, and migration "
          "outcomes.")
      .Flag("--interval", &a.interval, "S", "seconds between refreshes (default 1)",
            Seconds(0.05, 86400))
      .Flag("--iterations", &a.iterations, "N", "stop after N refreshes (default: until Ctrl-C)",
            Uint(1))
      .Details(
          "KSM counters and blocks come from GetKsm and ListMemoryBlocks at each\n"
          "refresh; migrations, offline results and held ksmd batches are counted\n"
          "from the event stream since top started. Redraws in place on a terminal;\n"
          "plain text blocks (or one JSON object per refresh with --json) otherwise.\n")
      .Run([&a](Context& ctx) { return Top(ctx, a); });
}

}  // namespace cli
}  // namespace memnode
