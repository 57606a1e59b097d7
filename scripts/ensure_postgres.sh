#!/usr/bin/env bash
# PostgreSQL server binaries for the SQL tests, from Debian's postgresql package.
# The tests start (and stop) their own server on loopback; nothing is left running.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL is not installed. Install it with: sudo apt-get install postgresql" >&2
  exit 1
fi
echo "installing PostgreSQL (Debian package postgresql) for the SQL tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
