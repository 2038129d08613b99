// Human-readable output helpers for memnodectl: aligned tables, key: value
// blocks, hex addresses, short digests, durations, emulated errno lines and
// hex dumps.
//
// Thread safety: stateless functions; Table and KeyValues are plain values.

#ifndef MEMNODE_CLIENT_CPP_FORMAT_H_
#define MEMNODE_CLIENT_CPP_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "memnode/v1/common.pb.h"

namespace memnode {
namespace cli {

// Characters of a digest shown in tables.
inline constexpr size_t kShortDigestChars = 12;

// "0x7f0000000000".
std::string Hex(uint64_t value);

// First kShortDigestChars of a hex digest, or "-" when empty.
std::string ShortDigest(absl::string_view digest);

// "yes" / "no".
std::string YesNo(bool value);

// Byte count with a binary unit when exact: 4096 -> "4 KiB", 100 ->
// "100 bytes".
std::string Bytes(uint64_t bytes);

// "EFAULT" for ERRNO_EFAULT (enum_names.h's rule, upper case).
std::string ErrnoName(memnode::v1::Errno errnum);

// Short description of an errno ("bad address"; strerror's, in lower case,
// for an errno without one of its own).
std::string ErrnoText(memnode::v1::Errno errnum);

// "EFAULT (14): <detail>"; detail defaults to ErrnoText.
std::string ErrnoLine(memnode::v1::Errno errnum, const std::string& detail);

// PROT_* mask as "rw", "r-", "-w", "--".
std::string ProtString(uint32_t prot);

// "1.000 ms" for nanoseconds.
std::string Duration(uint64_t ns);

// Emulated nanoseconds as seconds with 9 decimals ("12.000500000").
std::string EmulatedSeconds(uint64_t ns);

// The name of a canonical gRPC status code ("NOT_FOUND").
std::string CodeName(int code);

// A table printed with columns aligned. A column whose cells are all decimal
// numbers is right-aligned; others are left-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  void Print(std::ostream& out, absl::string_view indent = "") const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "key: value" lines with the values aligned.
class KeyValues {
 public:
  void Add(std::string key, std::string value) {
    lines_.emplace_back(std::move(key), std::move(value));
  }
  void Print(std::ostream& out, absl::string_view indent = "") const;

 private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

// Whether progress lines go to stderr: MEMNODECTL_PROGRESS=always|never,
// otherwise (auto) when stderr is a terminal.
bool ShowProgress();

// A one-line progress display on stderr, rewritten in place ("\r").
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  ~Progress() { Done(); }
  void Update(const std::string& line);
  // Ends the line (once).
  void Done();

 private:
  bool enabled_;
  bool shown_ = false;
  size_t width_ = 0;
};

// Hex dump in the style of `hexdump -C`, offsets shown as absolute addresses
// starting at `base`. Runs of identical 16-byte lines collapse into "*".
void HexDump(std::ostream& out, uint64_t base, absl::string_view data);

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_FORMAT_H_
