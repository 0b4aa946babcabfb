#!/usr/bin/env bash
# The tests: installs what they need, then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/install-deps.sh
# The S3 remote tests run against moto's S3-protocol server on a loopback port.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing: moto[server] (pip)" >&2
  python3 -m pip install --quiet 'moto[server]==5.2.1' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
  export PATH="$HOME/.local/bin:$PATH"
fi
# The end-to-end tests drive the built binary; build it first so they find it.
swift build --build-tests
swift test --skip-build "$@"
