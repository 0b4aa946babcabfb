#!/usr/bin/env bash
# Rebuilds the example store that docs/FORMAT.md, docs/CLI.md and format-vectors.json quote.
# Usage: Fixtures/vectors/make-examples.sh [path/to/mvc] [work-dir]
# Runs outside any git repository (so commits carry no `code` line) with a fixed author and date,
# so every id it prints is reproducible. The `env` lines of a commit record os, arch and the mvc
# version, so ids of commits made on another platform or by another mvc version differ.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MVC="${1:-$ROOT/.build-docs/debug/mvc}"
WORK="${2:-$(mktemp -d "${TMPDIR:-/tmp}/mvc-examples.XXXXXX")}"
export MVC_AUTHOR_NAME="Ada Lovelace" MVC_AUTHOR_EMAIL="ada@example.com" MVC_AUTHOR_DATE="1767225600 +0000"
export GIT_CEILING_DIRECTORIES="$(dirname "$WORK")"
mkdir -p "$WORK" && cd "$WORK"
if git rev-parse --git-dir >/dev/null 2>&1; then echo "error: '$WORK' is inside a git repository" >&2; exit 1; fi
cp -r "$ROOT/Fixtures/data" "$ROOT/Fixtures/config" .
mkdir -p model && cp "$ROOT/Fixtures/model/model.safetensors" model/
printf 'hello, mvc\n' > hello.txt
# 3 MiB of deterministic bytes: SHA-256 in counter mode. Larger than one chunk, so stored as a chunk list.
python3 - <<'PY'
import hashlib
with open("embeddings.bin", "wb") as f:
    for i in range(3 * 1024 * 1024 // 32):
        f.write(hashlib.sha256(i.to_bytes(8, "big")).digest())
PY
run() { printf '$ %s\n' "$*"; local rc=0; "$@" || rc=$?; [ $rc = 0 ] || echo "(exit $rc)"; echo; return $rc; }
run "$MVC" version
run "$MVC" init
run "$MVC" commit hello.txt --name hello -m "a small blob"
run "$MVC" commit data --name iris --kind dataset --version 1.0.0 -m "iris-like dataset, 150 rows"
run "$MVC" commit config/train.yaml --name train-config --kind config -m "baseline config"
run "$MVC" commit embeddings.bin --name embeddings --kind dataset -m "3 MiB of test vectors"
run "$MVC" commit model/model.safetensors --name iris-mlp --kind model \
    --input iris@v1 --input train-config@v1 \
    --param lr=0.01 --param epochs=50 --metric accuracy=0.93 --metric loss=0.21 \
    -m "baseline MLP"
echo "work tree: $WORK"
[ "${EXAMPLES_STORE_ONLY:-}" = 1 ] && exit 0

# The store as docs/FORMAT.md lists it.
echo '$ find .mvc -type f | sort'; find .mvc -type f | sort; echo

# The CLI tour that docs/CLI.md quotes.
cp "$ROOT/Fixtures/model/model-v2.safetensors" model/model.safetensors
run "$MVC" status
run "$MVC" status --json
run "$MVC" commit model/model.safetensors --name iris-mlp --input iris@v1 --input iris-mlp@v1:base-model \
    --param lr=0.001 --metric accuracy=0.95 --version 1.1.0 -m "fine-tuned output layer"
run "$MVC" commit model/model.safetensors --name iris-mlp
run "$MVC" commit config/train.yaml --name train-config --json
run "$MVC" log iris-mlp
run "$MVC" log iris-mlp --json
run "$MVC" show iris-mlp@1.1.0
run "$MVC" show iris-mlp@1.1.0 --json
run "$MVC" ls iris@v1
run "$MVC" ls iris@v1 --json
run "$MVC" lineage iris-mlp@v2
run "$MVC" lineage iris@v1 --down
run "$MVC" lineage iris-mlp@v1 --json
run "$MVC" artifacts
run "$MVC" artifacts --json
run "$MVC" checkout iris-mlp@v1 -o "$WORK/elsewhere"
run "$MVC" checkout iris-mlp@v1 --json
run "$MVC" status
printf 'local edit\n' >> config/train.yaml
run "$MVC" checkout train-config@v1 || true
run "$MVC" checkout train-config@v1 --force
run "$MVC" cat-object hello
run "$MVC" cat-object hello@v1 --json
run "$MVC" show iris-mlp@v7 || true
run "$MVC" fsck
run "$MVC" fsck --json
mkdir -p "$WORK/other" && run "$MVC" init "$WORK/other" --json
run "$MVC" init "$WORK/other" || true
run "$MVC" commit --name x || true

# Inside a git repository, a commit records the code's git commit (docs/CLI.md, "show").
export GIT_AUTHOR_NAME="Ada Lovelace" GIT_AUTHOR_EMAIL="ada@example.com" GIT_AUTHOR_DATE="1767225600 +0000"
export GIT_COMMITTER_NAME="Ada Lovelace" GIT_COMMITTER_EMAIL="ada@example.com" GIT_COMMITTER_DATE="1767225600 +0000"
mkdir -p "$WORK/git-example" && cd "$WORK/git-example"
git init -q -b main . && printf 'print("train")\n' > train.py && git add train.py && git commit -qm "training code"
run git rev-parse HEAD
run "$MVC" init
cp "$ROOT/Fixtures/model/model.safetensors" .
run "$MVC" commit model.safetensors --name iris-mlp --kind model -m "trained at a clean commit"
echo '# tweak' >> train.py
cp "$ROOT/Fixtures/model/model-v2.safetensors" model.safetensors
run "$MVC" commit model.safetensors --name iris-mlp -m "trained with uncommitted changes"
run "$MVC" show iris-mlp@v2
