#!/usr/bin/env bash
# Formats every tracked C++ file with the committed .clang-format
# (clang-format 14, Debian's clang-format package). `--check` only reports.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "format: clang-format not found (scripts/deps.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v node_modules)
if [ "${1:-}" = "--check" ]; then
  clang-format --dry-run --Werror "${files[@]}"
  echo "format: ${#files[@]} C++ files formatted"
else
  clang-format -i "${files[@]}"
fi
