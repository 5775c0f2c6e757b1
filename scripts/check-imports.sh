#!/usr/bin/env bash
# The layers contract (import-linter, [tool.importlinter] in pyproject.toml) and the no-circles
# check, on the package as it installs. Both read the file system, where tools/, distill/ and
# apps/ sit beside vpagent/ instead of inside it, so they run on a copy laid out as installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # absolute: we cd below
mirror="$(mktemp -d)"
trap 'rm -rf "$mirror"' EXIT
cp -r "$root/vpagent" "$mirror/vpagent"
for folder in tools distill apps; do cp -r "$root/$folder" "$mirror/vpagent/$folder"; done
cd "$mirror"  # so that this copy, not the checkout, is the `vpagent` found
PYTHONPATH="$mirror" "$(dirname "$python")/lint-imports" "$root/pyproject.toml" --no-cache
PYTHONPATH="$mirror" "$python" "$root/scripts/import_circles.py" vpagent
