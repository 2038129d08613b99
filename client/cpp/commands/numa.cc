// NUMA policy and migration: mempolicy set / get, mbind, migrate-pages,
// move-pages (NumaService).

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

constexpr uint64_t kMaxPid = std::numeric_limits<int32_t>::max();

struct NumaArgs {
  int32_t pid = 0;
  int32_t target = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  v1::MempolicyMode mode = v1::MPOL_DEFAULT;
  uint64_t nodes = 0;
  uint64_t old_nodes = 0;
  bool node = false;
  bool strict = false, move = false, move_all = false;
  std::string addresses;           // move-pages: "n,n,..." (SizeList)
  std::vector<uint64_t> to_nodes;  // move-pages --nodes
};

int MempolicyGet(Context& ctx, const NumaArgs& a) {
  v1::GetMempolicyRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  if (ctx.Given("--address")) request.set_address(a.address);
  request.set_node_of_address(a.node);
  v1::GetMempolicyResponse response;
  if (int rc = ctx.Call(ctx.numa(), &v1::NumaService::Stub::GetMempolicy, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    KeyValues kv;
    kv.Add("mode", UpperName(response.mode()));
    kv.Add("nodes",
           absl::StrCat(NodeMaskString(response.nodes()), " (mask ", Hex(response.nodes()), ")"));
    if (request.node_of_address()) kv.Add("node", absl::StrCat(response.node()));
    kv.Print(std::cout);
  }
  return ctx.ErrnoExit(response.errnum(), "");
}

// A move_pages status: the node id, or the errno name of -status.
std::string MoveStatus(int32_t status) {
  if (status >= 0) return absl::StrCat(status);
  if (v1::Errno_IsValid(-status)) return ErrnoName(static_cast<v1::Errno>(-status));
  return absl::StrCat("errno ", -status);
}

int MovePages(Context& ctx, const NumaArgs& a) {
  v1::MovePagesRequest request;
  request.set_caller(ctx.ProcessName(a.pid));
  request.set_pid(a.target);
  absl::StatusOr<std::vector<uint64_t>> addresses = ParseSizeList(a.addresses);
  if (!addresses.ok()) return ctx.UsageError(std::string(addresses.status().message()));
  for (uint64_t address : *addresses) request.add_addresses(address);
  if (ctx.Given("--nodes")) {
    const std::vector<uint64_t>& nodes = a.to_nodes;
    if (nodes.size() != 1 && nodes.size() != addresses->size()) {
      return ctx.UsageError("--nodes needs one node, or one per address");
    }
    for (size_t i = 0; i < addresses->size(); ++i) {
      request.add_nodes(static_cast<int32_t>(nodes[nodes.size() == 1 ? 0 : i]));
    }
  }
  request.set_flags(a.move_all ? v1::MPOL_MF_MOVE_ALL : v1::MPOL_MF_MOVE);
  v1::MovePagesResponse response;
  if (int rc = ctx.Call(ctx.numa(), &v1::NumaService::Stub::MovePages, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    // One line per address that got a status: the address, then the node
    // id or the errno name. A whole-call error leaves the rest out.
    std::vector<std::pair<std::string, std::string>> lines;
    size_t width = 0;
    for (int i = 0; i < response.status_size() && i < request.addresses_size(); ++i) {
      lines.emplace_back(Hex(request.addresses(i)), MoveStatus(response.status(i)));
      width = std::max(width, lines.back().first.size());
    }
    for (const auto& [address, status] : lines) {
      std::cout << address << std::string(width - address.size() + 2, ' ') << status << "\n";
    }
  }
  return ctx.ErrnoExit(response.errnum(), "");
}

ValueParser Modes() { return EnumValue<v1::MempolicyMode>(NameStyle::kWord); }

}  // namespace

void AddNumaCommands(CommandSet& set) {
  auto& a = set.Store<NumaArgs>();
  set.Add("mempolicy set",
          "set_mempolicy(2): MODE default|preferred|bind|interleave, NODES like 0,1 or 0-1 or "
          "none.")
      .Arg("PID", &a.pid, Uint(0, kMaxPid))
      .Arg("MODE", &a.mode, Modes())
      .OptionalArg("NODES", &a.nodes, NodeList())
      .Run([&a](Context& ctx) {
        v1::SetMempolicyRequest request;
        request.set_name(ctx.ProcessName(a.pid));
        request.set_mode(a.mode);
        request.set_nodes(a.nodes);
        v1::SyscallResult result;
        if (int rc = ctx.Call(ctx.numa(), &v1::NumaService::Stub::SetMempolicy, request, &result)) {
          return rc;
        }
        return ctx.SyscallDone(result);
      });

  set.Add("mempolicy get", "get_mempolicy(2): the task policy, or the VMA's at --address.")
      .Arg("PID", &a.pid, Uint(0, kMaxPid))
      .Flag("--address", &a.address, "A", "MPOL_F_ADDR: the policy of the VMA at A", Size())
      .Switch("--node", &a.node, "MPOL_F_NODE: also the node of the page at A (read-faults\nit in)")
      .Needs("--node", "--address")
      .Run([&a](Context& ctx) { return MempolicyGet(ctx, a); });

  set.Add("mbind", "mbind(2) over [ADDR, ADDR+LEN); KSM pages are never moved.")
      .Arg("PID", &a.pid, Uint(0, kMaxPid))
      .Arg("ADDR", &a.address, Size())
      .Arg("LEN", &a.length, Size())
      .Arg("MODE", &a.mode, Modes())
      .Arg("NODES", &a.nodes, NodeList())
      .Switch("--strict", &a.strict, "MPOL_MF_STRICT: EIO when a page is misplaced")
      .Switch("--move", &a.move, "MPOL_MF_MOVE: migrate pages mapped once")
      .Switch("--move-all", &a.move_all, "MPOL_MF_MOVE_ALL: also shared pages (needs privilege)")
      .Run([&a](Context& ctx) {
        v1::MbindRequest request;
        request.set_name(ctx.ProcessName(a.pid));
        request.set_address(a.address);
        request.set_length(a.length);
        request.set_mode(a.mode);
        request.set_nodes(a.nodes);
        request.set_flags((a.strict ? v1::MPOL_MF_STRICT : 0) | (a.move ? v1::MPOL_MF_MOVE : 0) |
                          (a.move_all ? v1::MPOL_MF_MOVE_ALL : 0));
        v1::SyscallResult result;
        if (int rc = ctx.Call(ctx.numa(), &v1::NumaService::Stub::Mbind, request, &result)) {
          return rc;
        }
        return ctx.SyscallDone(result);
      });

  set.Add("migrate-pages",
          "migrate_pages(2) by CALLER_PID on TARGET_PID (0 = itself); prints the pages not "
          "migrated.")
      .Arg("CALLER_PID", &a.pid, Uint(0, kMaxPid))
      .Arg("TARGET_PID", &a.target, Uint(0, kMaxPid))
      .Arg("OLD_NODES", &a.old_nodes, NodeList())
      .Arg("NEW_NODES", &a.nodes, NodeList())
      .Run([&a](Context& ctx) {
        v1::MigratePagesRequest request;
        request.set_caller(ctx.ProcessName(a.pid));
        request.set_pid(a.target);
        request.set_old_nodes(a.old_nodes);
        request.set_new_nodes(a.nodes);
        v1::MigratePagesResponse response;
        if (int rc =
                ctx.Call(ctx.numa(), &v1::NumaService::Stub::MigratePages, request, &response)) {
          return rc;
        }
        if (ctx.json()) {
          ctx.PrintJson(response);
        } else if (response.errnum() == v1::ERRNO_OK) {
          std::cout << "not_migrated: " << response.not_migrated() << "\n";
        }
        return ctx.ErrnoExit(response.errnum(), "");
      });

  set.Add("move-pages", "move_pages(2): one line per address with its node or errno name.")
      .Arg("CALLER_PID", &a.pid, Uint(0, kMaxPid))
      .Arg("TARGET_PID", &a.target, Uint(0, kMaxPid))
      .Arg("ADDRS", &a.addresses, SizeList())
      .Shown("ADDR[,ADDR...]")
      .Flag("--nodes", &a.to_nodes, "N[,N...]",
            "target node per address (one node: all of them);\nwithout it, query mode",
            Uint(0, std::numeric_limits<int32_t>::max()))
      .Switch("--move-all", &a.move_all, "MPOL_MF_MOVE_ALL (default MPOL_MF_MOVE)")
      .Run([&a](Context& ctx) { return MovePages(ctx, a); });
}

}  // namespace cli
}  // namespace memnode
