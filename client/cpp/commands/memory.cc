// Memory contents and translation: write, fill, read, digest, touch, pin,
// unpin, translate (ProcessService).

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cpp/commands/commands.h"
#include "client/cpp/context.h"
#include "client/cpp/enum_names.h"
#include "client/cpp/format.h"

namespace memnode {
namespace cli {

namespace {

constexpr uint64_t kMaxPid = std::numeric_limits<int32_t>::max();
// Bytes asked per ReadMemory call (below the server's per-request limit).
constexpr uint64_t kReadChunkBytes = uint64_t{1} << 20;
// Fills longer than this are sent as several FillMemory calls of this size
// (a multiple of 8, so 64-bit patterns and the random stream stay in phase).
constexpr uint64_t kFillChunkBytes = uint64_t{64} << 20;
// splitmix64's increment: output k of the stream seeded with s is the mix of
// s + (k+1) * kGolden, so the stream from output k on is the stream seeded
// with s + k * kGolden.
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Detail of an errno line for a memory access that may have a fault address.
std::string FaultDetail(v1::Errno errnum, uint64_t fault_address, uint64_t bytes_done) {
  std::string detail;
  if (errnum == v1::ERRNO_EFAULT || errnum == v1::ERRNO_EACCES || fault_address != 0) {
    detail = absl::StrCat(errnum == v1::ERRNO_EACCES ? "access denied at " : "fault at ",
                          Hex(fault_address));
  } else {
    detail = ErrnoText(errnum);
  }
  if (bytes_done != 0) absl::StrAppend(&detail, " (", bytes_done, " bytes done)");
  return detail;
}

// Shared output of write / fill / touch.
int AccessResult(Context& ctx, const v1::MemoryAccessResult& result, const char* verb,
                 uint64_t address) {
  if (ctx.json()) {
    ctx.PrintJson(result);
  } else if (result.errnum() == v1::ERRNO_OK) {
    std::cout << verb << " " << result.bytes_done() << " bytes at " << Hex(address) << "\n";
  }
  return ctx.ErrnoExit(result.errnum(),
                       FaultDetail(result.errnum(), result.fault_address(), result.bytes_done()));
}

// The arguments of every command here; each uses some of them.
struct MemArgs {
  int32_t pid = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  uint64_t pages = 1;
  std::string hex, text, file;        // write
  uint32_t byte = 0;                  // fill
  uint64_t pattern = 0, seed = 0;     // fill
  bool hexdump = false, raw = false;  // read
};

Command& AddRange(CommandSet& set, const std::string& path, const std::string& summary,
                  MemArgs& a) {
  return set.Add(path, summary)
      .Arg("PID", &a.pid, Uint(0, kMaxPid))
      .Arg("ADDR", &a.address, Size())
      .Arg("LENGTH", &a.length, Size());
}

int Write(Context& ctx, const MemArgs& a) {
  v1::WriteMemoryRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  if (ctx.Given("--hex")) {
    request.set_data(a.hex);
  } else if (ctx.Given("--text")) {
    request.set_data(a.text);
  } else if (a.file == "-") {
    request.set_data(
        std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()));
  } else {
    std::ifstream in(a.file, std::ios::binary);
    if (!in) return ctx.UsageError(absl::StrCat("--file: cannot open \"", a.file, "\""));
    request.set_data(
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }
  v1::MemoryAccessResult result;
  if (int rc =
          ctx.Call(ctx.processes(), &v1::ProcessService::Stub::WriteMemory, request, &result)) {
    return rc;
  }
  return AccessResult(ctx, result, "wrote", request.address());
}

// Whether [address, address+length) is entirely mapped and writable: there
// chunks do exactly what one call would.
int FullyWritable(Context& ctx, const v1::FillMemoryRequest& request, bool* writable) {
  v1::GetProcessRequest get;
  get.set_name(request.name());
  v1::Process process;
  if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::GetProcess, get, &process)) {
    return rc;
  }
  uint64_t covered = request.address();
  const uint64_t end = request.address() + request.length();
  for (const v1::Vma& v : process.vmas()) {
    if (v.end() <= covered || v.start() > covered) continue;
    if (!(v.prot() & v1::PROT_WRITE)) break;
    covered = v.end();
    if (covered >= end) break;
  }
  *writable = end > request.address() && covered >= end;
  return kExitOk;
}

int Fill(Context& ctx, const MemArgs& a) {
  v1::FillMemoryRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  request.set_length(a.length);
  if (ctx.Given("--byte")) {
    request.set_byte_value(a.byte);
  } else if (ctx.Given("--pattern")) {
    request.set_pattern64(a.pattern);
  } else {
    request.set_random_seed(a.seed);
  }
  const uint64_t address = a.address, length = a.length;
  v1::MemoryAccessResult result;
  // Only a range that is entirely mapped and writable is chunked; anything
  // else (EFAULT, EACCES: "nothing done") goes as one call so the server's
  // answer is unchanged.
  bool chunked = length > kFillChunkBytes;
  if (chunked) {
    if (int rc = FullyWritable(ctx, request, &chunked)) return rc;
  }
  if (!chunked) {
    if (int rc =
            ctx.Call(ctx.processes(), &v1::ProcessService::Stub::FillMemory, request, &result)) {
      return rc;
    }
    return AccessResult(ctx, result, "filled", address);
  }
  Progress progress(ShowProgress());
  const bool random = request.pattern_case() == v1::FillMemoryRequest::kRandomSeed;
  uint64_t done = 0;
  while (done < length) {
    v1::FillMemoryRequest part = request;
    part.set_address(address + done);
    part.set_length(std::min(kFillChunkBytes, length - done));
    if (random) part.set_random_seed(a.seed + (done / 8) * kGolden);
    v1::MemoryAccessResult chunk;
    if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::FillMemory, part, &chunk)) {
      progress.Done();
      return rc;
    }
    done += chunk.bytes_done();
    if (chunk.errnum() != v1::ERRNO_OK) {
      result = chunk;
      break;
    }
    progress.Update(absl::StrFormat("fill: %s / %s (%d%%)", Bytes(done), Bytes(length),
                                    static_cast<int>(done * 100 / length)));
  }
  progress.Done();
  result.set_bytes_done(done);
  return AccessResult(ctx, result, "filled", address);
}

int Read(Context& ctx, const MemArgs& a) {
  // Reads are observation only, so a long range is read in chunks below the
  // server's per-request limit; the first errno ends the read and, as for a
  // single request, no data is returned.
  v1::ReadMemoryRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  v1::ReadMemoryResponse response;
  uint64_t done = 0;
  do {
    v1::ReadMemoryResponse part;
    request.set_address(a.address + done);
    request.set_length(std::min(kReadChunkBytes, a.length - done));
    if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::ReadMemory, request, &part)) {
      return rc;
    }
    if (part.errnum() != v1::ERRNO_OK) {
      response.clear_data();
      response.set_errnum(part.errnum());
      response.set_fault_address(part.fault_address());
      break;
    }
    response.mutable_data()->append(part.data());
    done += request.length();
  } while (done < a.length);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    if (a.raw) {
      std::cout.write(response.data().data(), static_cast<std::streamsize>(response.data().size()));
    } else {
      HexDump(std::cout, a.address, response.data());
    }
  }
  return ctx.ErrnoExit(response.errnum(),
                       FaultDetail(response.errnum(), response.fault_address(), 0));
}

int Digest(Context& ctx, const MemArgs& a) {
  v1::DigestMemoryRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  request.set_length(a.length);
  v1::DigestMemoryResponse response;
  if (int rc =
          ctx.Call(ctx.processes(), &v1::ProcessService::Stub::DigestMemory, request, &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    KeyValues kv;
    kv.Add("digest", response.digest());
    kv.Add("populated_pages", absl::StrCat(response.populated_pages()));
    kv.Print(std::cout);
  }
  return ctx.ErrnoExit(response.errnum(),
                       FaultDetail(response.errnum(), response.fault_address(), 0));
}

int Touch(Context& ctx, const MemArgs& a) {
  v1::TouchMemoryRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  request.set_length(a.length);
  v1::MemoryAccessResult result;
  if (int rc =
          ctx.Call(ctx.processes(), &v1::ProcessService::Stub::TouchMemory, request, &result)) {
    return rc;
  }
  return AccessResult(ctx, result, "touched", request.address());
}

// pin (pin = true) or unpin.
int Pin(Context& ctx, const MemArgs& a, bool pin) {
  v1::PinPagesRequest request;
  v1::UnpinPagesRequest unpin;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  request.set_length(a.length);
  unpin.set_name(request.name());
  unpin.set_address(a.address);
  unpin.set_length(a.length);
  v1::PinPagesResponse response;
  int rc = pin ? ctx.Call(ctx.processes(), &v1::ProcessService::Stub::PinPages, request, &response)
               : ctx.Call(ctx.processes(), &v1::ProcessService::Stub::UnpinPages, unpin, &response);
  if (rc != kExitOk) return rc;
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else if (response.errnum() == v1::ERRNO_OK) {
    std::cout << (pin ? "pinned " : "unpinned ") << response.pages() << " pages\n";
  }
  return ctx.ErrnoExit(response.errnum(), "");
}

int Translate(Context& ctx, const MemArgs& a) {
  v1::TranslateAddressesRequest request;
  request.set_name(ctx.ProcessName(a.pid));
  request.set_address(a.address);
  request.set_pages(a.pages);
  v1::TranslateAddressesResponse response;
  if (int rc = ctx.Call(ctx.processes(), &v1::ProcessService::Stub::TranslateAddresses, request,
                        &response)) {
    return rc;
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  Table table({"ADDRESS", "MAPPED", "PRESENT", "PFN", "NODE", "STATE"});
  for (const v1::PageTranslation& t : response.pages()) {
    table.AddRow({Hex(t.address()), YesNo(t.mapped()), YesNo(t.present()),
                  t.present() ? absl::StrCat(t.pfn()) : "-",
                  t.present() ? absl::StrCat(t.node()) : "-",
                  t.present() ? UpperName(t.state()) : "-"});
  }
  table.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddMemoryCommands(CommandSet& set) {
  auto& write = set.Store<MemArgs>();
  set.Add("write", "Store bytes at an address (write faults, COW).")
      .Arg("PID", &write.pid, Uint(0, kMaxPid))
      .Arg("ADDR", &write.address, Size())
      .Flag("--hex", &write.hex, "HEX", "bytes as hex digits (spaces and ':' allowed)", HexBytes())
      .Flag("--text", &write.text, "STRING", "the bytes of STRING (no terminating NUL)")
      .Flag("--file", &write.file, "PATH", "the bytes of a file (- for stdin)")
      .ExactlyOneOf({"--hex", "--text", "--file"})
      .Run([&write](Context& ctx) { return Write(ctx, write); });

  auto& fill = set.Store<MemArgs>();
  AddRange(set, "fill", "Fill a range with a generated pattern.", fill)
      .Flag("--byte", &fill.byte, "N", "every byte = N (0..255)", Uint(0, 255))
      .Flag("--pattern", &fill.pattern, "0xHEX", "a 64-bit value repeated, little-endian", Uint())
      .Flag("--random", &fill.seed, "SEED", "splitmix64 stream seeded with SEED", Uint())
      .ExactlyOneOf({"--byte", "--pattern", "--random"})
      .Run([&fill](Context& ctx) { return Fill(ctx, fill); });

  auto& read = set.Store<MemArgs>();
  AddRange(set, "read", "Read bytes (observation only); hex dump by default.", read)
      .Switch("--hexdump", &read.hexdump, "hexdump -C style listing (default)")
      .Switch("--raw", &read.raw, "write the bytes to stdout unchanged")
      .AtMostOneOf({"--hexdump", "--raw"})
      .Run([&read](Context& ctx) { return Read(ctx, read); });

  auto& digest = set.Store<MemArgs>();
  AddRange(set, "digest", "SHA-256 digest of a range (see docs/API.md).", digest)
      .Run([&digest](Context& ctx) { return Digest(ctx, digest); });

  auto& touch = set.Store<MemArgs>();
  AddRange(set, "touch", "Read one byte of each page (maps the zero page where nothing is).", touch)
      .Run([&touch](Context& ctx) { return Touch(ctx, touch); });

  auto& pin = set.Store<MemArgs>();
  AddRange(set, "pin", "Pin the pages of a range (get_user_pages).", pin).Run([&pin](Context& ctx) {
    return Pin(ctx, pin, /*pin=*/true);
  });

  auto& unpin = set.Store<MemArgs>();
  AddRange(set, "unpin", "Drop pins taken by pin.", unpin).Run([&unpin](Context& ctx) {
    return Pin(ctx, unpin, /*pin=*/false);
  });

  auto& translate = set.Store<MemArgs>();
  set.Add("translate", "Virtual to physical (pagemap): pfn, node and state of each page.")
      .Arg("PID", &translate.pid, Uint(0, kMaxPid))
      .Arg("ADDR", &translate.address, Size())
      .OptionalArg("PAGES", &translate.pages, Size())
      .Run([&translate](Context& ctx) { return Translate(ctx, translate); });
}

}  // namespace cli
}  // namespace memnode
