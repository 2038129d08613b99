// block * and notifier *: MemoryBlockService (memory hot-remove).

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

constexpr uint64_t kPageSize = 4096;

void PrintBlock(const v1::MemoryBlock& b) {
  KeyValues kv;
  kv.Add("name", b.name());
  kv.Add("block", absl::StrCat(b.block()));
  kv.Add("node", absl::StrCat(b.node()));
  kv.Add("state", UpperName(b.state()));
  kv.Add("pfns", absl::StrCat(b.start_pfn(), "-", b.start_pfn() + b.pages() - 1, " (", b.pages(),
                              " pages, ", Bytes(b.pages() * kPageSize), ")"));
  kv.Add("removable", YesNo(b.removable()));
  kv.Add("free_pages", absl::StrCat(b.free_pages()));
  kv.Add("anon_pages", absl::StrCat(b.anon_pages()));
  kv.Add("ksm_pages", absl::StrCat(b.ksm_pages()));
  kv.Add("shmem_pages", absl::StrCat(b.shmem_pages()));
  kv.Add("reserved_pages", absl::StrCat(b.reserved_pages()));
  kv.Add("unmovable_pages", absl::StrCat(b.unmovable_pages()));
  kv.Print(std::cout);
}

int BlockResult(Context& ctx, const v1::MemoryBlock& block) {
  if (ctx.json()) {
    ctx.PrintJson(block);
  } else {
    PrintBlock(block);
  }
  return kExitOk;
}

// Prints an OfflineReport (or its JSON); exits 1 when errnum is not OK.
int OfflineResult(Context& ctx, const v1::OfflineReport& r) {
  if (ctx.json()) {
    ctx.PrintJson(r);
    return ctx.ErrnoExit(r.errnum(), r.failure());
  }
  KeyValues kv;
  kv.Add("block", r.name());
  kv.Add("result", r.errnum() == v1::ERRNO_OK ? std::string("ok")
                                              : absl::StrCat(ErrnoName(r.errnum()), " (",
                                                             static_cast<int>(r.errnum()), ")"));
  kv.Add("paused", r.paused()
                       ? absl::StrCat("yes, after ", UpperName(r.phase()), " (resume or cancel it)")
                       : std::string("no"));
  kv.Add("phase", UpperName(r.phase()));
  kv.Add("pages_migrated", absl::StrCat(r.pages_migrated()));
  kv.Add("ksm_pages_migrated", absl::StrCat(r.ksm_pages_migrated()));
  kv.Add("stable_nodes_pruned", absl::StrCat(r.stable_nodes_pruned()));
  kv.Add("rounds", absl::StrCat(r.rounds()));
  kv.Add("emulated_duration", r.emulated_ns() < 1000 ? Duration(r.emulated_ns())
                                                     : absl::StrCat(Duration(r.emulated_ns()), " (",
                                                                    r.emulated_ns(), " ns)"));
  kv.Add("failure", r.failure().empty() ? "-" : r.failure());
  kv.Add("notifier_calls", absl::StrCat(r.notifier_calls_size()));
  kv.Print(std::cout);
  for (const std::string& call : r.notifier_calls()) std::cout << "  " << call << "\n";
  return ctx.ErrnoExit(r.errnum(), r.failure());
}

int KernelPagesResult(Context& ctx, const v1::KernelPagesResponse& response, const char* verb) {
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  std::cout << verb << " " << response.pages() << " kernel pages\n\n";
  PrintBlock(response.memory_block());
  return kExitOk;
}

int BlockList(Context& ctx) {
  v1::ListMemoryBlocksResponse all;
  if (int rc =
          ctx.FetchAll(&all, [&](const std::string& token, v1::ListMemoryBlocksResponse* page) {
            v1::ListMemoryBlocksRequest request;
            request.set_parent(ctx.MachineName());
            request.set_page_size(kBlockPageSize);
            request.set_page_token(token);
            return ctx.Call(ctx.blocks(), &v1::MemoryBlockService::Stub::ListMemoryBlocks, request,
                            page);
          })) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  Table table({"BLOCK", "NODE", "STATE", "START_PFN", "PAGES", "FREE", "ANON", "KSM", "SHMEM",
               "RESERVED", "UNMOVABLE", "REMOVABLE"});
  for (const v1::MemoryBlock& b : all.memory_blocks()) {
    table.AddRow({absl::StrCat(b.block()), absl::StrCat(b.node()), UpperName(b.state()),
                  absl::StrCat(b.start_pfn()), absl::StrCat(b.pages()),
                  absl::StrCat(b.free_pages()), absl::StrCat(b.anon_pages()),
                  absl::StrCat(b.ksm_pages()), absl::StrCat(b.shmem_pages()),
                  absl::StrCat(b.reserved_pages()), absl::StrCat(b.unmovable_pages()),
                  YesNo(b.removable())});
  }
  table.Print(std::cout);
  return kExitOk;
}

struct BlockArgs {
  uint32_t block = 0;
  v1::OfflinePhase pause_after = v1::OFFLINE_PHASE_NONE;
  uint64_t timeout_ms = 0;
  uint32_t pause_ttl = 0;
  uint64_t count = 0;
  bool unmovable = false;
  uint32_t node = 0;
};

struct InjectArgs {
  v1::MemoryNotifierEvent event = v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED;
  int32_t priority = 0;
  v1::Errno errnum = v1::ERRNO_OK;
  uint32_t count = 0;
};

int NotifierInject(Context& ctx, const InjectArgs& a) {
  v1::InjectNotifierFailureRequest request;
  request.set_parent(ctx.MachineName());
  request.set_event(a.event);
  request.set_priority(a.priority);
  request.set_errnum(a.errnum);
  request.set_count(a.count);
  v1::InjectNotifierFailureResponse response;
  if (int rc = ctx.Call(ctx.blocks(), &v1::MemoryBlockService::Stub::InjectNotifierFailure, request,
                        &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    // The event as the kernel names it (MEM_GOING_OFFLINE), like the offline
    // report's notifier lines.
    std::cout << "injected: " << v1::MemoryNotifierEvent_Name(a.event) << " fails with "
              << ErrnoName(a.errnum) << " at priority " << a.priority << " ("
              << (a.count == 0 ? std::string("until cleared")
                               : absl::StrCat(a.count, a.count == 1 ? " time" : " times"))
              << ")\n";
  }
  return kExitOk;
}

// --pause-after: a phase to stop after ("none" is accepted: no pause);
// completion offers `offered`.
ValueParser PhaseParser(std::vector<v1::OfflinePhase> offered) {
  ValueParser parser = EnumValue<v1::OfflinePhase>(
      NameStyle::kWord, [](v1::OfflinePhase p) { return p != v1::OFFLINE_PHASE_DONE; });
  parser.words.clear();
  for (v1::OfflinePhase p : offered) parser.words.push_back(WordName(p));
  return parser;
}

Command& AddBlock(CommandSet& set, const std::string& path, const std::string& summary,
                  BlockArgs& a) {
  return set.Add(path, summary).Arg("BLOCK", &a.block, Uint(0, UINT32_MAX));
}

// A call on one block returning an OfflineReport / SyscallResult.
template <typename Request, typename Response>
int BlockCall(Context& ctx,
              grpc::Status (v1::MemoryBlockService::Stub::*method)(grpc::ClientContext*,
                                                                   const Request&, Response*),
              Request request, Response* response) {
  return ctx.Call(ctx.blocks(), method, request, response);
}

}  // namespace

void AddBlockCommands(CommandSet& set) {
  using Stub = v1::MemoryBlockService::Stub;
  set.Add("block list", "List the memory blocks (sysfs memoryN) in id order.").Run(BlockList);

  auto& a = set.Store<BlockArgs>();
  AddBlock(set, "block get", "Show one memory block.", a).Run([&a](Context& ctx) {
    v1::GetMemoryBlockRequest request;
    request.set_name(ctx.BlockName(a.block));
    v1::MemoryBlock block;
    if (int rc = BlockCall(ctx, &Stub::GetMemoryBlock, request, &block)) return rc;
    return BlockResult(ctx, block);
  });

  AddBlock(set, "block offline",
           "Offline a block (echo offline > state) and print the offline report; exits 1 when "
           "the write failed.",
           a)
      .Flag("--pause-after", &a.pause_after, "PHASE",
            "stop after isolated, going-offline (KSM's lock is\n"
            "held) or migrated; then block resume / cancel",
            PhaseParser({v1::OFFLINE_PHASE_ISOLATED, v1::OFFLINE_PHASE_GOING_OFFLINE,
                         v1::OFFLINE_PHASE_MIGRATED}))
      .Flag("--timeout-ms", &a.timeout_ms, "N",
            "migration-loop deadline in emulated ms (server\ndefault 120000, the seed's 120 s)",
            Uint())
      .Flag("--pause-ttl", &a.pause_ttl, "S",
            "a pause left alone S wall seconds is cancelled\n(server default 300)",
            Uint(0, UINT32_MAX))
      .Run([&a](Context& ctx) {
        v1::OfflineMemoryBlockRequest request;
        request.set_name(ctx.BlockName(a.block));
        request.set_pause_after(a.pause_after);
        request.set_timeout_ms(a.timeout_ms);
        request.set_pause_ttl_seconds(a.pause_ttl);
        v1::OfflineReport report;
        if (int rc = BlockCall(ctx, &Stub::OfflineMemoryBlock, request, &report)) return rc;
        return OfflineResult(ctx, report);
      });

  AddBlock(set, "block resume", "Continue a paused offline (optionally pausing again later).", a)
      .Flag("--pause-after", &a.pause_after, "PHASE", "pause again after this later phase",
            PhaseParser({v1::OFFLINE_PHASE_GOING_OFFLINE, v1::OFFLINE_PHASE_MIGRATED}))
      .Run([&a](Context& ctx) {
        v1::ResumeOfflineRequest request;
        request.set_name(ctx.BlockName(a.block));
        request.set_pause_after(a.pause_after);
        v1::OfflineReport report;
        if (int rc = BlockCall(ctx, &Stub::ResumeOffline, request, &report)) return rc;
        return OfflineResult(ctx, report);
      });

  AddBlock(set, "block cancel",
           "Cancel a paused offline (MEM_CANCEL_OFFLINE if it was sent; EINTR).", a)
      .Run([&a](Context& ctx) {
        v1::CancelOfflineRequest request;
        request.set_name(ctx.BlockName(a.block));
        v1::OfflineReport report;
        if (int rc = BlockCall(ctx, &Stub::CancelOffline, request, &report)) return rc;
        return OfflineResult(ctx, report);
      });

  AddBlock(set, "block online", "Online an offline block (echo online > state).", a)
      .Run([&a](Context& ctx) {
        v1::OnlineMemoryBlockRequest request;
        request.set_name(ctx.BlockName(a.block));
        v1::SyscallResult result;
        if (int rc = BlockCall(ctx, &Stub::OnlineMemoryBlock, request, &result)) return rc;
        return ctx.SyscallDone(result);
      });

  set.Add("block add", "Hot-add a memory block to NODE (it starts offline).")
      .Arg("NODE", &a.node, Uint(0, UINT32_MAX))
      .Run([&a](Context& ctx) {
        v1::AddMemoryBlockRequest request;
        request.set_parent(ctx.MachineName());
        request.set_node(a.node);
        v1::MemoryBlock block;
        if (int rc = BlockCall(ctx, &Stub::AddMemoryBlock, request, &block)) return rc;
        return BlockResult(ctx, block);
      });

  AddBlock(set, "block remove", "Hot-remove an offline block.", a).Run([&a](Context& ctx) {
    v1::RemoveMemoryBlockRequest request;
    request.set_name(ctx.BlockName(a.block));
    v1::SyscallResult result;
    if (int rc = BlockCall(ctx, &Stub::RemoveMemoryBlock, request, &result)) return rc;
    return ctx.SyscallDone(result);
  });

  AddBlock(set, "block kernel-pages",
           "Allocate COUNT kernel pages in a block (makes offline fail).", a)
      .Arg("COUNT", &a.count, Uint())
      .Switch("--unmovable", &a.unmovable,
              "in an unmovable pageblock: isolation fails (EBUSY, no\n"
              "notifier); default: non-LRU pages in a movable\n"
              "pageblock (EBUSY from the migration loop)")
      .Run([&a](Context& ctx) {
        v1::AllocateKernelPagesRequest request;
        request.set_name(ctx.BlockName(a.block));
        request.set_count(a.count);
        request.set_unmovable(a.unmovable);
        v1::KernelPagesResponse response;
        if (int rc = BlockCall(ctx, &Stub::AllocateKernelPages, request, &response)) return rc;
        return KernelPagesResult(ctx, response, "allocated");
      });

  AddBlock(set, "block free-kernel-pages", "Free up to COUNT kernel pages of a block.", a)
      .Arg("COUNT", &a.count, Uint())
      .Run([&a](Context& ctx) {
        v1::FreeKernelPagesRequest request;
        request.set_name(ctx.BlockName(a.block));
        request.set_count(a.count);
        v1::KernelPagesResponse response;
        if (int rc = BlockCall(ctx, &Stub::FreeKernelPages, request, &response)) return rc;
        return KernelPagesResult(ctx, response, "freed");
      });

  auto& inject = set.Store<InjectArgs>();
  ValueParser events = EnumValue<v1::MemoryNotifierEvent>(
      NameStyle::kWord,
      [](v1::MemoryNotifierEvent e) { return e != v1::MEMORY_NOTIFIER_EVENT_UNSPECIFIED; });
  const std::string event_help =
      absl::StrCat(absl::StrJoin(events.words, ", "), " (or MEM_*, or the number)");
  set.Add("notifier inject", "Make memory notifier calls of EVENT fail with ERRNO at PRIORITY.")
      .Arg("EVENT", &inject.event, events, event_help)
      .Arg("PRIORITY", &inject.priority, Int32(),
           "chain priority; higher is called first (KSM is at 100)")
      .Arg("ERRNO", &inject.errnum,
           EnumValue<v1::Errno>(NameStyle::kUpper, [](v1::Errno e) { return e != v1::ERRNO_OK; }),
           "errno name (EBUSY, EINVAL, ...) or number")
      .Flag("--count", &inject.count, "N", "fail N times, then go away (default 0: until cleared)",
            Uint(0, UINT32_MAX))
      .Run([&inject](Context& ctx) { return NotifierInject(ctx, inject); });

  set.Add("notifier clear", "Remove every injected notifier failure.").Run([](Context& ctx) {
    v1::ClearNotifierFailuresRequest request;
    request.set_parent(ctx.MachineName());
    v1::InjectNotifierFailureResponse response;
    if (int rc = ctx.Call(ctx.blocks(), &Stub::ClearNotifierFailures, request, &response)) {
      return rc;
    }
    if (ctx.json()) {
      ctx.PrintJson(response);
    } else {
      std::cout << "cleared\n";
    }
    return kExitOk;
  });
}

}  // namespace cli
}  // namespace memnode
