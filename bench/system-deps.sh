#!/usr/bin/env bash
# Installs the system programs the benchmark's peers need, when missing: nats-server (Debian's
# nats-server; the NATS peer starts its own broker on 127.0.0.1) and the Thrift compiler (Debian's
# thrift-compiler; the Thrift peer generates its JavaScript with it at bench time).
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v thrift >/dev/null 2>&1 || missing+=(thrift-compiler)
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "installing benchmark dependencies: ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install ${missing[*]}: no apt-get here; install them and run the benchmark again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
