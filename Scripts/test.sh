#!/usr/bin/env bash
# The tests: installs what they need, then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/install-deps.sh
# The end-to-end tests drive the built binary; build it first so they find it.
swift build --build-tests
swift test --skip-build "$@"
