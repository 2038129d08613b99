// watch: EventService.WatchEvents, one line (or JSON object) per event; and
// the event words `top` shares.

#include "client/cpp/commands/events.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>
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

bool StopSignal::Install() {
  if (fds_[0] >= 0) return true;
  if (pipe(fds_) != 0) {
    std::cerr << "error: pipe: " << std::strerror(errno) << "\n";
    return false;
  }
  for (int fd : fds_) fcntl(fd, F_SETFD, FD_CLOEXEC);
  fcntl(fds_[1], F_SETFL, O_NONBLOCK);
  struct sigaction sa {};
  sa.sa_handler = &StopSignal::Handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  // A closed stdout (`watch | head`) shows as a failed write, not a signal.
  signal(SIGPIPE, SIG_IGN);
  return true;
}

void StopSignal::Wake() {
  const char b = 'w';
  (void)!write(fds_[1], &b, 1);
}

bool StopSignal::Wait(int timeout_ms) {
  if (stopped_) return true;
  struct pollfd p {
    fds_[0], POLLIN, 0
  };
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = std::max<int64_t>(0, left.count());
    }
    int n = poll(&p, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    char b;
    if (read(fds_[0], &b, 1) == 1) {
      if (b == 's') stopped_ = true;
      return stopped_;
    }
  }
}

void StopSignal::Handler(int) {
  const char b = 's';
  (void)!write(fds_[1], &b, 1);
}

std::string ResultWord(v1::Errno errnum) {
  return errnum == v1::ERRNO_OK ? std::string("ok") : ErrnoName(errnum);
}

std::string EventLine(const v1::MachineEvent& e) {
  if (e.kind() == v1::EVENT_KIND_DROPPED) {
    return absl::StrFormat("%-8s %-15s %-15s lost %d events here (this client read too slowly)",
                           "-", "-", WordName(e.kind()), e.dropped());
  }
  std::string fields;
  switch (e.kind()) {
    case v1::EVENT_KIND_MERGE:
      fields = absl::StrCat("pid=", e.pid(), " address=", Hex(e.address()), " pfn=", e.pfn(),
                            " stable_node=", e.stable_node_id(), e.new_node() ? " new_node" : "");
      break;
    case v1::EVENT_KIND_COW_BREAK:
      fields = absl::StrCat("pid=", e.pid(), " address=", Hex(e.address()), " pfn=", e.pfn());
      break;
    case v1::EVENT_KIND_PRUNE:
      fields = absl::StrCat("pfn=", e.pfn(), " stable_node=", e.stable_node_id(),
                            " reason=", DisplayName(e.prune_reason()), " items=", e.value());
      break;
    case v1::EVENT_KIND_PASS_END: fields = absl::StrCat("full_scans=", e.value()); break;
    case v1::EVENT_KIND_PROCESS_EXIT: fields = absl::StrCat("pid=", e.pid()); break;
    case v1::EVENT_KIND_MIGRATE:
      fields = absl::StrCat("reason=", DisplayName(e.migrate_reason()), " pfn=", e.pfn(),
                            " ksm=", YesNo(e.ksm()), " result=", ResultWord(e.errnum()));
      break;
    case v1::EVENT_KIND_MEMORY_NOTIFY:
      // Like the offline report's notifier_calls lines (the kernel's names).
      fields = absl::StrCat("block=", e.block(), " ", ProtoName(e.memory_event()), " ",
                            e.notifier(), "(", e.notifier_priority(), ") ", ResultWord(e.errnum()));
      break;
    case v1::EVENT_KIND_OFFLINE_PHASE:
      fields = absl::StrCat("block=", e.block(), " phase=", UpperName(e.offline_phase()));
      break;
    case v1::EVENT_KIND_OFFLINE_RESULT:
      fields = absl::StrCat("block=", e.block(), " result=", ResultWord(e.errnum()),
                            " duration=", Duration(e.duration_ns()));
      break;
    case v1::EVENT_KIND_KSM_BATCH_HELD:
      fields = "ksmd batch waited for ksm_thread_mutex (offline)";
      break;
    default: break;
  }
  return absl::StrFormat("%-8d %-15s %-15s %s", e.sequence(), EmulatedSeconds(e.emulated_time_ns()),
                         WordName(e.kind()), fields);
}

bool EndedByServer(const grpc::Status& status, const std::string& machine) {
  const std::string reason = Context::Reason(status);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND && reason == "MACHINE_NOT_FOUND") {
    std::cerr << "stream ended: " << machine << " was deleted\n";
    return true;
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && reason == "SHUTTING_DOWN") {
    std::cerr << "stream ended: the server is shutting down\n";
    return true;
  }
  return false;
}

namespace {

struct WatchArgs {
  std::vector<v1::EventKind> kinds;
  uint64_t count = 0;  // 0: until stopped
};

int Watch(Context& ctx, const WatchArgs& a) {
  v1::WatchEventsRequest request;
  request.set_name(ctx.MachineName());
  for (v1::EventKind k : a.kinds) request.add_kinds(k);
  if (!StopSignal::Install()) return kExitUsage;

  // A missing machine is an error of the call (exit 3); once the stream is
  // open, NOT_FOUND means the machine was deleted while watched (exit 0).
  {
    v1::GetMachineRequest get;
    get.set_name(ctx.MachineName());
    v1::Machine machine;
    if (int rc = ctx.Call(ctx.machines(), &v1::MachineService::Stub::GetMachine, get, &machine)) {
      return rc;
    }
  }
  grpc::ClientContext context;
  // A watch has no deadline unless --timeout is given explicitly.
  ctx.Prepare(&context, /*deadline=*/ctx.TimeoutGiven());
  std::unique_ptr<grpc::ClientReader<v1::MachineEvent>> reader =
      ctx.events()->WatchEvents(&context, request);

  // Ctrl-C cancels the call; the Read below then returns false.
  std::atomic<bool> done{false};
  std::thread canceller([&] {
    while (!done.load()) {
      if (StopSignal::Wait(-1)) {
        context.TryCancel();
        return;
      }
    }
  });

  // The server sends its headers once the stream is subscribed: from then on
  // no event of the machine is missed. Said on stderr, so that scripts can
  // wait for it before they drive the machine.
  reader->WaitForInitialMetadata();
  std::cerr << "watching " << ctx.MachineName() << " (Ctrl-C to stop)\n" << std::flush;

  uint64_t seen = 0, lost = 0;
  bool out_closed = false;
  v1::MachineEvent event;
  while ((a.count == 0 || seen < a.count) && reader->Read(&event)) {
    if (event.kind() == v1::EVENT_KIND_DROPPED) {
      lost += event.dropped();
    } else {
      seen++;
    }
    std::cout << (ctx.json() ? Context::ToJson(event) : EventLine(event)) << "\n" << std::flush;
    if (!std::cout) {
      out_closed = true;  // stdout closed (`watch | head`): stop quietly
      break;
    }
  }
  const bool stopped_by_us = (a.count != 0 && seen >= a.count) || out_closed;
  if (stopped_by_us) context.TryCancel();
  grpc::Status status = reader->Finish();
  done.store(true);
  StopSignal::Wake();
  canceller.join();

  if (lost > 0) {
    std::cerr << "watch: " << lost << " events lost (the server's per-stream buffer was full)\n";
  }
  if (stopped_by_us || StopSignal::stopped() || status.ok()) return kExitOk;
  if (EndedByServer(status, ctx.MachineName())) return kExitOk;
  return Context::ReportRpcError(status);
}

}  // namespace

void AddWatchCommand(CommandSet& set) {
  auto& a = set.Store<WatchArgs>();
  ValueParser kinds = EnumValue<v1::EventKind>(NameStyle::kWord, [](v1::EventKind k) {
    // DROPPED is always delivered: not a choice.
    return k != v1::EVENT_KIND_UNSPECIFIED && k != v1::EVENT_KIND_DROPPED;
  });
  const std::string kinds_help =
      absl::StrCat("only these kinds (default: all): ", absl::StrJoin(kinds.words, ", "));
  set.Add("watch",
          "Stream the machine's events, one line (or, with --json, one JSON object) per event, "
          "until Ctrl-C.")
      .Flag("--kinds", &a.kinds, "KIND[,KIND...]", kinds_help, kinds)
      .Flag("--count", &a.count, "N", "stop after N events (dropped markers not counted)", Uint(1))
      .Details(
          "Lines: SEQUENCE EMULATED_SECONDS KIND FIELDS. Lost events (a reader too\n"
          "slow for the server's buffer) show as a `dropped` line and are summed on\n"
          "stderr at the end. Exits 0 on Ctrl-C, after --count events, and when the\n"
          "server ends the stream (machine deleted, server shutting down). No\n"
          "deadline unless --timeout is given (then exit 4 when it expires).\n")
      .Run([&a](Context& ctx) { return Watch(ctx, a); });
}

}  // namespace cli
}  // namespace memnode
