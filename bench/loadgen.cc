// memnode_loadgen: RPC load against memnoded with the gRPC callback API, and
// the same generator against a bare echo server as the baseline.
//
// Each of --clients clients owns a REALTIME machine (2 nodes x 4 blocks x 256
// pages) with ksmd running, one process and a 64-page mergeable region, and
// keeps one call in flight (issued from the previous call's callback) for
// --seconds, drawing from a mix of memory calls (Write/Read/Fill/Digest/
// Translate), KSM calls (GetKsm, Madvise, a rare StepKsm), migration
// (MovePages, MigratePages, Mbind) and offline/online of node 1's blocks.
// Every client is the only writer of its region and keeps a shadow copy:
// every ReadMemory is compared byte for byte with it while ksmd merges and
// pages migrate, and the whole region is compared once more at the end, with
// CheckMachine on every machine.
//
// Phases: mixed (--seconds), small calls (GetKsm only, --small_seconds),
// echo baseline (Echo with a 16-byte payload, --small_seconds, same clients).
// Report: throughput, p50/p99 latency per method, emulated errnos per method
// (data, not errors), unexpected gRPC errors (must be zero; each is printed),
// content mismatches, CheckMachine verdicts, server RSS each second when the
// server's pid is known (started here, or --server_pid) and whether it grew
// after the first third of the mixed phase; memnode's small-call throughput
// as a ratio to echo's.
//
// Exit status: 0 clean; 1 unexpected gRPC errors, content mismatches or
// broken invariants; 2 usage or start-up failure.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "echo.grpc.pb.h"
#include "memnode/v1/hotplug.grpc.pb.h"
#include "memnode/v1/ksm.grpc.pb.h"
#include "memnode/v1/machine.grpc.pb.h"
#include "memnode/v1/numa.grpc.pb.h"
#include "memnode/v1/process.grpc.pb.h"
#include "tests/testing/server_process.h"

ABSL_FLAG(std::string, server, "",
          "memnoded address (host:port); empty: start --memnoded on 127.0.0.1:0");
ABSL_FLAG(std::string, memnoded, "",
          "memnoded binary to start when --server is empty (default: ../server/memnoded next to "
          "this binary)");
ABSL_FLAG(int, server_pid, 0, "pid of the --server process, to sample its RSS");
ABSL_FLAG(std::string, echo_server, "",
          "memnode_echo_server binary (default: next to this binary)");
ABSL_FLAG(std::string, echo_address, "",
          "an already running echo server (host:port) instead of starting one");
ABSL_FLAG(bool, echo, true, "run the echo baseline");
ABSL_FLAG(int, clients, 4, "concurrent clients (one machine each, one call in flight each)");
ABSL_FLAG(double, seconds, 10, "duration of the mixed phase");
ABSL_FLAG(double, small_seconds, -1,
          "duration of the small-call and echo phases (default: seconds/3, 2..10)");
ABSL_FLAG(std::string, token, "",
          "bearer token for memnoded started with --token_file (admin role)");
ABSL_FLAG(uint64_t, seed, 1, "random seed of the call mix");
ABSL_FLAG(int, deadline_ms, 30000, "deadline of each call");

namespace {

namespace v1 = memnode::v1;
namespace echo = memnode_bench::echo::v1;
using ::memnode::testing::ExecutableDir;
using ::memnode::testing::ReadRssKib;
using ::memnode::testing::ServerProcess;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRegionPages = 64;
constexpr uint32_t kNodes = 2;
constexpr uint32_t kBlocksPerNode = 4;
constexpr uint64_t kPagesPerBlock = 256;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ------------------------------------------------------------------ stats

struct MethodStats {
  std::vector<uint32_t> lat_us;
  std::map<int, uint64_t> errnos;  // emulated errno (0 = OK) of OK responses
};

struct GrpcError {
  std::string method;
  grpc::StatusCode code;
  std::string message;
};

struct ClientStats {
  std::map<std::string, MethodStats> methods;
  std::map<int, uint64_t> grpc_errors;  // by status code
  std::vector<GrpcError> first_errors;  // the first few, printed
  uint64_t calls = 0;
  uint64_t mismatches = 0;
  std::vector<std::string> mismatch_notes;
  // What the offlines did (OfflineReport), to show KSM pages were involved.
  uint64_t offline_pages_migrated = 0, offline_ksm_pages_migrated = 0, offline_pruned = 0;

  void Merge(const ClientStats& o) {
    for (const auto& [m, s] : o.methods) {
      MethodStats& d = methods[m];
      d.lat_us.insert(d.lat_us.end(), s.lat_us.begin(), s.lat_us.end());
      for (const auto& [e, n] : s.errnos) d.errnos[e] += n;
    }
    for (const auto& [c, n] : o.grpc_errors) grpc_errors[c] += n;
    for (const auto& e : o.first_errors)
      if (first_errors.size() < 20) first_errors.push_back(e);
    calls += o.calls;
    mismatches += o.mismatches;
    offline_pages_migrated += o.offline_pages_migrated;
    offline_ksm_pages_migrated += o.offline_ksm_pages_migrated;
    offline_pruned += o.offline_pruned;
    for (const auto& n : o.mismatch_notes)
      if (mismatch_notes.size() < 20) mismatch_notes.push_back(n);
  }
};

const char* CodeName(int code) {
  switch (code) {
    case 0: return "OK";
    case 1: return "CANCELLED";
    case 2: return "UNKNOWN";
    case 3: return "INVALID_ARGUMENT";
    case 4: return "DEADLINE_EXCEEDED";
    case 5: return "NOT_FOUND";
    case 6: return "ALREADY_EXISTS";
    case 7: return "PERMISSION_DENIED";
    case 8: return "RESOURCE_EXHAUSTED";
    case 9: return "FAILED_PRECONDITION";
    case 10: return "ABORTED";
    case 11: return "OUT_OF_RANGE";
    case 12: return "UNIMPLEMENTED";
    case 13: return "INTERNAL";
    case 14: return "UNAVAILABLE";
    case 15: return "DATA_LOSS";
    case 16: return "UNAUTHENTICATED";
  }
  return "?";
}

std::string ErrnoName(int e) {
  if (e < 0) return absl::StrCat("-", ErrnoName(-e));
  const std::string n = v1::Errno_Name(static_cast<v1::Errno>(e));
  if (n.empty()) return absl::StrCat(e);
  return n.rfind("ERRNO_", 0) == 0 ? n.substr(6) : n;
}

// ----------------------------------------------------------------- client

enum class Mode { kMixed, kSmall, kEcho };

class LoadClient {
 public:
  LoadClient(int index, std::shared_ptr<grpc::Channel> channel, uint64_t seed)
      : index_(index),
        rng_(seed * 1000003 + index),
        machines_(v1::MachineService::NewStub(channel)),
        processes_(v1::ProcessService::NewStub(channel)),
        ksm_(v1::KsmService::NewStub(channel)),
        numa_(v1::NumaService::NewStub(channel)),
        blocks_(v1::MemoryBlockService::NewStub(channel)),
        shadow_(kRegionPages * kPage, 0) {}

  void SetEchoChannel(std::shared_ptr<grpc::Channel> channel) {
    echo_ = echo::EchoService::NewStub(channel);
  }

  // Synchronous set-up: machine, ksmd running, process, mergeable region
  // filled with four page contents (so ksmd has duplicates to merge).
  bool Setup(const std::string& machine_id, std::string* error) {
    machine_ = "machines/" + machine_id;
    {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::CreateMachineRequest req;
      req.set_machine_id(machine_id);
      req.mutable_machine()->mutable_topology()->set_nodes(kNodes);
      req.mutable_machine()->mutable_topology()->set_blocks_per_node(kBlocksPerNode);
      req.mutable_machine()->mutable_topology()->set_pages_per_block(kPagesPerBlock);
      req.mutable_machine()->set_clock_mode(v1::CLOCK_MODE_REALTIME);
      v1::Machine m;
      grpc::Status s = machines_->CreateMachine(&ctx, req, &m);
      if (!s.ok()) return Fail("CreateMachine", s, error);
      created_ = true;
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::UpdateKsmRequest req;
      req.set_name(machine_ + "/ksm");
      req.set_run(1);
      req.set_pages_to_scan(100);
      req.set_sleep_millisecs(5);
      v1::UpdateKsmResponse resp;
      grpc::Status s = ksm_->UpdateKsm(&ctx, req, &resp);
      if (!s.ok()) return Fail("UpdateKsm", s, error);
      if (resp.errnum() != v1::ERRNO_OK)
        return FailText("UpdateKsm errno " + ErrnoName(resp.errnum()), error);
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::CreateProcessRequest req;
      req.set_parent(machine_);
      req.mutable_process()->set_uid(1000);
      req.mutable_process()->set_privileged(true);
      v1::Process p;
      grpc::Status s = processes_->CreateProcess(&ctx, req, &p);
      if (!s.ok()) return Fail("CreateProcess", s, error);
      process_ = p.name();
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::MmapRequest req;
      req.set_name(process_);
      req.set_length(kRegionPages * kPage);
      req.set_prot(v1::PROT_READ | v1::PROT_WRITE);
      v1::MmapResponse resp;
      grpc::Status s = processes_->Mmap(&ctx, req, &resp);
      if (!s.ok()) return Fail("Mmap", s, error);
      if (resp.errnum() != v1::ERRNO_OK)
        return FailText("Mmap errno " + ErrnoName(resp.errnum()), error);
      base_ = resp.address();
    }
    for (uint64_t p = 0; p < kRegionPages; ++p) {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::FillMemoryRequest req;
      req.set_name(process_);
      req.set_address(base_ + p * kPage);
      req.set_length(kPage);
      req.set_byte_value(0x11 * (1 + p % 4));
      v1::MemoryAccessResult resp;
      grpc::Status s = processes_->FillMemory(&ctx, req, &resp);
      if (!s.ok()) return Fail("FillMemory", s, error);
      if (resp.errnum() != v1::ERRNO_OK)
        return FailText("FillMemory errno " + ErrnoName(resp.errnum()), error);
      std::memset(&shadow_[p * kPage], 0x11 * (1 + p % 4), kPage);
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      v1::MadviseRequest req;
      req.set_name(process_);
      req.set_address(base_);
      req.set_length(kRegionPages * kPage);
      req.set_advice(v1::ADVICE_MERGEABLE);
      v1::SyscallResult resp;
      grpc::Status s = processes_->Madvise(&ctx, req, &resp);
      if (!s.ok()) return Fail("Madvise", s, error);
    }
    return true;
  }

  // Runs `mode` until `until`; `done` is called once, from a gRPC thread.
  void Run(Mode mode, Clock::time_point until, std::function<void()> done) {
    mode_ = mode;
    until_ = until;
    done_ = std::move(done);
    stats_ = ClientStats();
    Next();
  }

  const ClientStats& stats() const { return stats_; }

  // End of the run: the whole region against the shadow, CheckMachine.
  // Returns false on a mismatch or a broken invariant (described in *note).
  bool Verify(std::string* note, std::string* digest, v1::Ksm* ksm) {
    {
      grpc::ClientContext kctx;
      Prepare(&kctx);
      v1::GetKsmRequest kreq;
      kreq.set_name(machine_ + "/ksm");
      ksm_->GetKsm(&kctx, kreq, ksm);
    }
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ReadMemoryRequest req;
    req.set_name(process_);
    req.set_address(base_);
    req.set_length(kRegionPages * kPage);
    v1::ReadMemoryResponse resp;
    grpc::Status s = processes_->ReadMemory(&ctx, req, &resp);
    bool ok = true;
    if (!s.ok() || resp.errnum() != v1::ERRNO_OK ||
        resp.data() != std::string(shadow_.begin(), shadow_.end())) {
      *note = absl::StrCat(machine_, ": final read of the region differs from what was written (",
                           s.ok() ? ErrnoName(resp.errnum()) : s.error_message(), ")");
      ok = false;
    }
    grpc::ClientContext cctx;
    Prepare(&cctx);
    v1::CheckMachineRequest creq;
    creq.set_name(machine_);
    v1::CheckMachineResponse cresp;
    s = machines_->CheckMachine(&cctx, creq, &cresp);
    if (!s.ok() || !cresp.ok()) {
      absl::StrAppend(note, ok ? "" : "; ", machine_, ": CheckMachine ",
                      s.ok()
                          ? absl::StrCat(cresp.violations_size(), " violations",
                                         cresp.violations_size() ? ": " + cresp.violations(0) : "")
                          : s.error_message());
      ok = false;
    }
    *digest = cresp.state_digest();
    return ok;
  }

  void Delete() {
    if (!created_) return;
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::DeleteMachineRequest req;
    req.set_name(machine_);
    google::protobuf::Empty e;
    machines_->DeleteMachine(&ctx, req, &e);
    created_ = false;
  }

  const std::string& machine() const { return machine_; }

 private:
  template <class Req, class Resp>
  struct Call {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
    Clock::time_point t0;
  };

  void Prepare(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
    static const std::string token = absl::GetFlag(FLAGS_token);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }

  bool Fail(const char* what, const grpc::Status& s, std::string* error) {
    *error = absl::StrCat(what, ": ", CodeName(s.error_code()), ": ", s.error_message());
    return false;
  }
  bool FailText(const std::string& what, std::string* error) {
    *error = what;
    return false;
  }

  // Issues one call; `start(ctx, req, resp, cb)` calls stub->async()->X;
  // `on_ok(req, resp)` returns the emulated errno of an OK response.
  template <class Req, class Resp, class Start, class OnOk>
  void Issue(const char* method, Req req, Start start, OnOk on_ok) {
    auto* c = new Call<Req, Resp>;
    c->req = std::move(req);
    Prepare(&c->ctx);
    c->t0 = Clock::now();
    start(&c->ctx, &c->req, &c->resp, [this, c, method, on_ok](grpc::Status s) {
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c->t0).count();
      MethodStats& m = stats_.methods[method];
      m.lat_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      ++stats_.calls;
      if (s.ok()) {
        m.errnos[on_ok(c->req, c->resp)]++;
      } else {
        stats_.grpc_errors[s.error_code()]++;
        if (stats_.first_errors.size() < 20)
          stats_.first_errors.push_back({method, s.error_code(), s.error_message()});
      }
      delete c;
      Next();
    });
  }

  uint64_t Rand(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  uint64_t RandomPage() { return Rand(kRegionPages); }

  void Next() {
    if (Clock::now() >= until_) {
      auto d = std::move(done_);
      d();
      return;
    }
    switch (mode_) {
      case Mode::kSmall: return GetKsm();
      case Mode::kEcho: return Echo();
      case Mode::kMixed: break;
    }
    // Weights (of 100).
    const uint64_t r = Rand(100);
    if (r < 18) return Write();
    if (r < 38) return Read();
    if (r < 48) return Fill();
    if (r < 56) return Digest();
    if (r < 64) return Translate();
    if (r < 74) return GetKsm();
    if (r < 78) return Madvise();
    if (r < 79) return StepKsm();
    if (r < 86) return MovePages();
    if (r < 89) return MigratePages();
    if (r < 95) return Mbind();
    return OfflineOrOnline();
  }

  // Applies `bytes_done` bytes of a write or fill to the shadow.
  void Shadow(uint64_t address, uint64_t bytes_done, const std::function<uint8_t(uint64_t)>& byte) {
    for (uint64_t k = 0; k < bytes_done; ++k) {
      const uint64_t off = address - base_ + k;
      if (off < shadow_.size()) shadow_[off] = byte(k);
    }
  }

  void Write() {
    v1::WriteMemoryRequest req;
    req.set_name(process_);
    const uint64_t len = 1 + Rand(256);
    const uint64_t off = Rand(kRegionPages * kPage - len);
    req.set_address(base_ + off);
    std::string data(len, '\0');
    for (auto& ch : data) ch = static_cast<char>(Rand(256));
    req.set_data(std::move(data));
    Issue<v1::WriteMemoryRequest, v1::MemoryAccessResult>(
        "WriteMemory", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->WriteMemory(ctx, q, p, cb);
        },
        [this](const v1::WriteMemoryRequest& q, const v1::MemoryAccessResult& p) {
          Shadow(q.address(), p.bytes_done(),
                 [&q](uint64_t k) { return static_cast<uint8_t>(q.data()[k]); });
          return static_cast<int>(p.errnum());
        });
  }

  void Read() {
    v1::ReadMemoryRequest req;
    req.set_name(process_);
    const uint64_t len = 1 + Rand(4096);
    const uint64_t off = Rand(kRegionPages * kPage - len);
    req.set_address(base_ + off);
    req.set_length(len);
    Issue<v1::ReadMemoryRequest, v1::ReadMemoryResponse>(
        "ReadMemory", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->ReadMemory(ctx, q, p, cb);
        },
        [this](const v1::ReadMemoryRequest& q, const v1::ReadMemoryResponse& p) {
          if (p.errnum() == v1::ERRNO_OK) {
            const uint64_t off = q.address() - base_;
            if (p.data().size() != q.length() ||
                std::memcmp(p.data().data(), &shadow_[off], q.length()) != 0) {
              ++stats_.mismatches;
              if (stats_.mismatch_notes.size() < 20)
                stats_.mismatch_notes.push_back(
                    absl::StrFormat("%s: ReadMemory 0x%x +%d differs from the last write", machine_,
                                    q.address(), q.length()));
            }
          }
          return static_cast<int>(p.errnum());
        });
  }

  void Fill() {
    v1::FillMemoryRequest req;
    req.set_name(process_);
    const uint64_t pages = 1 + Rand(2);
    const uint64_t page = Rand(kRegionPages - pages + 1);
    req.set_address(base_ + page * kPage);
    req.set_length(pages * kPage);
    // Mostly the four contents of the set-up (merge candidates again).
    if (Rand(4) != 0)
      req.set_byte_value(0x11 * (1 + Rand(4)));
    else
      req.set_pattern64(rng_());
    Issue<v1::FillMemoryRequest, v1::MemoryAccessResult>(
        "FillMemory", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->FillMemory(ctx, q, p, cb);
        },
        [this](const v1::FillMemoryRequest& q, const v1::MemoryAccessResult& p) {
          if (q.has_byte_value())
            Shadow(q.address(), p.bytes_done(),
                   [&q](uint64_t) { return static_cast<uint8_t>(q.byte_value()); });
          else
            Shadow(q.address(), p.bytes_done(), [&q](uint64_t k) {
              return static_cast<uint8_t>(q.pattern64() >> (8 * (k % 8)));
            });
          return static_cast<int>(p.errnum());
        });
  }

  void Digest() {
    v1::DigestMemoryRequest req;
    req.set_name(process_);
    req.set_address(base_ + RandomPage() / 2 * kPage);
    req.set_length(4 * kPage);
    Issue<v1::DigestMemoryRequest, v1::DigestMemoryResponse>(
        "DigestMemory", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->DigestMemory(ctx, q, p, cb);
        },
        [](const v1::DigestMemoryRequest&, const v1::DigestMemoryResponse& p) {
          return static_cast<int>(p.errnum());
        });
  }

  void Translate() {
    v1::TranslateAddressesRequest req;
    req.set_name(process_);
    req.set_address(base_ + RandomPage() / 2 * kPage);
    req.set_pages(8);
    Issue<v1::TranslateAddressesRequest, v1::TranslateAddressesResponse>(
        "TranslateAddresses", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->TranslateAddresses(ctx, q, p, cb);
        },
        [](const v1::TranslateAddressesRequest&, const v1::TranslateAddressesResponse&) {
          return 0;
        });
  }

  void GetKsm() {
    v1::GetKsmRequest req;
    req.set_name(machine_ + "/ksm");
    Issue<v1::GetKsmRequest, v1::Ksm>(
        "GetKsm", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) { ksm_->async()->GetKsm(ctx, q, p, cb); },
        [](const v1::GetKsmRequest&, const v1::Ksm&) { return 0; });
  }

  void Madvise() {
    v1::MadviseRequest req;
    req.set_name(process_);
    // Mostly MERGEABLE over the whole region; sometimes UNMERGEABLE over 8
    // pages (unmerges their KSM pages: every mapping gets its own copy).
    if (Rand(3) != 0) {
      req.set_address(base_);
      req.set_length(kRegionPages * kPage);
      req.set_advice(v1::ADVICE_MERGEABLE);
    } else {
      req.set_address(base_ + Rand(kRegionPages - 8) * kPage);
      req.set_length(8 * kPage);
      req.set_advice(v1::ADVICE_UNMERGEABLE);
    }
    Issue<v1::MadviseRequest, v1::SyscallResult>(
        "Madvise", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          processes_->async()->Madvise(ctx, q, p, cb);
        },
        [](const v1::MadviseRequest&, const v1::SyscallResult& p) {
          return static_cast<int>(p.errnum());
        });
  }

  void StepKsm() {
    v1::StepKsmRequest req;
    req.set_name(machine_ + "/ksm");
    req.set_visits(64);
    Issue<v1::StepKsmRequest, v1::StepKsmResponse>(
        "StepKsm", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) { ksm_->async()->StepKsm(ctx, q, p, cb); },
        [](const v1::StepKsmRequest&, const v1::StepKsmResponse&) { return 0; });
  }

  void MovePages() {
    v1::MovePagesRequest req;
    req.set_caller(process_);
    req.set_flags(2);  // MPOL_MF_MOVE
    for (int i = 0; i < 4; ++i) {
      req.add_addresses(base_ + RandomPage() * kPage);
      req.add_nodes(static_cast<int32_t>(Rand(kNodes)));
    }
    Issue<v1::MovePagesRequest, v1::MovePagesResponse>(
        "MovePages", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) { numa_->async()->MovePages(ctx, q, p, cb); },
        [this](const v1::MovePagesRequest&, const v1::MovePagesResponse& p) {
          // Per-page statuses (-ENOENT for KSM pages, ...) are counted too.
          for (int32_t st : p.status())
            if (st < 0) stats_.methods["MovePages(page status)"].errnos[st]++;
          return static_cast<int>(p.errnum());
        });
  }

  void MigratePages() {
    v1::MigratePagesRequest req;
    req.set_caller(process_);
    const uint64_t from = Rand(kNodes);
    req.set_old_nodes(uint64_t{1} << from);
    req.set_new_nodes(uint64_t{1} << (1 - from));
    Issue<v1::MigratePagesRequest, v1::MigratePagesResponse>(
        "MigratePages", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) {
          numa_->async()->MigratePages(ctx, q, p, cb);
        },
        [](const v1::MigratePagesRequest&, const v1::MigratePagesResponse& p) {
          return static_cast<int>(p.errnum());
        });
  }

  void Mbind() {
    v1::MbindRequest req;
    req.set_name(process_);
    req.set_address(base_ + Rand(kRegionPages - 4) * kPage);
    req.set_length(4 * kPage);
    req.set_mode(Rand(2) ? v1::MPOL_BIND : v1::MPOL_PREFERRED);
    req.set_nodes(uint64_t{1} << Rand(kNodes));
    req.set_flags(v1::MPOL_MF_MOVE);
    Issue<v1::MbindRequest, v1::SyscallResult>(
        "Mbind", std::move(req),
        [this](auto* ctx, auto* q, auto* p, auto cb) { numa_->async()->Mbind(ctx, q, p, cb); },
        [](const v1::MbindRequest&, const v1::SyscallResult& p) {
          return static_cast<int>(p.errnum());
        });
  }

  // At most one of node 1's blocks offline at a time: offline one, then
  // online it again.
  void OfflineOrOnline() {
    if (offline_block_ < 0) {
      const int block = static_cast<int>(kBlocksPerNode + Rand(kBlocksPerNode));
      v1::OfflineMemoryBlockRequest req;
      req.set_name(absl::StrCat(machine_, "/memoryBlocks/", block));
      Issue<v1::OfflineMemoryBlockRequest, v1::OfflineReport>(
          "OfflineMemoryBlock", std::move(req),
          [this](auto* ctx, auto* q, auto* p, auto cb) {
            blocks_->async()->OfflineMemoryBlock(ctx, q, p, cb);
          },
          [this, block](const v1::OfflineMemoryBlockRequest&, const v1::OfflineReport& p) {
            if (p.errnum() == v1::ERRNO_OK) offline_block_ = block;
            stats_.offline_pages_migrated += p.pages_migrated();
            stats_.offline_ksm_pages_migrated += p.ksm_pages_migrated();
            stats_.offline_pruned += p.stable_nodes_pruned();
            return static_cast<int>(p.errnum());
          });
    } else {
      v1::OnlineMemoryBlockRequest req;
      req.set_name(absl::StrCat(machine_, "/memoryBlocks/", offline_block_));
      Issue<v1::OnlineMemoryBlockRequest, v1::SyscallResult>(
          "OnlineMemoryBlock", std::move(req),
          [this](auto* ctx, auto* q, auto* p, auto cb) {
            blocks_->async()->OnlineMemoryBlock(ctx, q, p, cb);
          },
          [this](const v1::OnlineMemoryBlockRequest&, const v1::SyscallResult& p) {
            if (p.errnum() == v1::ERRNO_OK) offline_block_ = -1;
            return static_cast<int>(p.errnum());
          });
    }
  }

  void Echo() {
    echo::EchoRequest req;
    req.set_payload(std::string(16, 'x'));
    // The echo service takes no token.
    auto* c = new Call<echo::EchoRequest, echo::EchoResponse>;
    c->req = std::move(req);
    c->ctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
    c->t0 = Clock::now();
    echo_->async()->Echo(&c->ctx, &c->req, &c->resp, [this, c](grpc::Status s) {
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c->t0).count();
      MethodStats& m = stats_.methods["Echo"];
      m.lat_us.push_back(static_cast<uint32_t>(us));
      ++stats_.calls;
      if (s.ok()) {
        m.errnos[0]++;
        if (c->resp.payload() != c->req.payload()) ++stats_.mismatches;
      } else {
        stats_.grpc_errors[s.error_code()]++;
        if (stats_.first_errors.size() < 20)
          stats_.first_errors.push_back({"Echo", s.error_code(), s.error_message()});
      }
      delete c;
      Next();
    });
  }

  const int index_;
  std::mt19937_64 rng_;
  std::unique_ptr<v1::MachineService::Stub> machines_;
  std::unique_ptr<v1::ProcessService::Stub> processes_;
  std::unique_ptr<v1::KsmService::Stub> ksm_;
  std::unique_ptr<v1::NumaService::Stub> numa_;
  std::unique_ptr<v1::MemoryBlockService::Stub> blocks_;
  std::unique_ptr<echo::EchoService::Stub> echo_;
  std::string machine_, process_;
  bool created_ = false;
  uint64_t base_ = 0;
  std::vector<uint8_t> shadow_;
  int offline_block_ = -1;
  Mode mode_ = Mode::kMixed;
  Clock::time_point until_;
  std::function<void()> done_;
  ClientStats stats_;
};

// Runs every client in `mode` for `seconds`; returns merged stats and the
// elapsed wall time.
ClientStats RunPhase(std::vector<std::unique_ptr<LoadClient>>& clients, Mode mode, double seconds,
                     double* elapsed) {
  std::mutex mu;
  std::condition_variable cv;
  size_t finished = 0;
  const auto t0 = Clock::now();
  const auto until = t0 + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  for (auto& c : clients)
    c->Run(mode, until, [&] {
      std::lock_guard<std::mutex> l(mu);
      ++finished;
      cv.notify_all();
    });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return finished == clients.size(); });
  }
  *elapsed = Seconds(Clock::now() - t0);
  ClientStats all;
  for (auto& c : clients) all.Merge(c->stats());
  return all;
}

double Percentile(std::vector<uint32_t>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size()));
  if (i >= v.size()) i = v.size() - 1;
  return v[i] / 1000.0;
}

uint64_t PrintPhase(const char* title, ClientStats& s, double elapsed) {
  std::cout << "\n## " << title << ": " << s.calls << " calls in "
            << absl::StrFormat("%.2f", elapsed)
            << " s = " << absl::StrFormat("%.0f", s.calls / elapsed) << " calls/s\n\n";
  std::cout << absl::StrFormat("%-24s %9s %9s %9s %9s  %s\n", "method", "calls", "calls/s",
                               "p50 ms", "p99 ms", "emulated errnos (data, not errors)");
  for (auto& [name, m] : s.methods) {
    std::string errnos;
    for (const auto& [e, n] : m.errnos)
      if (e != 0) absl::StrAppend(&errnos, errnos.empty() ? "" : " ", ErrnoName(e), "=", n);
    if (m.lat_us.empty()) {
      std::cout << absl::StrFormat("%-24s %9s %9s %9s %9s  %s\n", name, "-", "-", "-", "-", errnos);
      continue;
    }
    const size_t n = m.lat_us.size();
    std::cout << absl::StrFormat("%-24s %9d %9.0f %9.3f %9.3f  %s\n", name, n, n / elapsed,
                                 Percentile(m.lat_us, 0.50), Percentile(m.lat_us, 0.99),
                                 errnos.empty() ? "-" : errnos);
  }
  uint64_t unexpected = 0;
  for (const auto& [c, n] : s.grpc_errors) unexpected += n;
  std::cout << "\nunexpected gRPC errors: " << unexpected;
  for (const auto& [c, n] : s.grpc_errors) std::cout << " " << CodeName(c) << "=" << n;
  std::cout << "\n";
  for (const auto& e : s.first_errors)
    std::cout << "  " << e.method << ": " << CodeName(e.code) << ": " << e.message << "\n";
  std::cout << "content mismatches: " << s.mismatches << "\n";
  for (const auto& n : s.mismatch_notes) std::cout << "  " << n << "\n";
  return unexpected;
}

struct RssSample {
  double t;
  long kib;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "memnode_loadgen: RPC load against memnoded (callback API), with an echo-server baseline");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const int nclients = absl::GetFlag(FLAGS_clients);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  double small_seconds = absl::GetFlag(FLAGS_small_seconds);
  if (small_seconds < 0) small_seconds = std::min(10.0, std::max(2.0, seconds / 3));
  if (nclients < 1 || seconds <= 0) {
    std::cerr << "memnode_loadgen: --clients >= 1 and --seconds > 0\n";
    return 2;
  }

  // The server.
  ServerProcess memnoded, echo_child;
  std::string address = absl::GetFlag(FLAGS_server);
  int server_pid = absl::GetFlag(FLAGS_server_pid);
  std::string error;
  if (address.empty()) {
    std::string path = absl::GetFlag(FLAGS_memnoded);
    if (path.empty()) path = ExecutableDir() + "/../server/memnoded";
    std::vector<std::string> args = {"--listen=127.0.0.1:0", "--default_machine=false",
                                     "--metrics_address=127.0.0.1:0",
                                     absl::StrCat("--max_machines=", std::max(16, nclients))};
    if (!memnoded.Start(path, args, &error)) {
      std::cerr << "memnode_loadgen: " << error << "\n";
      return 2;
    }
    address = memnoded.address();
    server_pid = memnoded.pid();
  }
  std::string echo_address = absl::GetFlag(FLAGS_echo_address);
  if (absl::GetFlag(FLAGS_echo) && echo_address.empty()) {
    std::string path = absl::GetFlag(FLAGS_echo_server);
    if (path.empty()) path = ExecutableDir() + "/memnode_echo_server";
    if (!echo_child.Start(path, {"--listen=127.0.0.1:0"}, &error)) {
      std::cerr << "memnode_loadgen: " << error << "\n";
      return 2;  // ~ServerProcess stops memnoded
    }
    echo_address = echo_child.address();
  }

  char host[256] = "?";
  gethostname(host, sizeof host);
  std::cout << "==================================================================\n"
            << "memnode_loadgen: " << nclients << " clients, mixed " << seconds
            << " s, small calls and echo " << small_seconds << " s each\n"
            << "memnoded " << address << (memnoded.running() ? " (started here, pid " : " (pid ")
            << (server_pid ? std::to_string(server_pid) : std::string("unknown")) << ")"
            << (echo_address.empty() ? "" : ", echo server " + echo_address) << "\n"
            << "host " << host << ", " << std::thread::hardware_concurrency() << " cores\n"
            << "==================================================================\n";

  // RSS sampler: every second from now to the end of the verification.
  std::atomic<bool> sampling{server_pid != 0};
  std::vector<RssSample> rss;
  std::mutex rss_mu;
  const auto start = Clock::now();
  std::thread sampler;
  if (server_pid) {
    sampler = std::thread([&] {
      while (sampling.load()) {
        const long k = ReadRssKib(server_pid);
        {
          std::lock_guard<std::mutex> l(rss_mu);
          rss.push_back({Seconds(Clock::now() - start), k});
        }
        for (int i = 0; i < 20 && sampling.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }

  // One channel per client (separate HTTP/2 connections, like separate users).
  std::vector<std::unique_ptr<LoadClient>> clients;
  const std::string prefix = absl::StrCat("load-", getpid(), "-");
  int status = 0;
  for (int i = 0; i < nclients; ++i) {
    grpc::ChannelArguments ch_args;
    ch_args.SetInt("memnode.loadgen.client",
                   i);  // distinct args: no subchannel (connection) sharing
    ch_args.SetMaxReceiveMessageSize(8 << 20);
    auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), ch_args);
    clients.push_back(std::make_unique<LoadClient>(i, channel, absl::GetFlag(FLAGS_seed)));
    if (!echo_address.empty())
      clients.back()->SetEchoChannel(
          grpc::CreateCustomChannel(echo_address, grpc::InsecureChannelCredentials(), ch_args));
    if (!clients.back()->Setup(prefix + std::to_string(i), &error)) {
      std::cerr << "memnode_loadgen: set-up of client " << i << ": " << error << "\n";
      status = 2;
      break;
    }
  }

  uint64_t unexpected = 0, mismatches = 0;
  double mixed_t0 = 0, mixed_t1 = 0, small_rate = 0, echo_rate = 0, mixed_rate = 0;
  uint64_t offline_migrated = 0, offline_ksm = 0, offline_pruned = 0;
  double small_p50 = 0, small_p99 = 0, echo_p50 = 0, echo_p99 = 0;
  if (status == 0) {
    double elapsed;
    mixed_t0 = Seconds(Clock::now() - start);
    ClientStats mixed = RunPhase(clients, Mode::kMixed, seconds, &elapsed);
    mixed_t1 = Seconds(Clock::now() - start);
    mixed_rate = mixed.calls / elapsed;
    offline_migrated = mixed.offline_pages_migrated;
    offline_ksm = mixed.offline_ksm_pages_migrated;
    offline_pruned = mixed.offline_pruned;
    unexpected += PrintPhase("mixed load (memnode)", mixed, elapsed);
    mismatches += mixed.mismatches;

    ClientStats small = RunPhase(clients, Mode::kSmall, small_seconds, &elapsed);
    small_rate = small.calls / elapsed;
    unexpected += PrintPhase("small calls (memnode GetKsm only)", small, elapsed);
    small_p50 = Percentile(small.methods["GetKsm"].lat_us, 0.5);
    small_p99 = Percentile(small.methods["GetKsm"].lat_us, 0.99);

    if (!echo_address.empty()) {
      ClientStats e = RunPhase(clients, Mode::kEcho, small_seconds, &elapsed);
      echo_rate = e.calls / elapsed;
      unexpected += PrintPhase("echo baseline (bare gRPC unary, 16-byte payload)", e, elapsed);
      echo_p50 = Percentile(e.methods["Echo"].lat_us, 0.5);
      echo_p99 = Percentile(e.methods["Echo"].lat_us, 0.99);
      mismatches += e.mismatches;
    }

    std::cout << "\n## verification\n\n";
    int broken = 0;
    uint64_t full_scans = 0, shared = 0, sharing = 0, visits = 0;
    for (auto& c : clients) {
      std::string note, digest;
      v1::Ksm k;
      const bool ok = c->Verify(&note, &digest, &k);
      full_scans += k.full_scans();
      shared += k.pages_shared();
      sharing += k.pages_sharing();
      visits += k.visits_total();
      if (!ok) {
        ++broken;
        std::cout << "  FAILED " << note << "\n";
      }
    }
    std::cout << "ksmd over all machines at the end: " << visits << " visits, " << full_scans
              << " full scans, pages_shared " << shared << ", pages_sharing " << sharing << "\n";
    std::cout << "offlines of the mixed phase: " << offline_migrated << " pages migrated, of which "
              << offline_ksm << " KSM pages; " << offline_pruned << " stable nodes pruned\n";
    std::cout << "final region read == shadow copy and CheckMachine ok: " << (nclients - broken)
              << "/" << nclients << " machines\n";
    if (broken) status = 1;
  }
  for (auto& c : clients) c->Delete();

  sampling.store(false);
  if (sampler.joinable()) sampler.join();

  std::cout << "\n## summary\n\n";
  std::cout << absl::StrFormat("mixed load: %d clients, %.0f calls/s\n", nclients, mixed_rate);
  if (echo_rate > 0) {
    std::cout << absl::StrFormat(
        "small calls: memnode GetKsm %.0f calls/s (p50 %.3f ms, p99 %.3f ms), echo %.0f calls/s "
        "(p50 %.3f ms, p99 %.3f ms): ratio %.2f\n",
        small_rate, small_p50, small_p99, echo_rate, echo_p50, echo_p99, small_rate / echo_rate);
    std::cout << absl::StrFormat("mixed load / echo: %.2f\n", mixed_rate / echo_rate);
  }
  std::cout << "unexpected gRPC errors: " << unexpected << "\n";
  std::cout << "content mismatches: " << mismatches << "\n";

  if (!rss.empty()) {
    std::cout << "\nserver RSS (VmRSS of pid " << server_pid << ", MiB), one sample per second:\n";
    std::string line;
    for (size_t i = 0; i < rss.size(); ++i) {
      absl::StrAppend(&line, absl::StrFormat("%.0fs:%.1f ", rss[i].t, rss[i].kib / 1024.0));
      if (line.size() > 90) {
        std::cout << "  " << line << "\n";
        line.clear();
      }
    }
    if (!line.empty()) std::cout << "  " << line << "\n";
    // Growth after the first third of the mixed phase.
    const double third = mixed_t0 + (mixed_t1 - mixed_t0) / 3;
    long at_third = -1, max_after = -1, last = rss.back().kib;
    for (const auto& s : rss) {
      if (s.t >= third && at_third < 0) at_third = s.kib;
      if (s.t >= third) max_after = std::max(max_after, s.kib);
    }
    if (at_third > 0) {
      const double growth = static_cast<double>(last - at_third) / 1024.0;
      const bool grew = last > at_third + std::max<long>(at_third / 10, 4096);
      std::cout << absl::StrFormat(
          "RSS at 1/3 of the mixed phase %.1f MiB, max after %.1f MiB, at the end %.1f MiB (%+.1f "
          "MiB): %s\n",
          at_third / 1024.0, max_after / 1024.0, last / 1024.0, growth,
          grew ? "GREW (more than 10% and 4 MiB)" : "no growth beyond 10% / 4 MiB");
    }
  } else {
    std::cout << "server RSS: not sampled (pass --server_pid)\n";
  }

  if (memnoded.running()) {
    double t = 0;
    const std::string how = memnoded.Stop(&t);
    std::cout << absl::StrFormat("memnoded shutdown on SIGTERM: %s after %.2f s\n", how, t);
    if (how != "exit 0") status = std::max(status, 1);
  }
  echo_child.Stop();
  if (unexpected > 0 || mismatches > 0) status = std::max(status, 1);
  std::cout << (status == 0 ? "PASS" : "FAIL") << "\n";
  return status;
}
