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
# The examples keep the chunk sizes they were made with (the default changed to 32K/128K/512K later).
run "$MVC" init --chunking 64K/256K/1M
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

# Stages (docs/STAGES.md, docs/CLI.md "promote" to "card", docs/FORMAT.md section 3.7): a policy,
# gates, annotations, a canary rollout, rollback and retirement of iris-mlp@v1 and iris-mlp@v2. The
# clock moves one hour per step (MVC_AUTHOR_DATE), so the audit trail reads in order and
# 'history --at' has something to find; ids stay reproducible.
clock() { export MVC_AUTHOR_DATE="$((1767225600 + $1 * 3600)) +0000"; }
cat > mvc.yaml <<'YAML'
# Promotion policy (docs/STAGES.md).
stages: [canary, shadow]
archive_replaced: true
rules:
  canary:
    from: [staging]
  production:
    from: [staging, canary]
    kinds: [model]
    metrics:
      - accuracy >= 0.92
      - latency_p95_ms <= 40
    require:
      inputs: [dataset]
YAML
echo '$ cat mvc.yaml'; cat mvc.yaml; echo
clock 1
run "$MVC" stages
run "$MVC" resolve iris-mlp || true
run "$MVC" promote iris-mlp@v1 --to qa || true
run "$MVC" promote iris-mlp@v1 --to production --weight 5 || true
run "$MVC" promote iris-mlp@v1 --to staging -m "baseline for review"
run "$MVC" check iris-mlp@v1 --for production || true
clock 2
run "$MVC" promote iris-mlp@v1 --to production -m "launch" || true
run "$MVC" promote iris-mlp@v1 --to production --dry-run || true
run "$MVC" metric iris-mlp@v1 latency_p95_ms=31 -m "load test, 200 rps"
run "$MVC" check iris-mlp@v1 --for production
run "$MVC" check iris-mlp@v1 --for production --json
run "$MVC" check iris-mlp@v1 --for staging
run "$MVC" metric iris-mlp@v1 acc=abc || true
clock 3
run "$MVC" promote iris-mlp@v1 --to production -m "launch"
clock 4
run "$MVC" promote iris-mlp@v2 --to staging -m "fine-tuned candidate" --json
run "$MVC" metric iris-mlp@v2 latency_p95_ms=33 --json
run "$MVC" promote iris-mlp@v2 --to production --dry-run
clock 5
run "$MVC" promote iris-mlp@v2 --to shadow -m "mirror production traffic"
run "$MVC" promote iris-mlp@v2 --to canary --weight 10 -m "10% canary"
run "$MVC" stages
run "$MVC" stages iris-mlp --json
run "$MVC" resolve iris-mlp
# Buckets (vector "routing"): user-1 2849, user-22 82, user-6628 999, user-15593 1000; canary has 0-999.
for k in user-1 user-22 user-6628 user-15593; do run "$MVC" resolve iris-mlp --key "$k"; done
run "$MVC" resolve iris-mlp --key user-22 --json
run "$MVC" show iris-mlp@canary
clock 6
run "$MVC" promote iris-mlp@canary --to production -m "canary healthy for an hour"
run "$MVC" show iris-mlp@production~1
clock 7
run "$MVC" rollback iris-mlp --stage production -m "p95 regression under load"
run "$MVC" rollback iris-mlp --stage production --to iris-mlp@v2 --json -m "false alarm"
clock 8
run "$MVC" rollback iris-mlp --stage production -m "the alarm was right"
# A held lock: another process is moving the stage (the move object is written, the ref is not).
touch .mvc/refs/stages/iris-mlp/production.lock
run "$MVC" promote iris-mlp@v2 --to production || true
rm .mvc/refs/stages/iris-mlp/production.lock
run "$MVC" retire iris-mlp@v2 -m "p95 regression under load" || true
run "$MVC" demote iris-mlp --stage staging -m "candidate withdrawn" --json
run "$MVC" demote iris-mlp --stage shadow -m "candidate withdrawn"
run "$MVC" retire iris-mlp@v2 -m "p95 regression under load"
run "$MVC" retire iris-mlp@v2 --json
run "$MVC" promote iris-mlp@v2 --to staging || true
run "$MVC" history iris-mlp
run "$MVC" history iris-mlp --stage production --limit 2 --json
run "$MVC" show iris-mlp@production~9 || true
run "$MVC" history iris-mlp --stage production --at 2026-01-01T06:30:00Z
run "$MVC" history iris-mlp --stage production --at 1767229200
run "$MVC" history iris-mlp --stage production --at 1767229200 --json
run "$MVC" history iris-mlp --stage staging --at "2026-01-01T04:30:00+00:00" --json
run "$MVC" history iris-mlp --stage canary --at 2026-01-01T06:30:00Z
run "$MVC" stages iris-mlp
echo '$ cat .mvc/refs/stages/iris-mlp/production'; cat .mvc/refs/stages/iris-mlp/production; echo
echo '$ cat .mvc/logs/refs/stages/iris-mlp/production'; cat .mvc/logs/refs/stages/iris-mlp/production; echo
echo '$ find .mvc/refs/stages .mvc/refs/annotations -type f | sort'; find .mvc/refs/stages .mvc/refs/annotations -type f | sort; echo
for f in $(find .mvc/logs/refs/annotations -type f | sort); do echo "\$ cat $f"; cat "$f"; echo; done
canary_move=$(sed -n 1p .mvc/logs/refs/stages/iris-mlp/canary | cut -d' ' -f2)
run "$MVC" cat-object "$canary_move"
run "$MVC" cat-object "$(cat .mvc/refs/stages/iris-mlp/canary)"
for f in $(find .mvc/refs/annotations -type f | sort); do run "$MVC" cat-object "$(cat "$f")"; done
run "$MVC" card iris-mlp@v1
run "$MVC" card iris-mlp@v2 -o card-v2.md
echo '$ head -5 card-v2.md'; head -5 card-v2.md; echo
run "$MVC" fsck
# A mistake in the policy is reported with its position.
mkdir -p "$WORK/policy-typo" && cd "$WORK/policy-typo" && "$MVC" init >/dev/null
printf 'rules:\n  production:\n    metrcs: []\n' > mvc.yaml
run "$MVC" check iris-mlp@v1 --for production || true
cd "$WORK"
clock 0

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
