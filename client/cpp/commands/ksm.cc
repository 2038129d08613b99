// ksm *: KsmService (knobs and counters, ksmd stepping, the two trees).

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

void PrintKsm(const v1::Ksm& k) {
  KeyValues kv;
  kv.Add("run", absl::StrCat(k.run()));
  kv.Add("pages_to_scan", absl::StrCat(k.pages_to_scan()));
  kv.Add("sleep_millisecs", absl::StrCat(k.sleep_millisecs()));
  kv.Add("pages_shared", absl::StrCat(k.pages_shared()));
  kv.Add("pages_sharing", absl::StrCat(k.pages_sharing()));
  kv.Add("pages_unshared", absl::StrCat(k.pages_unshared()));
  kv.Add("pages_volatile", absl::StrCat(k.pages_volatile()));
  kv.Add("full_scans", absl::StrCat(k.full_scans()));
  kv.Add("rmap_items", absl::StrCat(k.rmap_items()));
  kv.Add("stable_nodes", absl::StrCat(k.stable_nodes()));
  kv.Add("mm_slots", absl::StrCat(k.mm_slots()));
  kv.Add("cursor", k.cursor_pid() == 0
                       ? std::string("-")
                       : absl::StrCat("pid ", k.cursor_pid(), " at ", Hex(k.cursor_address())));
  kv.Add("visits_total", absl::StrCat(k.visits_total()));
  kv.Add("locked_by_offline", YesNo(k.locked_by_offline()));
  kv.Print(std::cout);
}

int GetKsm(Context& ctx, v1::Ksm* ksm) {
  v1::GetKsmRequest request;
  request.set_name(ctx.KsmName());
  return ctx.Call(ctx.ksm(), &v1::KsmService::Stub::GetKsm, request, ksm);
}

// Shared output of ksm set / ksm sysfs.
int UpdateResult(Context& ctx, const v1::UpdateKsmResponse& response) {
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    PrintKsm(response.ksm());
  }
  return ctx.ErrnoExit(response.errnum(), "");
}

struct KsmArgs {
  uint64_t run = 0, pages_to_scan = 0, sleep_millisecs = 0;  // set
  std::string file, value;                                   // sysfs
  uint64_t visits = 0, full_scans = 0, max_visits = 0;       // step
  int32_t pid = 0;                                           // rmap
};

int KsmSet(Context& ctx, const KsmArgs& a) {
  v1::UpdateKsmRequest request;
  request.set_name(ctx.KsmName());
  if (ctx.Given("--run")) request.set_run(a.run);
  if (ctx.Given("--pages-to-scan")) request.set_pages_to_scan(a.pages_to_scan);
  if (ctx.Given("--sleep-millisecs")) request.set_sleep_millisecs(a.sleep_millisecs);
  v1::UpdateKsmResponse response;
  if (int rc = ctx.Call(ctx.ksm(), &v1::KsmService::Stub::UpdateKsm, request, &response)) {
    return rc;
  }
  return UpdateResult(ctx, response);
}

// --full-scans K with progress: one pass per call; the visits, passes and
// KSM state are those a single call would have given (the bound on visits
// applies to the whole run).
int StepWithProgress(Context& ctx, const v1::StepKsmRequest& request,
                     v1::StepKsmResponse* response) {
  const uint64_t want = request.full_scans();
  const uint64_t bound = request.max_visits() != 0 ? request.max_visits() : (uint64_t{1} << 32);
  Progress progress(true);
  uint64_t visits = 0, done = 0;
  while (done < want && visits < bound) {
    v1::StepKsmRequest one = request;
    one.set_full_scans(1);
    one.set_max_visits(bound - visits);
    v1::StepKsmResponse part;
    if (int rc = ctx.Call(ctx.ksm(), &v1::KsmService::Stub::StepKsm, one, &part)) {
      progress.Done();
      return rc;
    }
    visits += part.visits();
    done += part.passes();
    *response->mutable_ksm() = part.ksm();
    progress.Update(absl::StrFormat("ksm step: %d/%d passes, %d visits", done, want, visits));
    if (part.passes() == 0) break;  // the visit bound ended the run
  }
  progress.Done();
  response->set_visits(visits);
  response->set_passes(done);
  return kExitOk;
}

int KsmStep(Context& ctx, const KsmArgs& a) {
  v1::StepKsmRequest request;
  request.set_name(ctx.KsmName());
  if (ctx.Given("--visits")) {
    request.set_visits(a.visits);
  } else {
    request.set_full_scans(a.full_scans);
  }
  if (ctx.Given("--max-visits")) request.set_max_visits(a.max_visits);
  v1::StepKsmResponse response;
  if (request.until_case() == v1::StepKsmRequest::kFullScans && request.full_scans() > 1 &&
      ShowProgress()) {
    if (int rc = StepWithProgress(ctx, request, &response)) return rc;
  } else if (int rc = ctx.Call(ctx.ksm(), &v1::KsmService::Stub::StepKsm, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  KeyValues kv;
  kv.Add("visits", absl::StrCat(response.visits()));
  kv.Add("passes", absl::StrCat(response.passes()));
  kv.Print(std::cout);
  std::cout << "\n";
  PrintKsm(response.ksm());
  return kExitOk;
}

int ListStable(Context& ctx, v1::ListStableNodesResponse* all) {
  return ctx.FetchAll(all, [&](const std::string& token, v1::ListStableNodesResponse* page) {
    v1::ListStableNodesRequest request;
    request.set_parent(ctx.KsmName());
    request.set_page_size(kListPageSize);
    request.set_page_token(token);
    return ctx.Call(ctx.ksm(), &v1::KsmService::Stub::ListStableNodes, request, page);
  });
}

int ListUnstable(Context& ctx, v1::ListUnstableItemsResponse* all) {
  return ctx.FetchAll(all, [&](const std::string& token, v1::ListUnstableItemsResponse* page) {
    v1::ListUnstableItemsRequest request;
    request.set_parent(ctx.KsmName());
    request.set_page_size(kListPageSize);
    request.set_page_token(token);
    return ctx.Call(ctx.ksm(), &v1::KsmService::Stub::ListUnstableItems, request, page);
  });
}

std::string MappingList(const v1::StableNode& node) {
  std::vector<std::string> parts;
  for (const v1::StableMapping& m : node.mappings()) {
    parts.push_back(absl::StrCat(m.pid(), ":", Hex(m.address())));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

int KsmStable(Context& ctx) {
  v1::ListStableNodesResponse all;
  if (int rc = ListStable(ctx, &all)) return rc;
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  Table table({"ID", "KPFN", "NODE", "DIGEST", "STALE", "MAPCOUNT", "DEPTH", "MAPPINGS(PID:ADDR)"});
  for (const v1::StableNode& n : all.stable_nodes()) {
    table.AddRow({absl::StrCat(n.id()), absl::StrCat(n.kpfn()), absl::StrCat(n.node()),
                  ShortDigest(n.content_digest()), YesNo(n.stale()), absl::StrCat(n.mapcount()),
                  absl::StrCat(n.depth()), MappingList(n)});
  }
  table.Print(std::cout);
  return kExitOk;
}

void PrintRmapItems(const google::protobuf::RepeatedPtrField<v1::RmapItem>& items, bool with_pid) {
  std::vector<std::string> header = {"ADDRESS", "STATE",  "CHECKSUM", "SEQNR",
                                     "STABLE",  "DIGEST", "DEPTH",    "PREV"};
  if (with_pid) header.insert(header.begin(), "PID");
  Table table(header);
  for (const v1::RmapItem& r : items) {
    bool unstable = r.state() == v1::RMAP_STATE_UNSTABLE;
    std::vector<std::string> row = {
        Hex(r.address()),
        UpperName(r.state()),
        r.oldchecksum() == 0 ? "-" : absl::StrFormat("%08x", r.oldchecksum()),
        unstable ? absl::StrCat(r.seqnr()) : "-",
        r.stable_node_id() == 0 ? "-" : absl::StrCat(r.stable_node_id()),
        ShortDigest(r.content_digest()),
        unstable && !r.previous_pass() ? absl::StrCat(r.depth()) : "-",
        YesNo(r.previous_pass())};
    if (with_pid) row.insert(row.begin(), absl::StrCat(r.pid()));
    table.AddRow(std::move(row));
  }
  table.Print(std::cout);
}

int KsmRmap(Context& ctx, int32_t pid) {
  v1::ListRmapItemsResponse all;
  if (int rc = ctx.FetchAll(&all, [&](const std::string& token, v1::ListRmapItemsResponse* page) {
        v1::ListRmapItemsRequest request;
        request.set_process(ctx.ProcessName(pid));
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        return ctx.Call(ctx.ksm(), &v1::KsmService::Stub::ListRmapItems, request, page);
      })) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(all);
  } else {
    PrintRmapItems(all.items(), /*with_pid=*/false);
  }
  return kExitOk;
}

void PrintTrees(const v1::ListStableNodesResponse& stable,
                const v1::ListUnstableItemsResponse& unstable) {
  std::cout << "\n== stable tree: " << stable.stable_nodes_size()
            << " nodes (in-order, indented by depth) ==\n";
  for (const v1::StableNode& n : stable.stable_nodes()) {
    std::string indent(2 + 4 * n.depth(), ' ');
    std::cout << indent << "#" << n.id() << " kpfn=" << n.kpfn() << " node=" << n.node()
              << " digest=" << ShortDigest(n.content_digest()) << " mapcount=" << n.mapcount()
              << " depth=" << n.depth() << (n.stale() ? " STALE" : "") << "\n";
    for (const v1::StableMapping& m : n.mappings()) {
      std::cout << indent << "    (pid " << m.pid() << ", " << Hex(m.address()) << ")\n";
    }
    if (n.mappings_size() == 0) std::cout << indent << "    (no mappings)\n";
  }
  std::vector<const v1::RmapItem*> in_tree;
  std::vector<const v1::RmapItem*> previous;
  for (const v1::RmapItem& r : unstable.items()) {
    (r.previous_pass() ? previous : in_tree).push_back(&r);
  }
  std::cout << "\n== unstable tree: " << in_tree.size()
            << " items (in-order, indented by depth) ==\n";
  for (const v1::RmapItem* r : in_tree) {
    std::string indent(2 + 4 * r->depth(), ' ');
    std::cout << indent << "(pid " << r->pid() << ", " << Hex(r->address())
              << ") digest=" << ShortDigest(r->content_digest())
              << " checksum=" << absl::StrFormat("%08x", r->oldchecksum())
              << " seqnr=" << r->seqnr() << " depth=" << r->depth() << "\n";
  }
  if (previous.empty()) return;
  std::cout << "\n== unstable items of the previous pass (not in the tree): " << previous.size()
            << " ==\n";
  for (const v1::RmapItem* r : previous) {
    std::cout << "  (pid " << r->pid() << ", " << Hex(r->address())
              << ") digest=" << ShortDigest(r->content_digest())
              << " checksum=" << absl::StrFormat("%08x", r->oldchecksum())
              << " seqnr=" << r->seqnr() << "\n";
  }
}

int KsmDump(Context& ctx) {
  v1::Ksm ksm;
  if (int rc = GetKsm(ctx, &ksm)) return rc;
  v1::ListStableNodesResponse stable;
  if (int rc = ListStable(ctx, &stable)) return rc;
  v1::ListUnstableItemsResponse unstable;
  if (int rc = ListUnstable(ctx, &unstable)) return rc;
  if (ctx.json()) {
    // One object: {"ksm": {...}, "stable_nodes": [...], "unstable_items": [...]}.
    std::vector<std::string> nodes;
    for (const v1::StableNode& n : stable.stable_nodes()) nodes.push_back(Context::ToJson(n));
    std::vector<std::string> items;
    for (const v1::RmapItem& r : unstable.items()) items.push_back(Context::ToJson(r));
    std::cout << "{\"ksm\":" << Context::ToJson(ksm) << ",\"stable_nodes\":["
              << absl::StrJoin(nodes, ",") << "],\"unstable_items\":[" << absl::StrJoin(items, ",")
              << "]}\n";
    return kExitOk;
  }
  std::cout << "== " << ksm.name() << " ==\n";
  PrintKsm(ksm);
  PrintTrees(stable, unstable);
  return kExitOk;
}

}  // namespace

void AddKsmCommands(CommandSet& set) {
  set.Add("ksm get", "Show the KSM knobs and counters.").Run([](Context& ctx) {
    v1::Ksm ksm;
    if (int rc = GetKsm(ctx, &ksm)) return rc;
    if (ctx.json()) {
      ctx.PrintJson(ksm);
    } else {
      PrintKsm(ksm);
    }
    return kExitOk;
  });

  auto& a = set.Store<KsmArgs>();
  set.Add("ksm set", "Write KSM knobs (kernel validation; EINVAL exits 1).")
      .Flag("--run", &a.run, "N", "0 stop, 1 run, 2 stop and unmerge all", Uint())
      .Flag("--pages-to-scan", &a.pages_to_scan, "N", "visits per ksmd batch", Uint())
      .Flag("--sleep-millisecs", &a.sleep_millisecs, "N", "sleep between batches (realtime clock)",
            Uint())
      .AtLeastOneOf({"--run", "--pages-to-scan", "--sleep-millisecs"})
      .Run([&a](Context& ctx) { return KsmSet(ctx, a); });

  set.Add("ksm sysfs", "Write VALUE verbatim to /sys/kernel/mm/ksm/FILE (e.g. ksm sysfs run 1).")
      .Arg("FILE", &a.file, Words({"run", "pages_to_scan", "sleep_millisecs"}))
      .Arg("VALUE", &a.value)
      .Run([&a](Context& ctx) {
        v1::WriteKsmSysfsRequest request;
        request.set_name(ctx.KsmName());
        request.set_file(a.file);
        request.set_value(a.value);
        v1::UpdateKsmResponse response;
        if (int rc =
                ctx.Call(ctx.ksm(), &v1::KsmService::Stub::WriteKsmSysfs, request, &response)) {
          return rc;
        }
        return UpdateResult(ctx, response);
      });

  set.Add("ksm step", "Run ksmd's scanner now: N visits, or until full_scans grew by K.")
      .Flag("--visits", &a.visits, "N", "perform N visits", Uint())
      .Flag("--full-scans", &a.full_scans, "K", "scan until K more passes completed", Uint())
      .Flag("--max-visits", &a.max_visits, "N",
            "safety bound for --full-scans (server default 2^32)", Uint())
      .ExactlyOneOf({"--visits", "--full-scans"})
      .Needs("--max-visits", "--full-scans")
      .Run([&a](Context& ctx) { return KsmStep(ctx, a); });

  set.Add("ksm stable", "List the stable tree's nodes in tree order.").Run(KsmStable);

  set.Add("ksm unstable", "List the unstable tree's rmap items in tree order.")
      .Run([](Context& ctx) {
        v1::ListUnstableItemsResponse all;
        if (int rc = ListUnstable(ctx, &all)) return rc;
        if (ctx.json()) {
          ctx.PrintJson(all);
        } else {
          PrintRmapItems(all.items(), /*with_pid=*/true);
        }
        return kExitOk;
      });

  set.Add("ksm rmap", "List a process's rmap items in address order.")
      .Arg("PID", &a.pid, Uint(0, std::numeric_limits<int32_t>::max()))
      .Run([&a](Context& ctx) { return KsmRmap(ctx, a.pid); });

  set.Add("ksm dump", "Counters, then both trees with nodes indented by their depth.").Run(KsmDump);
}

}  // namespace cli
}  // namespace memnode
