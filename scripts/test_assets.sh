#!/usr/bin/env bash
# Files the tests check against, from the registries (never committed here):
# the SARIF 2.1.0 JSON schema, as Microsoft's @microsoft/jest-sarif npm package ships it.
set -euo pipefail
dest="${XDG_CACHE_HOME:-$HOME/.cache}/codespark/test-assets"
schema="$dest/sarif-2.1.0-rtm.5.json"
if [ -s "$schema" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "npm is needed once to fetch the SARIF schema for the tests. Install it: sudo apt-get install npm" >&2
    exit 1
  fi
  echo "installing npm (Debian package) to fetch the SARIF schema for the tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq npm >/dev/null
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null && tar xzf ./*.tgz)
mkdir -p "$dest"
cp "$tmp/package/lib/schemas/sarif-2.1.0-rtm.5.json" "$schema.tmp"
mv "$schema.tmp" "$schema"
echo "SARIF schema: $schema"
