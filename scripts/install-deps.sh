#!/usr/bin/env bash
# Installs the Debian packages keel builds against, only those that are missing.
# Used by `make run` and `make test`; safe to run again (it then does nothing).
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libtbb-dev libtbbbind-2-5   # oneTBB and its NUMA support (tbbbind)
  libboost-dev                # Boost.Interprocess, Boost.Lockfree (ring baseline)
  libhwloc-dev                # topology, pinning, memory binding
  liburing-dev                # io_uring
  libmimalloc-dev             # the allocator keel links in
  libgtest-dev                # tests
  libssl-dev                  # SHA-256 and HMAC (OpenSSL)
  libtomlplusplus-dev         # perf configs
  libcli11-dev                # the command line
  nlohmann-json3-dev          # --json output
  librocksdb-dev              # the WAL benchmark's RocksDB baseline
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "keel: installing missing Debian packages: ${missing[*]}"
sudo_command=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "keel: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_command=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_command[@]}" apt-get update -qq
"${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
