#!/usr/bin/env python3
"""mvc benchmark: each scenario's mvc time next to a floor measured in the same run on the same files.

Python 3 standard library only. Generates its own seeded data in a temporary directory (outside
any git repository), builds mvc in release mode, runs six scenarios and prints one table of
ratios, with PASS/MISS against the targets. See Benchmarks/README.md and docs/PERFORMANCE.md.

    python3 Benchmarks/bench.py                 # full run: ~5 min on an idle 2-core machine (stage history
                                                # capped so the run stays under 10 min after the build)
    python3 Benchmarks/bench.py --quick         # small sizes, under a minute
    python3 Benchmarks/bench.py --json out.json # also write the results as JSON
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = dict(model_bytes=1 * GiB, tensors=200, files=20_000, folders=100, add=1_000, modify=100, delete=50,
            csv_bytes=512 * MiB, moves=10_000)
QUICK = dict(model_bytes=128 * MiB, tensors=50, files=2_000, folders=20, add=100, modify=10, delete=5,
             csv_bytes=64 * MiB, moves=500)

# Targets from the issue. kind: ratio (mvc/floor <= x), seconds (mvc < x), fraction (bytes added / size <= x).
TARGETS = {
    "s1-commit": ("ratio", 1.3), "s2-commit": ("ratio", 2.0),
    "unchanged": ("seconds", 0.1), "checkout": ("ratio", 1.5), "stage": ("seconds", 0.020),
    "s1-dedup": ("fraction", 0.11), "s3-dedup": ("fraction", 0.06),
}
RSS_TARGET_MIB = 100


# ----------------------------------------------------------------------------------------------
# Data generation (runs in a child process, so that the driver's own peak RSS stays small: a child
# started with vfork/fork inherits its parent's high-water RSS mark, which would inflate ru_maxrss).

def stream(seed, label, n, block=MiB):
    """n seeded pseudo-random bytes, in blocks: SHAKE-128 of (seed, label, block number)."""
    import hashlib   # only in the generator process: loading libcrypto adds ~4 MiB to the driver's RSS
    i = 0
    while n > 0:
        k = min(block, n)
        yield hashlib.shake_128(f"{seed}:{label}:{i}".encode()).digest(k)
        n -= k
        i += 1


def blob(seed, label, n):
    import hashlib
    return hashlib.shake_128(f"{seed}:{label}".encode()).digest(n)


def model_layout(total, tensors):
    """Tensor names and shapes: `tensors` float32 tensors of about total/tensors bytes each."""
    per = total // tensors // 4
    cols = [1024, 2048, 4096, 1536, 768]
    parts = ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "mlp.extra_proj"]
    out = []
    for i in range(tensors):
        c = cols[i % len(cols)]
        out.append((f"model.layers.{i // len(parts)}.{parts[i % len(parts)]}.weight", [max(1, per // c), c]))
    return out


def safetensors_header(layout):
    header, off = {"__metadata__": {"format": "pt", "generator": "mvc-bench"}}, 0
    spans = []
    for name, shape in layout:
        n = shape[0] * shape[1] * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        spans.append((off, n))
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)                      # pad to 8 bytes, as the safetensors writer does
    return len(h).to_bytes(8, "little") + h, spans


def gen_model(path, total, tensors, seed):
    head, spans = safetensors_header(model_layout(total, tensors))
    with open(path, "wb") as f:
        f.write(head)
        for i, (_, n) in enumerate(spans):
            for b in stream(seed, f"tensor-{i}", n):
                f.write(b)
    return {"bytes": os.path.getsize(path), "tensors": len(spans)}


def rewrite_model(path, total, tensors, seed):
    """v2: rewrite every tenth tensor (10% of them) in place, same offsets, new random values."""
    head, spans = safetensors_header(model_layout(total, tensors))
    rewritten = 0
    with open(path, "r+b") as f:
        for i, (off, n) in enumerate(spans):
            if i % 10 != 3:
                continue
            f.seek(len(head) + off)
            for b in stream(seed, f"v2-tensor-{i}", n):
                f.write(b)
            rewritten += n
    return {"tensors_rewritten": sum(1 for i in range(len(spans)) if i % 10 == 3), "bytes_rewritten": rewritten}


def gen_dataset(root, files, folders, seed):
    rng = random.Random(seed)
    total = 0
    for k in range(files):
        d = os.path.join(root, f"d{k % folders:03d}")
        if k < folders:
            os.makedirs(d, exist_ok=True)
        n = rng.randint(1 * KiB, 64 * KiB)
        with open(os.path.join(d, f"f{k:05d}.bin"), "wb") as f:
            f.write(blob(seed, f"file-{k}", n))
        total += n
    return {"files": files, "bytes": total}


def change_dataset(root, files, folders, add, modify, delete, seed):
    rng = random.Random(seed + 1)
    existing = [os.path.join(root, f"d{k % folders:03d}", f"f{k:05d}.bin") for k in range(files)]
    picked = rng.sample(existing, modify + delete)
    changed = 0
    for i, p in enumerate(picked[:modify]):
        n = rng.randint(1 * KiB, 64 * KiB)
        with open(p, "wb") as f:
            f.write(blob(seed, f"modified-{i}", n))
        changed += n
    for p in picked[modify:]:
        os.unlink(p)
    for k in range(add):
        n = rng.randint(1 * KiB, 64 * KiB)
        with open(os.path.join(root, f"d{k % folders:03d}", f"n{k:05d}.bin"), "wb") as f:
            f.write(blob(seed, f"added-{k}", n))
        changed += n
    return {"added": add, "modified": modify, "deleted": delete, "bytes_written": changed}


WORDS = ("alpha beta gamma delta epsilon model data train eval loss batch layer token vector score label "
         "red green blue north south east west small large fast slow new old good bad open closed "
         "paris london tokyo berlin madrid rome oslo lima cairo delhi sydney quebec lagos seoul").split()
CATS = ["electronics", "books", "garden", "toys", "sports", "music", "food", "health", "auto", "home", "beauty", "tools"]
CSV_HEADER = b"user_id,timestamp,score,amount,quantity,category,comment\n"
ROWS_PER_BLOCK = 16384


def csv_pool(seed):
    """65,536 distinct rows (numeric and text columns); blocks are random sequences of them."""
    rng = random.Random(seed)
    pool = []
    for _ in range(65536):
        pool.append((f"{rng.randrange(10**9)},{1_700_000_000 + rng.randrange(10**8)},{rng.random():.6f},"
                     f"{rng.uniform(-1e4, 1e4):.2f},{rng.randrange(1000)},{rng.choice(CATS)},"
                     f"{' '.join(rng.choices(WORDS, k=rng.randint(2, 9)))}\n").encode())
    return pool


def csv_blocks(pool, seed, label, nbytes):
    """Blocks of whole rows until at least nbytes; yields bytes."""
    import hashlib
    done, i = 0, 0
    while done < nbytes:
        idx = memoryview(hashlib.shake_128(f"{seed}:{label}:{i}".encode()).digest(2 * ROWS_PER_BLOCK)).cast("H")
        b = b"".join(map(pool.__getitem__, idx))
        if done + len(b) > nbytes:      # trim to whole rows
            cut = b.rfind(b"\n", 0, nbytes - done) + 1
            b = b[:cut] if cut > 0 else b[:b.index(b"\n") + 1]
        yield b
        done += len(b)
        i += 1


def gen_csv(path, nbytes, seed):
    pool = csv_pool(seed)
    with open(path, "wb") as f:
        f.write(CSV_HEADER)
        for b in csv_blocks(pool, seed, "v1", nbytes - len(CSV_HEADER)):
            f.write(b)
    return {"bytes": os.path.getsize(path)}


def change_csv(path, seed):
    """v2: insert 2% new rows about 1% into the file (at a row boundary), append 3% at the end."""
    pool = csv_pool(seed)
    size = os.path.getsize(path)
    tmp = path + ".new"
    inserted = appended = 0
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        head = src.read(size // 100)
        cut = head.rfind(b"\n") + 1
        dst.write(head[:cut])
        for b in csv_blocks(pool, seed, "insert", size * 2 // 100):
            dst.write(b)
            inserted += len(b)
        dst.write(head[cut:])
        shutil.copyfileobj(src, dst, MiB)
        for b in csv_blocks(pool, seed, "append", size * 3 // 100):
            dst.write(b)
            appended += len(b)
    os.replace(tmp, path)
    return {"inserted": inserted, "appended": appended, "at": cut}


def generator_main(argv):
    what, args = argv[0], json.loads(argv[1])
    fn = {"model": gen_model, "model-v2": rewrite_model, "dataset": gen_dataset,
          "dataset-v2": change_dataset, "csv": gen_csv, "csv-v2": change_csv}[what]
    print(json.dumps(fn(**args)))


# ----------------------------------------------------------------------------------------------
# Running commands and measuring them.

class Failure(Exception):
    pass


class Runner:
    def __init__(self, env, verbose):
        self.env, self.verbose = env, verbose
        self.rss = []                     # (label, KiB) of every mvc command

    def run(self, argv, cwd, label=None, check=True):
        """Runs argv; returns wall seconds, peak RSS (KiB, from wait4), CPU seconds, exit code, stdout, stderr."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        # mvc reports its own VmHWM with MVC_REPORT_PEAK_RSS=1 (exact); wait4's ru_maxrss can include
        # this script's own high-water mark (see render), so it is the fallback for older binaries.
        m = re.search(r"^mvc: peak RSS (\d+) KiB$", e, re.M)
        rss = int(m.group(1)) if m else ru.ru_maxrss
        r = dict(wall=wall, rss_kib=rss, wait4_rss_kib=ru.ru_maxrss, self_reported=bool(m),
                 cpu=ru.ru_utime + ru.ru_stime, rc=p.returncode, out=o, err=e)
        if label:
            self.rss.append((label, rss, bool(m), ru.ru_maxrss))
        if self.verbose:
            log(f"    {wall:8.3f}s  {rss / 1024:6.1f} MiB{'' if m else '*'}  rc={p.returncode}  {' '.join(argv)[:110]}")
        if check and p.returncode != 0:
            raise Failure(f"{' '.join(argv)} (in {cwd}) exited {p.returncode}: {e.strip() or o.strip()}")
        return r

    def sh(self, script, cwd):
        return self.run(["/bin/sh", "-c", script], cwd)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def store_bytes(workdir):
    """Apparent size of .mvc (as du -sb): the sum of file sizes."""
    total = 0
    for d, _, fs in os.walk(os.path.join(workdir, ".mvc")):
        for f in fs:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except FileNotFoundError:
                pass
    return total


def tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def fmt_s(x):
    if x is None:
        return "—"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def fmt_b(n):
    for unit, k in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n} B"


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r}")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def parse_chunking(s):
    parts = s.split("/")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("chunking is MIN/AVG/MAX, e.g. 32K/128K/512K")
    return tuple(parse_size(p) for p in parts)


# ----------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, mvc, root):
        self.args, self.mvc, self.root = args, mvc, root
        self.sizes = dict(QUICK if args.quick else FULL)
        if args.moves is not None:
            self.sizes["moves"] = args.moves
        env = dict(os.environ)
        env.update(MVC_AUTHOR_NAME="mvc bench", MVC_AUTHOR_EMAIL="bench@example.com", LC_ALL="C", MVC_REPORT_PEAK_RSS="1",
                   GIT_CEILING_DIRECTORIES=root)   # git (run by mvc for code provenance) stops at the data root
        env.pop("MVC_AUTHOR_DATE", None)
        self.r = Runner(env, args.verbose)
        self.rows, self.notes, self.info = [], [], {}
        self.seed = args.seed
        self.last_write = 0.0
        self.deadline = time.monotonic() + args.time_budget

    # -- helpers
    def gen(self, what, **kw):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--generate", what, json.dumps(kw)],
                             check=True, stdout=subprocess.PIPE, text=True)
        out = json.loads(res.stdout)
        log(f"  generated {what} in {time.perf_counter() - t0:.1f}s: {out}")
        self.last_write = time.time()
        os.sync()   # write the generated bytes back now, so that no measured command pays for it
        return out

    def mvc_cmd(self, wd, *argv, label=None, check=True):
        return self.r.run([self.mvc, *argv], wd, label=label or argv[0], check=check)

    def init_store(self, wd):
        os.makedirs(wd, exist_ok=True)
        self.mvc_cmd(wd, "init")
        if self.args.chunking:
            lo, avg, hi = self.args.chunking
            cfg = os.path.join(wd, ".mvc", "config")
            with open(cfg) as f:
                text = f.read()
            for key, val in (("min", lo), ("avg", avg), ("max", hi)):
                text, n = re.subn(rf"(?m)^(\s*){key}\s*=.*$", rf"\g<1>{key} = {val}", text)
                if n != 1:
                    raise Failure(f"cannot set chunking.{key} in {cfg}")
            with open(cfg, "w") as f:
                f.write(text)

    def row(self, scen, op, mvc=None, floor=None, floor_desc="", target=None, rss=None, value=None, note="", status=None):
        row = dict(scenario=scen, operation=op, mvc_s=mvc, floor_s=floor, floor=floor_desc, rss_mib=rss,
                   target=None, result=status, note=note)
        if mvc is not None and floor:
            row["ratio"] = mvc / floor
        if value is not None:
            row["value"] = value
        if target:
            kind, x = TARGETS[target]
            row["target"] = {"ratio": f"<= {x}x", "seconds": f"< {fmt_s(x)}", "fraction": f"<= {x:.0%}"}[kind]
            got = {"ratio": row.get("ratio"), "seconds": mvc, "fraction": value}[kind]
            if got is not None and status is None:
                row["result"] = "PASS" if (got <= x if kind != "seconds" else got < x) else "MISS"
        self.rows.append(row)
        shown = f"{value:.2%}" if value is not None and mvc is None else fmt_s(mvc)
        log(f"  -> {scen} | {op}: mvc {shown}, floor {fmt_s(floor)} {row.get('result') or ''} ({note})")
        return row

    def commit_runs(self, wd, paths, name, label, floor_script, reset):
        """--big-runs commits of the same change; the floor runs right before each one; reset() puts
        the store back between runs. Returns medians and the store growth of the last run."""
        walls, floors, cpus, rss = [], [], [], []
        if label == "v1":
            # Warm-up, not timed (as hyperfine --warmup): in this microVM the first touch of guest
            # memory that a fresh 1 GiB pack's page cache needs costs the first run up to 3x.
            for _ in range(self.args.warmup):
                self.r.sh(floor_script, wd)
                self.mvc_cmd(wd, "commit", *paths, "--name", name, "-m", label, label=f"warm-up commit {name} {label}")
                reset()
                os.sync()
        for i in range(self.args.big_runs):
            if i:
                reset()
                os.sync()
            floors.append(self.r.sh(floor_script, wd)["wall"])
            before = store_bytes(wd)
            r = self.mvc_cmd(wd, "commit", *paths, "--name", name, "-m", label, label=f"commit {name} {label}")
            added = store_bytes(wd) - before
            walls.append(r["wall"]), cpus.append(r["cpu"]), rss.append(r["rss_kib"])
        self.info.setdefault("commits", {})[f"{name} {label}"] = dict(mvc=walls, floor=floors, cpu=cpus)
        runs = f"median of {len(walls)}: " + " / ".join(f"{w:.2f}" for w in walls) + " s" if len(walls) > 1 else "1 run"
        return dict(wall=statistics.median(walls), floor=statistics.median(floors), added=added, rss=max(rss) / 1024,
                    note=f"{runs}; cpu {statistics.median(cpus):.2f} s")

    def commit_pair(self, wd, paths, name, floor_script, change):
        """Commit v1 (each run in a fresh store), change the data, commit v2 (each run on a copy of the
        store as v1 left it)."""
        def fresh():
            shutil.rmtree(os.path.join(wd, ".mvc"))
            self.init_store(wd)
        v1 = self.commit_runs(wd, paths, name, "v1", floor_script, fresh)
        snap = os.path.join(self.root, "snapshot")
        if self.args.big_runs > 1:
            self.r.run(["cp", "-a", os.path.join(wd, ".mvc"), snap], wd)

        def restore():
            shutil.rmtree(os.path.join(wd, ".mvc"))
            self.r.run(["cp", "-a", snap, os.path.join(wd, ".mvc")], wd)
        changed = change()
        v2 = self.commit_runs(wd, paths, name, "v2", floor_script, restore)
        shutil.rmtree(snap, ignore_errors=True)
        return v1, changed, v2

    def unchanged_ops(self, scen, wd, paths, name, walk_target):
        """Status and re-commit with nothing changed: the median of --runs, in the steady state."""
        runs = self.args.runs
        first = self.mvc_cmd(wd, "status", label=f"status {name}")
        if "clean" not in first["out"]:
            raise Failure(f"mvc status in {wd} is not clean: {first['out'][:300]}")
        # The stat cache trusts an entry only if the file's mtime is 2 s older than when it was read
        # ("racy git"): files written less than 2 s before the commit are hashed again. Measure the
        # steady state: wait until the last write is 2 s old, let one status re-record, then time.
        wait = self.last_write + 2.2 - time.time()
        if wait > 0:
            time.sleep(wait)
        settle = self.mvc_cmd(wd, "status", label=f"status {name}")
        fl = statistics.median(self.r.sh(f"find {walk_target} -type f -printf '%s %T@\\n' > /dev/null", wd)["wall"]
                               for _ in range(runs))
        rs = [self.mvc_cmd(wd, "status", label=f"status {name}") for _ in range(runs)]
        self.row(scen, f"status, nothing changed ({name})", statistics.median(r["wall"] for r in rs), fl,
                 "stat walk: find -printf '%s %T@'", "unchanged", rss=max(r["rss_kib"] for r in rs + [first, settle]) / 1024,
                 note=f"median of {runs}; right after the commit (files in the 2 s racy window are hashed again): "
                      f"{fmt_s(first['wall'])}, next after the window: {fmt_s(settle['wall'])}")
        self.info.setdefault("status", {})[name] = dict(first=first["wall"], settle=settle["wall"], runs=[r["wall"] for r in rs])
        rc = [self.mvc_cmd(wd, "commit", *paths, "--name", name, label=f"re-commit {name}") for _ in range(runs)]
        if not all("unchanged" in r["out"].lower() for r in rc):
            self.notes.append(f"re-commit of {name} did not report 'unchanged': {rc[0]['out'].strip()[:200]}")
        self.row(scen, f"re-commit, nothing changed ({name})", statistics.median(r["wall"] for r in rc), fl,
                 "stat walk: find -printf '%s %T@'", "unchanged", rss=max(r["rss_kib"] for r in rc) / 1024,
                 note=f"median of {runs}")

    # -- scenarios
    def s1_model(self):
        log("S1 model")
        wd = os.path.join(self.root, "s1")
        self.init_store(wd)
        f, s = "model.safetensors", self.sizes
        path = os.path.join(wd, f)
        g = self.gen("model", path=path, total=s["model_bytes"], tensors=s["tensors"], seed=self.seed)
        size = g["bytes"]
        floor = f"openssl dgst -sha256 {f} > /dev/null"
        v1, v2, c2 = self.commit_pair(wd, [f], "model", floor, lambda: self.gen(
            "model-v2", path=path, total=s["model_bytes"], tensors=s["tensors"], seed=self.seed))
        self.row("1 model", f"commit v1 ({fmt_b(size)}, {g['tensors']} tensors)", v1["wall"], v1["floor"],
                 "openssl dgst -sha256", "s1-commit", v1["rss"], note=f"{v1['note']}; store +{fmt_b(v1['added'])}")
        self.row("1 model", f"commit v2 ({v2['tensors_rewritten']} tensors rewritten in place)", c2["wall"], c2["floor"],
                 "openssl dgst -sha256", "s1-commit", c2["rss"], note=c2["note"])
        added = c2["added"]
        self.row("1 model", "bytes added to the store by v2", value=added / size, target="s1-dedup",
                 note=f"{fmt_b(added)} = {added / size:.2%} of the file; bytes rewritten: {v2['bytes_rewritten'] / size:.2%}")
        self.info["s1"] = dict(size=size, v1_added=v1["added"], v2_added=added, **v2)
        self.unchanged_ops("4 unchanged", wd, [f], "model", f)
        # 5: checkout v1 over v2 in the work tree; floor: cp of the same file to a fresh directory.
        # By default checkout rewrites the changed chunks in place (FORMAT.md 8.1); with
        # --no-in-place it writes a new file and swaps it in, as when another process has the file
        # open. Also cp over an existing copy: like checkout's whole-file path, that has to dispose
        # of the old file's 1 GiB too (its cached pages and its blocks), which the fresh copy does not.
        walls, wholes, floors, overs, rss, written = [], [], [], [], [], []
        for i in range(self.args.big_runs):
            dst = os.path.join(self.root, "cp-floor")
            os.makedirs(dst)
            os.sync()
            floors.append(self.r.run(["cp", "-r", f, dst], wd)["wall"])
            os.sync()
            overs.append(self.r.run(["cp", "-r", f, dst], wd)["wall"])
            shutil.rmtree(dst)
            os.sync()
            r = self.mvc_cmd(wd, "checkout", "--json", "model@v1", label="checkout model@v1")
            walls.append(r["wall"]), rss.append(r["rss_kib"])
            out = json.loads(r["out"])
            written.append((out["bytesWritten"], len(out.get("rewrittenInPlace", []))))
            self.mvc_cmd(wd, "checkout", "model@v2", label="checkout model@v2")
        # Separately: a whole-file checkout frees 1 GiB of blocks, which would slow the next cp
        # into a fresh directory and flatter the ratios above.
        for i in range(self.args.big_runs):
            os.sync()
            r = self.mvc_cmd(wd, "checkout", "--no-in-place", "model@v1", label="checkout --no-in-place model@v1")
            wholes.append(r["wall"]), rss.append(r["rss_kib"])
            self.mvc_cmd(wd, "checkout", "model@v2", label="checkout model@v2")
        in_place = sum(1 for _, n in written if n)
        if in_place < len(written):
            log(f"  WARNING: only {in_place} of {len(written)} model checkouts were rewritten in place; the median mixes both paths")
        self.row("5 checkout", "model@v1 over v2, in the work tree", statistics.median(walls), statistics.median(floors),
                 "cp -r to a fresh directory", "checkout", max(rss) / 1024,
                 note=f"{fmt_b(statistics.median(b for b, _ in written))} written ({in_place} of {len(written)} runs in place); median of {len(walls)}: " +
                      " / ".join(f"{w:.2f}" for w in walls) + " s; cp: " + " / ".join(f"{w:.2f}" for w in floors) + " s")
        self.row("5 checkout", "model@v1 over v2, --no-in-place (a new file swapped in)", statistics.median(wholes), statistics.median(floors),
                 "cp -r to a fresh directory", None, max(rss) / 1024,
                 note=f"{fmt_b(size)} written; median of {len(wholes)}: " + " / ".join(f"{w:.2f}" for w in wholes) + " s")
        self.row("5 checkout", "model@v1 over v2, --no-in-place, against cp over a copy", statistics.median(wholes), statistics.median(overs),
                 "cp -r over an existing copy", None, max(rss) / 1024,
                 note="the same replacement of a 1 GiB file (no target); cp: " + " / ".join(f"{w:.2f}" for w in overs) + " s")
        self.cleanup(wd)

    def s2_dataset(self):
        log("S2 dataset")
        wd = os.path.join(self.root, "s2")
        self.init_store(wd)
        s = self.sizes
        data = os.path.join(wd, "data")
        g = self.gen("dataset", root=data, files=s["files"], folders=s["folders"], seed=self.seed)
        floor = "find data -type f -print0 | xargs -0 openssl dgst -sha256 > /dev/null"
        v1, c, v2 = self.commit_pair(wd, ["data"], "dataset", floor, lambda: self.gen(
            "dataset-v2", root=data, files=s["files"], folders=s["folders"], add=s["add"], modify=s["modify"],
            delete=s["delete"], seed=self.seed))
        self.row("2 dataset", f"commit v1 ({g['files']:,} files, {fmt_b(g['bytes'])})", v1["wall"], v1["floor"],
                 "openssl dgst -sha256, xargs", "s2-commit", v1["rss"], note=f"{v1['note']}; store +{fmt_b(v1['added'])}")
        self.row("2 dataset", f"commit v2 (+{c['added']:,} files, {c['modified']} modified, {c['deleted']} deleted)",
                 v2["wall"], v2["floor"], "openssl dgst -sha256, xargs", "s2-commit", v2["rss"], note=v2["note"])
        self.row("2 dataset", "bytes added to the store by v2", value=v2["added"] / tree_bytes(data),
                 note=f"{fmt_b(v2['added'])}; bytes of new and modified files: {fmt_b(c['bytes_written'])}")
        self.unchanged_ops("4 unchanged", wd, ["data"], "dataset", "data")
        # 5: checkout. ext4 slows inode allocation while many inodes were deleted recently (its
        # recently_deleted scan), so nothing is deleted until the end of the scenario.
        made = []
        walls, floors, rss = [], [], []
        for i in range(max(1, min(3, self.args.big_runs))):
            out, copy = os.path.join(self.root, f"s2-out-{i}"), os.path.join(self.root, f"s2-copy-{i}")
            made += [out, copy]
            os.sync()
            if i % 2 == 0:   # the order alternates: the first of a pair can meet a colder page cache
                r = self.mvc_cmd(wd, "checkout", "dataset@v1", "-o", out, label="checkout dataset@v1 -o")
                os.sync()
                floors.append(self.r.run(["cp", "-r", out, copy], wd)["wall"])
            else:
                floors.append(self.r.run(["cp", "-r", made[0], copy], wd)["wall"])
                os.sync()
                r = self.mvc_cmd(wd, "checkout", "dataset@v1", "-o", out, label="checkout dataset@v1 -o")
            walls.append(r["wall"]), rss.append(r["rss_kib"])
        self.row("5 checkout", f"dataset@v1 into an empty directory (-o, {s['files']:,} files)", statistics.median(walls),
                 statistics.median(floors), "cp -r of that v1 tree", "checkout", max(rss) / 1024,
                 note=f"median of {len(walls)}: " + " / ".join(f"{w:.2f}" for w in walls) + " s; cp: " +
                      " / ".join(f"{w:.2f}" for w in floors) + " s")
        copy = os.path.join(self.root, "s2-copy-v2")
        made.append(copy)
        os.sync()
        fl = self.r.run(["cp", "-r", "data", copy], wd)["wall"]
        ts = []
        for i in range(self.args.runs_checkout):
            os.sync()
            ts.append(self.mvc_cmd(wd, "checkout", "dataset@v1", label="checkout dataset@v1"))
            self.mvc_cmd(wd, "checkout", "dataset@v2", label="checkout dataset@v2")
        self.row("5 checkout", "dataset@v1 over v2, in the work tree", statistics.median(x["wall"] for x in ts), fl,
                 "cp -r of the v2 tree", "checkout", max(x["rss_kib"] for x in ts) / 1024,
                 note=f"writes {c['modified'] + c['deleted']} files, removes {c['added']:,}; median of {len(ts)}")
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        self.cleanup(wd)

    def s3_table(self):
        log("S3 table")
        wd = os.path.join(self.root, "s3")
        self.init_store(wd)
        f = "table.csv"
        path = os.path.join(wd, f)
        g = self.gen("csv", path=path, nbytes=self.sizes["csv_bytes"], seed=self.seed)
        size = g["bytes"]
        floor = f"openssl dgst -sha256 {f} > /dev/null"
        v1, c, v2 = self.commit_pair(wd, [f], "table", floor, lambda: self.gen("csv-v2", path=path, seed=self.seed))
        self.row("3 table", f"commit v1 ({fmt_b(size)} CSV)", v1["wall"], v1["floor"], "openssl dgst -sha256", None,
                 v1["rss"], note=f"{v1['note']}; store +{fmt_b(v1['added'])}")
        self.row("3 table", "commit v2 (2% rows inserted near the start, 3% appended)", v2["wall"], v2["floor"],
                 "openssl dgst -sha256", None, v2["rss"], note=v2["note"])
        added = v2["added"]
        self.row("3 table", "bytes added to the store by v2", value=added / size, target="s3-dedup",
                 note=f"{fmt_b(added)} = {added / size:.2%} of v1; new rows: {(c['inserted'] + c['appended']) / size:.2%}")
        self.info["s3"] = dict(size=size, v1_added=v1["added"], v2_added=added, **c)
        self.cleanup(wd)

    def stages_available(self, wd):
        for sub in ("promote", "resolve"):
            r = self.r.run([self.mvc, sub, "--help"], wd, check=False)
            # An unknown subcommand with --help prints the root help and exits 0: look for its usage line.
            if r["rc"] != 0 or not re.search(rf"USAGE: mvc {sub}\b", r["out"]):
                return False
        return True

    def s6_stages(self):
        log("S6 stages")
        wd = os.path.join(self.root, "s6")
        self.init_store(wd)
        if not self.stages_available(wd):
            self.row("6 stages", "promote", note="pending (stages not implemented)", status="pending")
            self.row("6 stages", "resolve", note="pending (stages not implemented)", status="pending")
            self.cleanup(wd)
            return
        for v in (1, 2):
            with open(os.path.join(wd, "weights.bin"), "wb") as f:
                f.write(random.Random(self.seed + v).randbytes(4 * KiB))
            self.mvc_cmd(wd, "commit", "weights.bin", "--name", "m", "--kind", "model", "-m", f"v{v}")
        stage, moves = "production", self.sizes["moves"]
        # The history gets --moves-budget seconds, or less so that the whole run ends within --time-budget.
        budget = max(10.0, min(self.args.moves_budget, self.deadline - time.monotonic() - 15))
        promote = [[self.mvc, "promote", f"m@v{1 + i}", "--to", stage, "-m", "bench"] for i in range(2)]
        # The history is built with core.fsync = false (meant for throwaway stores): durability is not
        # what is measured there, and it halves the time. It is switched back on before the timed runs.
        cfg = os.path.join(wd, ".mvc", "config")
        with open(cfg) as f:
            original = f.read()
        with open(cfg, "w") as f:
            f.write(original.replace("[core]\n", "[core]\n\tfsync = false\n", 1))
        log(f"  building a history of {moves:,} moves of '{stage}' (fsync off, budget {budget:.0f} s) ...")
        t0 = time.perf_counter()
        done = 0
        for i in range(moves):
            r = subprocess.run(promote[i % 2], cwd=wd, env=self.r.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise Failure(f"mvc promote failed at move {i}: {r.stderr.decode(errors='replace').strip()}")
            done += 1
            if time.perf_counter() - t0 > budget:
                break
        build = time.perf_counter() - t0
        with open(cfg, "w") as f:
            f.write(original)
        history = f"{done:,} promotions built in {build:.0f} s ({build / done * 1000:.1f} ms each, fsync off)"
        if done < moves:
            history += f", stopped by the time budget ({budget:.0f} s)"
        self.notes.append(f"S6 history: {history}")
        self.info["s6"] = dict(moves=done, build_s=build)
        runs = self.args.runs
        fl = statistics.median(self.mvc_cmd(wd, "version", label="version")["wall"] for _ in range(runs))
        ps = [self.mvc_cmd(wd, *promote[(done + i) % 2][1:], label="promote") for i in range(runs)]
        self.row("6 stages", f"promote, after {done:,} moves of the stage", statistics.median(r["wall"] for r in ps), fl,
                 "mvc version", "stage", max(r["rss_kib"] for r in ps) / 1024,
                 note=f"median of {runs}, fsync on; {history}")
        rs = [self.mvc_cmd(wd, "resolve", "m", "--key", f"user-{i}", label="resolve") for i in range(runs)]
        self.row("6 stages", f"resolve --key, after {done + runs:,} moves", statistics.median(r["wall"] for r in rs), fl,
                 "mvc version", "stage", max(r["rss_kib"] for r in rs) / 1024,
                 note=f"median of {runs}; prints {rs[0]['out'].strip()[:40]!r}")
        self.cleanup(wd)

    def s0_startup(self):
        """The cost of starting mvc at all: the floor under every small command."""
        runs = max(self.args.runs, 9)
        fl = statistics.median(self.r.run(["/bin/true"], self.root)["wall"] for _ in range(runs))
        rs = [self.mvc_cmd(self.root, "version", label="version") for _ in range(runs)]
        self.row("0 startup", "mvc version (start and exit)", statistics.median(r["wall"] for r in rs), fl, "/bin/true",
                 None, max(r["rss_kib"] for r in rs) / 1024, note=f"median of {runs}")

    def cleanup(self, wd):
        if not self.args.keep:
            shutil.rmtree(wd, ignore_errors=True)


# ----------------------------------------------------------------------------------------------

def machine_info(root, mvc):
    info = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory"] = fmt_b(int(line.split()[1]) * KiB)
        best = ("", "?", "?")
        for line in open("/proc/mounts"):
            dev, mnt, fstype = line.split()[:3]
            if (root + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
        info["data_filesystem"] = f"{best[1]} ({best[2]} on {best[0]})"
    except OSError:
        pass
    try:
        info["swift"] = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        info["swift"] = "?"
    info["mvc"] = subprocess.run([mvc, "version"], capture_output=True, text=True).stdout.strip()
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", "Sources", "Package.swift"],
                               capture_output=True, text=True).stdout.strip()
        info["source"] = (head[:12] + (" + uncommitted changes in Sources/" if dirty else "")) if head else "not a git work tree"
    except OSError:
        pass
    info["openssl"] = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    info["load_average_start"] = os.getloadavg()
    return info


def build(args):
    if args.mvc:
        return os.path.abspath(args.mvc)
    scratch = os.path.abspath(os.path.join(REPO, args.scratch_path))
    if not args.no_build:
        log(f"building mvc (release, scratch path {scratch}) ...")
        subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "mvc", "--scratch-path", scratch], cwd=REPO, check=True,
                       stdout=sys.stderr)
    bindir = subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", scratch, "--show-bin-path"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    mvc = os.path.join(bindir, "mvc")
    if not os.access(mvc, os.X_OK):
        sys.exit(f"bench: no mvc binary at {mvc} (build first, or drop --no-build)")
    return mvc


def render(bench, info, elapsed, baseline_kib):
    lines = []
    exact = bool(bench.r.rss) and all(x[2] for x in bench.r.rss)
    lines.append("| scenario | operation | mvc | floor | ratio | target | result | peak RSS |")
    lines.append("|---|---|---:|---:|---:|---|---|---:|")
    for r in bench.rows:
        if "value" in r and r["mvc_s"] is None:
            mvc, floor, ratio = f"{r['value']:.2%}", "—", "—"
        else:
            mvc, floor = fmt_s(r["mvc_s"]), (fmt_s(r["floor_s"]) + (f" ({r['floor']})" if r["floor"] else "")) if r["floor_s"] else "—"
            ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else "—"
        rss = "—" if r["rss_mib"] is None else f"{r['rss_mib']:.1f} MiB"
        if not exact and r["rss_mib"] is not None and r["rss_mib"] * 1024 <= baseline_kib + 512:
            rss = f"<= {baseline_kib / 1024:.1f} MiB*"
        result = r["result"] or ""
        lines.append(f"| {r['scenario']} | {r['operation']} | {mvc} | {floor} | {ratio} | {r['target'] or '—'} | {result} | {rss} |")
    peak = max(bench.r.rss, key=lambda x: x[1]) if bench.r.rss else ("—", 0)
    lines.append(f"| all | peak RSS of every mvc command ({len(bench.r.rss):,} commands) | {peak[1] / 1024:.1f} MiB ({peak[0]}) | — | — "
                 f"| < {RSS_TARGET_MIB} MiB | {'PASS' if peak[1] < RSS_TARGET_MIB * 1024 else 'MISS'} | |")
    if exact:
        diff = max((w - s) for _, s, _, w in bench.r.rss) if bench.r.rss else 0
        rss_note = (f"Peak RSS is mvc's own VmHWM, printed by mvc with MVC_REPORT_PEAK_RSS=1. wait4's ru_maxrss for the same "
                    f"commands is inflated by this script's own high-water mark (vfork+exec keeps it; /bin/true measures "
                    f"{baseline_kib / 1024:.1f} MiB) and exceeds it by up to {diff / 1024:.1f} MiB.")
    else:
        rss_note = (f"Peak RSS is ru_maxrss from wait4 (this mvc does not report its own). A child spawned by this script "
                    f"inherits the script's own high-water mark (vfork/fork then exec): /bin/true measures "
                    f"{baseline_kib / 1024:.1f} MiB here, so values at that level (marked *) are upper bounds; larger "
                    f"values are exact.")
    notes = [f"Ratio = mvc / floor, both measured in this run on the same files. Wall-clock times; "
             f"status, re-commit, stages: median of {bench.args.runs}; big commits and the model checkout: median of "
             f"{bench.args.big_runs}, each right after its floor (page cache warm; {bench.args.warmup} untimed warm-up commit before v1; v1 in a fresh store, v2 on a copy of "
             f"the v1 store).",
             rss_note,
             "Each scenario runs in its own fresh `mvc init` directory outside any git repository "
             "(GIT_CEILING_DIRECTORIES is set to the data root), so commits record no code provenance.",
             ] + bench.notes
    details = [f"{r['scenario']}, {r['operation']}: {r['note']}" for r in bench.rows if r["note"] and r["result"] != "pending"]
    return "\n".join(lines), notes + details


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        return generator_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="Benchmark mvc against floors measured in the same run.")
    ap.add_argument("--quick", action="store_true", help="small sizes (128 MiB model, 2,000 files, 64 MiB CSV, 500 moves)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--scratch-path", default=".build", help="swift build scratch path, relative to the package (default .build)")
    ap.add_argument("--no-build", action="store_true", help="do not build; use the binary in the scratch path")
    ap.add_argument("--mvc", metavar="PATH", help="benchmark this mvc binary instead of building one")
    ap.add_argument("--data-dir", help="an empty directory for the data (default: a new temporary directory); on the disk you care about, "
                         "not tmpfs; a git repository around it is fenced off with GIT_CEILING_DIRECTORIES")
    ap.add_argument("--keep", action="store_true", help="keep the generated data and stores")
    ap.add_argument("--only", default="0,1,2,3,6", help="scenarios to run, e.g. 1,3 (0 is start-up; 4 and 5 run inside 1 and 2)")
    ap.add_argument("--chunking", type=parse_chunking, metavar="MIN/AVG/MAX",
                    help="chunk sizes written into each new store's config, e.g. 32K/128K/512K (default: mvc's)")
    ap.add_argument("--runs", type=int, default=5, help="runs of the cheap operations (median; default 5)")
    ap.add_argument("--big-runs", type=int, default=5,
                    help="runs of each big commit and of the model checkout, each right after its floor (median; default 5)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed commits before the timed v1 commits of each big scenario (default 1)")
    ap.add_argument("--runs-checkout", type=int, default=3, help="runs of the dataset checkout over v2 (median; default 3)")
    ap.add_argument("--moves", type=int, help="stage moves to build before timing promote/resolve (default 10,000; quick 500)")
    ap.add_argument("--moves-budget", type=float, default=300, help="stop building stage history after this many seconds (default 300)")
    ap.add_argument("--time-budget", type=float, default=570,
                    help="seconds for the whole run after the build (default 570): the stage history is cut short to fit")
    ap.add_argument("--seed", type=int, default=20260101, help="seed of every generated byte (default 20260101)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command with its time and RSS")
    args = ap.parse_args()

    for tool in ("openssl", "find", "xargs", "cp"):
        if not shutil.which(tool):
            sys.exit(f"bench: '{tool}' is needed")
    mvc = build(args)
    created = args.data_dir is None
    root = os.path.realpath(tempfile.mkdtemp(prefix="mvc-bench-") if created else args.data_dir)
    os.makedirs(root, exist_ok=True)
    if not created and os.listdir(root):
        sys.exit(f"bench: {root} is not empty")
    inside_git = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    t0 = time.perf_counter()
    bench = Bench(args, mvc, root)
    info = machine_info(root, mvc)
    if inside_git.returncode == 0:
        bench.notes.append(f"the data directory is inside the git repository {inside_git.stdout.strip()}; "
                           "GIT_CEILING_DIRECTORIES keeps mvc's git calls from finding it")
    if info["data_filesystem"].startswith("tmpfs"):
        bench.notes.append("the data directory is on tmpfs: writes and fsync cost nothing; use --data-dir on a disk")
    log(f"mvc {mvc}\ndata {root} ({info.get('data_filesystem')})")
    baseline = bench.r.run(["/bin/true"], root)["rss_kib"]
    selected = {s.strip() for s in args.only.split(",")}
    try:
        for key, fn in (("0", bench.s0_startup), ("1", bench.s1_model), ("2", bench.s2_dataset), ("3", bench.s3_table), ("6", bench.s6_stages)):
            if key in selected:
                fn()
    finally:
        if created and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    baseline = max(baseline, bench.r.run(["/bin/true"], "/")["rss_kib"])
    elapsed = time.perf_counter() - t0
    info["load_average_end"] = os.getloadavg()
    table, notes = render(bench, info, elapsed, baseline)
    mode = "quick" if args.quick else "full"
    chunk = "/".join(fmt_b(x).replace(".00 ", " ") for x in args.chunking) if args.chunking else "mvc default"
    print(f"mvc benchmark ({mode}, chunking {chunk}, seed {args.seed}) — {info.get('mvc')}, source {info.get('source', '?')}")
    print(f"machine: {info.get('nproc')} cores, {info.get('cpu')}, {info.get('memory')}, data on {info.get('data_filesystem')}, "
          f"{info.get('swift')}, {info.get('openssl')}")
    print(f"load average at start {info['load_average_start'][0]:.2f}, at end {info['load_average_end'][0]:.2f}; "
          f"total {elapsed:.0f}s\n")
    print(table)
    print()
    for n in notes:
        print(f"- {n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mode": mode, "chunking": args.chunking, "seed": args.seed, "machine": info, "elapsed_s": elapsed,
                       "rss_baseline_kib": baseline, "rows": bench.rows, "notes": notes,
                       "commands_rss_kib": bench.r.rss, "scenarios": bench.info}, f, indent=2)
    misses = sum(1 for r in bench.rows if r["result"] == "MISS")
    log(f"done in {elapsed:.0f}s; {misses} target(s) missed")


if __name__ == "__main__":
    main()
