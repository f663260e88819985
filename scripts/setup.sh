#!/usr/bin/env bash
# Installs the Debian 12 packages the build needs, if any is missing (run as root).
set -euo pipefail
PKGS=(cmake ninja-build g++ libfmt-dev libcli11-dev catch2 nlohmann-json3-dev libxxhash-dev
      libpcre2-dev libedit-dev pkg-config libcpp-httplib-dev curl jq)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The tokenizer's js-tiktoken comparison (tests/js/run.sh, a ctest) needs node and npm: Debian's,
# installed only when no node is on PATH (added by the tokenizer work).
if ! command -v node >/dev/null; then
  echo "setup: installing nodejs npm" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
