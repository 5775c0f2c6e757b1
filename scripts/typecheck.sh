#!/usr/bin/env bash
# mypy on the package as it installs ([tool.mypy] in pyproject.toml: strict on the contracts,
# the sandbox and the agent layers). mypy cannot follow the editable install's import hook, and
# tools/, distill/ and apps/ sit beside vpagent/ instead of inside it, so it checks a mirror of
# symbolic links laid out as installed; its cache stays in the checkout (.mypy_cache).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"  # absolute: we cd below
mirror="$(mktemp -d)"
trap 'rm -rf "$mirror"' EXIT
mkdir "$mirror/vpagent"
for entry in "$root"/vpagent/*; do ln -s "$entry" "$mirror/vpagent/"; done
for folder in tools distill apps; do ln -s "$root/$folder" "$mirror/vpagent/$folder"; done
cd "$mirror"  # so that the mirror, not the checkout, is the `vpagent` found
"$python" -m mypy --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p vpagent "$@"
