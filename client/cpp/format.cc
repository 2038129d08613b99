#include "client/cpp/format.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cpp/enum_names.h"
#include "memnode/v1/process.pb.h"

namespace memnode {
namespace cli {

namespace v1 = ::memnode::v1;

std::string Hex(uint64_t value) { return absl::StrFormat("0x%x", value); }

std::string ShortDigest(absl::string_view digest) {
  if (digest.empty()) return "-";
  return std::string(digest.substr(0, kShortDigestChars));
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string Bytes(uint64_t bytes) {
  static constexpr struct {
    int shift;
    const char* unit;
  } kUnits[] = {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  for (const auto& u : kUnits) {
    uint64_t scale = uint64_t{1} << u.shift;
    if (bytes >= scale && bytes % scale == 0) {
      return absl::StrCat(bytes / scale, " ", u.unit);
    }
  }
  return absl::StrCat(bytes, " bytes");
}

std::string ErrnoName(v1::Errno errnum) { return UpperName(errnum); }

std::string ErrnoText(v1::Errno errnum) {
  switch (errnum) {
    case v1::ERRNO_OK: return "success";
    case v1::ERRNO_EPERM: return "operation not permitted";
    case v1::ERRNO_ENOENT: return "no such page";
    case v1::ERRNO_ESRCH: return "no such process";
    case v1::ERRNO_EINTR: return "interrupted";
    case v1::ERRNO_EIO: return "input/output error";
    case v1::ERRNO_EAGAIN: return "try again";
    case v1::ERRNO_ENOMEM: return "out of memory";
    case v1::ERRNO_EACCES: return "permission denied";
    case v1::ERRNO_EFAULT: return "bad address";
    case v1::ERRNO_EBUSY: return "device or resource busy";
    case v1::ERRNO_ENODEV: return "no such device";
    case v1::ERRNO_EINVAL: return "invalid argument";
    default:
      // An errno without a wording of its own here: the C library's.
      return absl::AsciiStrToLower(std::strerror(static_cast<int>(errnum)));
  }
}

std::string ErrnoLine(v1::Errno errnum, const std::string& detail) {
  return absl::StrCat(ErrnoName(errnum), " (", static_cast<int>(errnum),
                      "): ", detail.empty() ? ErrnoText(errnum) : detail);
}

std::string ProtString(uint32_t prot) {
  std::string s;
  s += (prot & v1::PROT_READ) ? 'r' : '-';
  s += (prot & v1::PROT_WRITE) ? 'w' : '-';
  return s;
}

std::string Duration(uint64_t ns) {
  if (ns >= 1000000000) return absl::StrFormat("%.3f s", ns / 1e9);
  if (ns >= 1000000) return absl::StrFormat("%.3f ms", ns / 1e6);
  if (ns >= 1000) return absl::StrFormat("%.3f us", ns / 1e3);
  return absl::StrCat(ns, " ns");
}

std::string EmulatedSeconds(uint64_t ns) {
  return absl::StrFormat("%d.%09d", ns / 1000000000, ns % 1000000000);
}

std::string CodeName(int code) {
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "CODE_UNKNOWN" : name;
}

namespace {

bool IsDecimal(const std::string& cell) {
  return !cell.empty() && std::all_of(cell.begin(), cell.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

// "-" stands for "no value" in numeric columns.
bool IsPlaceholder(const std::string& cell) { return cell == "-"; }

}  // namespace

void Table::Print(std::ostream& out, absl::string_view indent) const {
  size_t columns = header_.size();
  std::vector<size_t> width(columns);
  // Right-align a column when its cells are numbers (or "-"), at least one
  // being a number.
  std::vector<bool> right(columns, true);
  std::vector<bool> any_number(columns, false);
  for (size_t c = 0; c < columns; ++c) width[c] = header_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < columns && c < row.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
      if (IsDecimal(row[c])) {
        any_number[c] = true;
      } else if (!IsPlaceholder(row[c])) {
        right[c] = false;
      }
    }
  }
  for (size_t c = 0; c < columns; ++c) right[c] = right[c] && any_number[c];
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line(indent);
    for (size_t c = 0; c < columns; ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      if (c + 1 == columns && !right[c]) pad.clear();
      absl::StrAppend(&line, right[c] ? pad : "", cell, right[c] ? "" : pad,
                      c + 1 == columns ? "" : "  ");
    }
    out << line << "\n";
  };
  print_row(header_);
  for (const auto& row : rows_) print_row(row);
}

void KeyValues::Print(std::ostream& out, absl::string_view indent) const {
  size_t width = 0;
  for (const auto& [key, value] : lines_) width = std::max(width, key.size());
  for (const auto& [key, value] : lines_) {
    out << indent << key << ":" << std::string(width - key.size() + 1, ' ') << value << "\n";
  }
}

bool ShowProgress() {
  const char* env = std::getenv("MEMNODECTL_PROGRESS");
  std::string mode = env != nullptr ? env : "auto";
  if (mode == "always" || mode == "1") return true;
  if (mode == "never" || mode == "0") return false;
  return isatty(STDERR_FILENO) != 0;
}

void Progress::Update(const std::string& line) {
  if (!enabled_) return;
  std::string padded = line;
  if (padded.size() < width_) padded.append(width_ - padded.size(), ' ');
  width_ = line.size();
  std::cerr << "\r" << padded << std::flush;
  shown_ = true;
}

void Progress::Done() {
  if (shown_) std::cerr << "\n" << std::flush;
  shown_ = false;
}

void HexDump(std::ostream& out, uint64_t base, absl::string_view data) {
  constexpr size_t kLine = 16;
  absl::string_view previous;
  bool collapsed = false;
  for (size_t off = 0; off < data.size(); off += kLine) {
    absl::string_view line = data.substr(off, kLine);
    // Collapse repeats of a full line, but always show the last line.
    if (off != 0 && line.size() == kLine && line == previous && off + kLine < data.size()) {
      if (!collapsed) out << "*\n";
      collapsed = true;
      continue;
    }
    collapsed = false;
    previous = line;
    std::string hex;
    std::string ascii;
    for (size_t i = 0; i < kLine; ++i) {
      if (i == 8) hex += ' ';
      if (i < line.size()) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        absl::StrAppendFormat(&hex, " %02x", c);
        ascii += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
      } else {
        hex += "   ";
      }
    }
    out << absl::StrFormat("0x%012x %s  |%s|\n", base + off, hex, ascii);
  }
}

}  // namespace cli
}  // namespace memnode
