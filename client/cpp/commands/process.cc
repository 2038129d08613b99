// process * and the address-space syscalls (mmap, munmap, mprotect,
// madvise): ProcessService.

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

constexpr uint64_t kMaxPid = std::numeric_limits<int32_t>::max();

void PrintProcess(const v1::Process& p) {
  KeyValues kv;
  kv.Add("name", p.name());
  kv.Add("pid", absl::StrCat(p.pid()));
  kv.Add("parent_pid", absl::StrCat(p.parent_pid()));
  kv.Add("uid", absl::StrCat(p.uid()));
  kv.Add("privileged", YesNo(p.privileged()));
  kv.Add("home_node", absl::StrCat(p.home_node()));
  kv.Add("state", UpperName(p.state()));
  kv.Add("ksm_registered", YesNo(p.ksm_registered()));
  kv.Add("anon_pages", absl::StrCat(p.anon_pages()));
  kv.Add("ksm_pages", absl::StrCat(p.ksm_pages()));
  kv.Add("zero_pages", absl::StrCat(p.zero_pages()));
  kv.Add("shmem_pages", absl::StrCat(p.shmem_pages()));
  kv.Add("pinned_pages", absl::StrCat(p.pinned_pages()));
  kv.Add("vmas", absl::StrCat(p.vmas_size()));
  kv.Print(std::cout);
  if (p.vmas_size() == 0) return;
  std::cout << "\n";
  Table table({"START", "END", "SIZE", "PROT", "TYPE", "MERGEABLE", "ANON_VMA", "RESIDENT"});
  for (const v1::Vma& v : p.vmas()) {
    table.AddRow({Hex(v.start()), Hex(v.end()), absl::StrCat(v.end() - v.start()),
                  ProtString(v.prot()), v.shared() ? "shared" : "private", YesNo(v.mergeable()),
                  YesNo(v.has_anon_vma()), absl::StrCat(v.resident_pages())});
  }
  table.Print(std::cout, "  ");
}

int ProcessResult(Context& ctx, const v1::Process& process) {
  if (ctx.json()) {
    ctx.PrintJson(process);
  } else {
    PrintProcess(process);
  }
  return kExitOk;
}

struct CreateArgs {
  uint32_t uid = 0;
  bool privileged = false;
  uint32_t home_node = 0;
};

int ProcessCreate(Context& ctx, const CreateArgs& a) {
  v1::CreateProcessRequest request;
  request.set_parent(ctx.MachineName());
  request.mutable_process()->set_uid(a.uid);
  request.mutable_process()->set_home_node(a.home_node);
  request.mutable_process()->set_privileged(a.privileged);
  v1::Process process;
  if (int rc =
          ctx.Call(ctx.processes(), &v1::ProcessService::Stub::CreateProcess, request, &process)) {
    return rc;
  }
  return ProcessResult(ctx, process);
}

int ProcessList(Context& ctx, bool show_exited) {
  v1::ListProcessesResponse all;
  if (int rc = ctx.FetchAll(&all, [&](const std::string& token, v1::ListProcessesResponse* page) {
        v1::ListProcessesRequest request;
        request.set_parent(ctx.MachineName());
        request.set_page_size(kListPageSize);
        request.set_page_token(token);
        request.set_show_exited(show_exited);
        return ctx.Call(ctx.processes(), &v1::ProcessService::Stub::ListProcesses, request, page);
      })) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  Table table({"PID", "UID", "PRIV", "HOME", "STATE", "VMAS", "ANON", "KSM", "ZERO", "SHMEM",
               "PINNED", "PPID", "KSM_MM"});
  for (const v1::Process& p : all.processes()) {
    table.AddRow({absl::StrCat(p.pid()), absl::StrCat(p.uid()), YesNo(p.privileged()),
                  absl::StrCat(p.home_node()), UpperName(p.state()), absl::StrCat(p.vmas_size()),
                  absl::StrCat(p.anon_pages()), absl::StrCat(p.ksm_pages()),
                  absl::StrCat(p.zero_pages()), absl::StrCat(p.shmem_pages()),
                  absl::StrCat(p.pinned_pages()), absl::StrCat(p.parent_pid()),
                  YesNo(p.ksm_registered())});
  }
  table.Print(std::cout);
  return kExitOk;
}

int ProcessExit(Context& ctx, int32_t pid) {
  v1::ExitProcessRequest request;
  request.set_name(ctx.ProcessName(pid));
  v1::ExitProcessResponse response;
  if (int rc =
          ctx.Call(ctx.processes(), &v1::ProcessService::Stub::ExitProcess, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    KeyValues kv;
    kv.Add("exited", request.name());
    kv.Add("pages_freed", absl::StrCat(response.pages_freed()));
    kv.Print(std::cout);
  }
  return kExitOk;
}

struct MmapArgs {
  int32_t pid = 0;
  uint64_t length = 0;
  uint64_t address = 0;
  uint32_t prot = v1::PROT_READ | v1::PROT_WRITE;
  bool shared = false;
  bool fixed = false;
};

int Mmap(Context& ctx, const MmapArgs& a) {
  v1::MmapRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_length(a.length);
  request.set_address(a.address);
  request.set_prot(a.prot);
  request.set_shared(a.shared);
  request.set_fixed(a.fixed);
  v1::MmapResponse response;
  if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::Mmap, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << Hex(response.address()) << "\n";
  }
  return ctx.ErrnoExit(response.errnum(), "");
}

// PID ADDR LENGTH [...] of the range syscalls.
struct RangeArgs {
  int32_t pid = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  uint32_t prot = 0;
  v1::Advice advice = v1::ADVICE_UNSPECIFIED;
};

Command& AddRange(CommandSet& set, const std::string& path, const std::string& summary,
                  RangeArgs& a) {
  return set.Add(path, summary)
      .Arg("PID", &a.pid, Uint(0, kMaxPid))
      .Arg("ADDR", &a.address, Size())
      .Arg("LENGTH", &a.length, Size());
}

}  // namespace

void AddProcessCommands(CommandSet& set) {
  auto& create = set.Store<CreateArgs>();
  set.Add("process create", "Create a process with an empty address space.")
      .Flag("--uid", &create.uid, "N", "user id (default 0)", Uint(0, UINT32_MAX))
      .Switch("--privileged", &create.privileged, "give it CAP_SYS_NICE")
      .Flag("--home-node", &create.home_node, "N",
            "node where its default policy allocates (default 0)", Uint(0, UINT32_MAX))
      .Run([&create](Context& ctx) { return ProcessCreate(ctx, create); });

  auto& show_exited = set.Store<bool>();
  set.Add("process list", "List processes.")
      .Switch("--show-exited", &show_exited, "also list exited processes whose mm KSM still holds")
      .Run([&show_exited](Context& ctx) { return ProcessList(ctx, show_exited); });

  auto& get_pid = set.Store<int32_t>();
  set.Add("process get", "Show a process with its VMAs.")
      .Arg("PID", &get_pid, Uint(0, kMaxPid))
      .Run([&get_pid](Context& ctx) {
        v1::GetProcessRequest request;
        request.set_name(ctx.ProcessName(get_pid));
        v1::Process process;
        if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::GetProcess, request,
                              &process)) {
          return rc;
        }
        return ProcessResult(ctx, process);
      });

  auto& fork_pid = set.Store<int32_t>();
  set.Add("process fork", "fork(2): print the child.")
      .Arg("PID", &fork_pid, Uint(0, kMaxPid))
      .Run([&fork_pid](Context& ctx) {
        v1::ForkProcessRequest request;
        request.set_name(ctx.ProcessName(fork_pid));
        v1::Process child;
        if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::ForkProcess, request,
                              &child)) {
          return rc;
        }
        return ProcessResult(ctx, child);
      });

  auto& exit_pid = set.Store<int32_t>();
  set.Add("process exit", "exit(2): unmap everything.")
      .Arg("PID", &exit_pid, Uint(0, kMaxPid))
      .Run([&exit_pid](Context& ctx) { return ProcessExit(ctx, exit_pid); });

  auto& mmap = set.Store<MmapArgs>();
  set.Add("mmap", "mmap(2) anonymous memory; prints the address.")
      .Arg("PID", &mmap.pid, Uint(0, kMaxPid))
      .Arg("LENGTH", &mmap.length, Size())
      .Flag("--address", &mmap.address, "A", "hint (or the exact address with --fixed)", Size())
      .Flag("--prot", &mmap.prot, "P", "rw (default), r, w or none", Prot())
      .Switch("--shared", &mmap.shared, "MAP_SHARED (shmem) instead of MAP_PRIVATE")
      .Switch("--fixed", &mmap.fixed, "MAP_FIXED at --address")
      .Needs("--fixed", "--address")
      .Run([&mmap](Context& ctx) { return Mmap(ctx, mmap); });

  auto& munmap = set.Store<RangeArgs>();
  AddRange(set, "munmap", "munmap(2).", munmap).Run([&munmap](Context& ctx) {
    v1::MunmapRequest request;
    request.set_name(ctx.ProcessName(munmap.pid));
    request.set_address(munmap.address);
    request.set_length(munmap.length);
    v1::SyscallResult result;
    if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::Munmap, request, &result)) {
      return rc;
    }
    return ctx.SyscallDone(result);
  });

  auto& mprotect = set.Store<RangeArgs>();
  AddRange(set, "mprotect", "mprotect(2); PROT is rw, r, w or none.", mprotect)
      .Arg("PROT", &mprotect.prot, Prot())
      .Run([&mprotect](Context& ctx) {
        v1::MprotectRequest request;
        request.set_name(ctx.ProcessName(mprotect.pid));
        request.set_address(mprotect.address);
        request.set_length(mprotect.length);
        request.set_prot(mprotect.prot);
        v1::SyscallResult result;
        if (int rc =
                ctx.Call(ctx.processes(), &v1::ProcessService::Stub::Mprotect, request, &result)) {
          return rc;
        }
        return ctx.SyscallDone(result);
      });

  auto& madvise = set.Store<RangeArgs>();
  AddRange(set, "madvise", "madvise(2) with MADV_MERGEABLE, MADV_UNMERGEABLE or MADV_DONTNEED.",
           madvise)
      .Arg("ADVICE", &madvise.advice,
           EnumValue<v1::Advice>(NameStyle::kWord,
                                 [](v1::Advice a) { return a != v1::ADVICE_UNSPECIFIED; }))
      .Shown("mergeable|unmergeable|dontneed")
      .Run([&madvise](Context& ctx) {
        v1::MadviseRequest request;
        request.set_name(ctx.ProcessName(madvise.pid));
        request.set_address(madvise.address);
        request.set_length(madvise.length);
        request.set_advice(madvise.advice);
        v1::SyscallResult result;
        if (int rc =
                ctx.Call(ctx.processes(), &v1::ProcessService::Stub::Madvise, request, &result)) {
          return rc;
        }
        return ctx.SyscallDone(result);
      });
}

}  // namespace cli
}  // namespace memnode
