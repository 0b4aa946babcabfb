#if canImport(Glibc)
internal import Glibc
#endif

/// The stat cache, `.mvc/index`: for each work-tree path mvc last hashed, wrote or committed, the
/// file's stat fields and blob id, so unchanged files are not read again (git's index does the same).
///
/// An entry is trusted only when size, mtime, ctime and inode all match the file's `lstat`, and
/// then by one of two rules, depending on how mvc came to know the bytes (FORMAT.md section 8):
/// - a *read* entry (commit, status, checkout's plan hashed the file): when the file's mtime and
///   ctime were older than the moment its bytes were read by more than `racyWindow`. Otherwise a
///   rewrite in the same timestamp tick, after mvc read the file, could leave every stat field
///   unchanged (the "racy git" problem); such entries are re-hashed on each use until they age;
/// - a *written* entry (checkout wrote the bytes and renamed the file into place): when its
///   timestamps have a sub-second part and are older than `readAt` by more than `writtenWindow`,
///   `readAt` being taken after checkout waited for that (`recordWritten`, which says why this is
///   sound and what it leaves open).
/// The cache is only a hint: losing it costs time, never correctness.
///
/// Format (FORMAT.md section 8): `mvc-index 2` and a newline, then binary: the entry count, fixed
/// records sorted by path bytes, the paths, and a SHA-256 of everything before it. It loads with one
/// read, one checksum and no allocation per entry (status reads it on every run); a lookup is a
/// binary search, after trying the entry following the previous hit (lookups come in walk order,
/// which is nearly path order). The text format `mvc-index 1` of earlier versions is read too (its
/// entries are all read entries), and rewritten in the current format by the next `save`.
final class StatCache {
    struct Entry: Equatable {
        var size: UInt64
        var mtimeNanos: Int64
        var ctimeNanos: Int64
        var inode: UInt64
        /// Read entries: when the bytes were read (clock time taken after the first stat, before
        /// the read). Written entries: the clock time after checkout's wait, before the final stat.
        var readAt: Int64
        var id: ObjectID
        /// Checkout wrote these bytes and renamed the file into place (flag bit 0 on disk).
        var written = false

        /// Whether this entry proves a file with stat `st` still holds blob `id`.
        func trusted(for st: FileIO.Stat) -> Bool {
            guard size == st.size, mtimeNanos == st.mtimeNanos, ctimeNanos == st.ctimeNanos, inode == st.inode else { return false }
            let newest = max(mtimeNanos, ctimeNanos)
            guard written else { return newest < readAt - StatCache.racyWindow }
            // A whole-second mtime: the file system's timestamps are likely whole seconds (ext4 with
            // 128-byte inodes, FAT's 2 s), so a rewrite up to a second later could keep every
            // field; such entries wait for a re-read, as read entries do. On a file system with
            // finer timestamps this misjudges one file in 10^9, which then costs one re-hash.
            return mtimeNanos % 1_000_000_000 != 0 && newest < readAt - StatCache.writtenWindow
        }
    }

    /// Two seconds: coarser than the timestamp granularity of any file system mvc supports.
    static let racyWindow: Int64 = 2_000_000_000
    /// G, 20 ms: longer than two ticks of the kernel's coarse timestamp clock (`recordWritten`).
    static let writtenWindow: Int64 = 20_000_000
    /// Flag bits of a record; any other bit makes the index unreadable (a later meaning mvc does
    /// not know).
    static let writtenFlag: UInt32 = 1

    static let header = Array("mvc-index 2\n".utf8)
    static let textHeader = Array("mvc-index 1\n".utf8)
    /// size, mtime, ctime, inode, read-at (8 bytes each), blob id (32), flags (4), path length (4).
    static let recordSize = 80

    let path: String
    /// The entries loaded from the file, sorted by path bytes; path `i` is
    /// `keys[keyStarts[i]..<keyStarts[i + 1]]`. Updated in place; `removed` marks forgotten ones.
    private var keys: [UInt8] = []
    private var keyStarts: [Int] = [0]
    private var entries: [Entry] = []
    private var removed: [Bool] = []
    /// Entries for paths that were not in the file, recorded since it was loaded.
    private var added: [PathKey: Entry] = [:]
    /// Where the next lookup looks first: the entry after the last one found.
    private var cursor = 0
    private var dirty = false

    init(path: String) {
        self.path = path
        guard let bytes = try? FileIO.readSmallFile(path, limit: 1 << 30) else { return }
        if bytes.starts(with: StatCache.header) {
            if !load(bytes) { clear() }   // damaged: start empty
        } else if bytes.starts(with: StatCache.textHeader) {
            if loadText(bytes) { dirty = true } else { clear() }   // rewritten in the current format on save
        }   // anything else (unreadable, newer): start empty
    }

    private func clear() {
        keys = []; keyStarts = [0]; entries = []; removed = []; added = [:]
    }

    /// Reads the binary format; false if anything is off (length, checksum, order).
    private func load(_ bytes: [UInt8]) -> Bool {
        let h = StatCache.header.count, rs = StatCache.recordSize
        guard bytes.count >= h + 8 + 32 else { return false }
        return bytes.withUnsafeBytes { (raw) -> Bool in
            func u64(_ p: Int) -> UInt64 { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self)) }
            func i64(_ p: Int) -> Int64 { Int64(bitPattern: u64(p)) }
            let count = u64(h)
            guard count <= UInt64(bytes.count / rs) else { return false }
            let n = Int(count)
            let pathsStart = h + 8 + n * rs
            guard pathsStart + 32 <= bytes.count else { return false }
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(bytes.count - 32)])
            guard ObjectID.hash(body).bytesEqual(raw, at: bytes.count - 32) else { return false }
            var starts = [Int](); starts.reserveCapacity(n + 1); starts.append(0)
            var list = [Entry](); list.reserveCapacity(n)
            var total = 0
            for i in 0..<n {
                let p = h + 8 + i * rs
                let flags = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: p + 72, as: UInt32.self))
                let len = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: p + 76, as: UInt32.self)))
                guard len > 0, flags & ~StatCache.writtenFlag == 0 else { return false }
                total += len
                starts.append(total)
                list.append(Entry(size: u64(p), mtimeNanos: i64(p + 8), ctimeNanos: i64(p + 16), inode: u64(p + 24), readAt: i64(p + 32),
                                  id: ObjectID(w0: u64(p + 40), w1: u64(p + 48), w2: u64(p + 56), w3: u64(p + 64)),
                                  written: flags & StatCache.writtenFlag != 0))
            }
            guard pathsStart + total + 32 == bytes.count else { return false }
            let paths = UnsafeRawBufferPointer(rebasing: raw[pathsStart..<(pathsStart + total)])
            // Strictly increasing: binary search relies on it, and a path appears once.
            for i in 1..<max(n, 1) where StatCache.compare(paths, starts[i - 1], starts[i], paths, starts[i], starts[i + 1]) >= 0 {
                return false
            }
            keys = Array(paths)
            keyStarts = starts
            entries = list
            removed = [Bool](repeating: false, count: n)
            return true
        }
    }

    /// Reads the text format `mvc-index 1` (mvc 0.1):
    /// `<size> <mtime ns> <ctime ns> <inode> <read-at ns> <blob id> <path>` per line.
    private func loadText(_ bytes: [UInt8]) -> Bool {
        let nl = UInt8(ascii: "\n"), sp = UInt8(ascii: " ")
        var p = StatCache.textHeader.count
        func number(_ end: Int) -> Int64? {
            var v: Int64 = 0, neg = false, any = false
            var q = p
            if q < end, bytes[q] == UInt8(ascii: "-") { neg = true; q += 1 }
            while q < end, bytes[q] != sp {
                let d = bytes[q] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                v = v &* 10 &+ Int64(d); any = true; q += 1
            }
            guard any, q < end else { return nil }
            p = q + 1
            return neg ? -v : v
        }
        var byPath: [PathKey: Entry] = [:]
        while p < bytes.count {
            var end = p
            while end < bytes.count, bytes[end] != nl { end += 1 }
            guard end < bytes.count, let size = number(end), let m = number(end), let c = number(end), let ino = number(end),
                  let readAt = number(end), p + 65 < end, bytes[p + 64] == sp,
                  let id = ObjectID(hex: String(decoding: bytes[p..<(p + 64)], as: UTF8.self)) else { return false }
            byPath[PathKey(bytes: Array(bytes[(p + 65)..<end]))] =
                Entry(size: UInt64(size), mtimeNanos: m, ctimeNanos: c, inode: UInt64(ino), readAt: readAt, id: id)
            p = end + 1
        }
        added = byPath
        return true
    }

    /// Compares two byte strings (like `memcmp`, then shorter first).
    private static func compare(_ a: UnsafeRawBufferPointer, _ aStart: Int, _ aEnd: Int,
                                _ b: UnsafeRawBufferPointer, _ bStart: Int, _ bEnd: Int) -> Int32 {
        let la = aEnd - aStart, lb = bEnd - bStart
        let common = min(la, lb)
        if common > 0 {
            let c = memcmp(a.baseAddress! + aStart, b.baseAddress! + bStart, common)
            if c != 0 { return c }
        }
        return la < lb ? -1 : (la > lb ? 1 : 0)
    }

    /// The position of a loaded path, nil if it was not in the file.
    private func position(_ key: UnsafeRawBufferPointer) -> Int? {
        let n = entries.count
        guard n > 0 else { return nil }
        let found = keys.withUnsafeBytes { (k) -> Int? in
            keyStarts.withUnsafeBufferPointer { (starts) -> Int? in
                func cmp(_ i: Int) -> Int32 { StatCache.compare(key, 0, key.count, k, starts[i], starts[i + 1]) }
                if cursor < n, cmp(cursor) == 0 { return cursor }
                var lo = 0, hi = n
                while lo < hi {
                    let mid = (lo + hi) / 2
                    let c = cmp(mid)
                    if c == 0 { return mid }
                    if c < 0 { hi = mid } else { lo = mid + 1 }
                }
                return nil
            }
        }
        if let found { cursor = found + 1 }
        return found
    }

    /// Runs `body` on the UTF-8 bytes of `rel`, without copying them when the string is native.
    private func withKey<R>(_ rel: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let r = rel.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(rel.utf8).withUnsafeBytes(body)
    }

    /// The entry for `rel`, trusted or not.
    func entry(_ rel: String) -> Entry? {
        if let i = withKey(rel, position), !removed[i] { return entries[i] }
        return added.isEmpty ? nil : added[rel.byteKey]
    }

    /// The cached blob id for `rel` if `st` proves the file unchanged since mvc read or wrote it.
    func lookup(_ rel: String, _ st: FileIO.Stat) -> ObjectID? {
        guard let e = entry(rel), e.trusted(for: st) else { return nil }
        return e.id
    }

    /// Records that the file at `rel` had blob `id`: read, with `st` unchanged from before the
    /// read (started at `readAt`) to after it; or `written` by checkout (see `recordWritten`).
    func record(_ rel: String, _ st: FileIO.Stat, readAt: Int64, _ id: ObjectID, written: Bool = false) {
        let e = Entry(size: st.size, mtimeNanos: st.mtimeNanos, ctimeNanos: st.ctimeNanos, inode: st.inode, readAt: readAt, id: id, written: written)
        if let i = withKey(rel, position) {
            if removed[i] || entries[i] != e { entries[i] = e; removed[i] = false; dirty = true }
            return
        }
        let key = rel.byteKey
        if added[key] != e { added[key] = e; dirty = true }
    }

    /// A file checkout wrote and put in place (linked, renamed or swapped in, or rewrote in place):
    /// its path, its `lstat` right after, and the blob written into it.
    struct WrittenFile {
        var path: String
        var stat: FileIO.Stat
        var id: ObjectID
    }

    /// Records the files a checkout wrote under the work tree `root`, once, after the last of them
    /// (git's trade-off for the files it writes, made explicit).
    ///
    /// mvc knows what it wrote, so the only question is whether the file changed since. Every
    /// change to a file (a write, a truncate, a rename over it) stamps its ctime, and a write its
    /// mtime, with the kernel's coarse clock: the wall clock as of the last timer tick, 1 to 10 ms
    /// old (HZ 1000 to 100), then cut to the file system's granularity. So a change after mvc's
    /// rename shows in the stat fields unless it falls in the same timestamp unit as the rename;
    /// the stat we keep must be taken once that unit is over, or a change just after our stat
    /// could still get the same stamps. Hence: wait until the newest `max(mtime, ctime)` of the
    /// files is more than G = `writtenWindow` (20 ms) behind the clock (at most 20 ms, once per
    /// checkout), take `readAt`, `lstat` each file again and keep it only if nothing moved since its
    /// rename. 20 ms is two of the longest ticks: the coarse clock lags the wall clock by at most
    /// one tick, so at `readAt` it reads more than 10 ms past any stamp the files carry, and every
    /// later change gets a later stamp. That holds for stamps of 10 ms granularity (exFAT) too;
    /// coarser ones are whole seconds (ext4 with 128-byte inodes, FAT), which `Entry.trusted`
    /// refuses. `Entry.trusted` checks `max(mtime, ctime) < readAt - G` again, so an entry whose
    /// wait was cut short (timestamps ahead of this clock, e.g. a file server's) is not trusted.
    ///
    /// The residual risk, as in git: another process that rewrites a file with the same number of
    /// bytes, in place, within one tick after mvc's rename (before the coarse clock moves on), gets
    /// the same stamps, and mvc takes the file for what it wrote until its stat changes. (Where
    /// the kernel has multigrain timestamps, Linux 6.13 and later on most local file systems, a
    /// change after a stat read the old stamps gets fine-grained ones, which narrows this to the
    /// moment between the rename and mvc's first `lstat`.) Read entries keep the 2 s rule: there
    /// mvc knows only what it read, not when the bytes last changed.
    func recordWritten(_ files: [WrittenFile], under root: String) {
        guard let newest = files.lazy.map({ max($0.stat.mtimeNanos, $0.stat.ctimeNanos) }).max() else { return }
        let G = StatCache.writtenWindow
        var now = StatCache.now()
        if now - G <= newest {
            var wait = timespec(tv_sec: 0, tv_nsec: Int(min(newest + G + 1 - now, G))), rest = timespec()
            while nanosleep(&wait, &rest) != 0 && errno == EINTR { wait = rest }
            now = StatCache.now()
        }
        for f in files {
            let again: FileIO.Stat?
            do throws(MVCError) { again = try FileIO.lstat(joinPath(root, f.path)) } catch { again = nil }
            if again == f.stat { record(f.path, f.stat, readAt: now, f.id, written: true) } else { forget(f.path) }
        }
    }

    func forget(_ rel: String) {
        if let i = withKey(rel, position) {
            if !removed[i] { removed[i] = true; dirty = true }
        } else if added.removeValue(forKey: rel.byteKey) != nil {
            dirty = true
        }
    }

    /// Writes the cache when it changed (temp file + rename, no fsync: it is a hint). Errors are
    /// ignored for the same reason: a read-only store still works, only slower.
    func save() {
        guard dirty else { return }
        let extra = added.sorted { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }
        var records: [UInt8] = [], paths: [UInt8] = []
        records.reserveCapacity((entries.count + extra.count) * StatCache.recordSize)
        paths.reserveCapacity(keys.count + extra.count * 32)
        var count: UInt64 = 0
        func append(_ e: Entry, _ path: UnsafeRawBufferPointer) {
            guard path.count > 0 else { return }   // no such path; the format has none
            records.appendBE(e.size)
            records.appendBE(UInt64(bitPattern: e.mtimeNanos))
            records.appendBE(UInt64(bitPattern: e.ctimeNanos))
            records.appendBE(e.inode)
            records.appendBE(UInt64(bitPattern: e.readAt))
            for w in [e.id.w0, e.id.w1, e.id.w2, e.id.w3] { records.appendBE(w) }
            records.appendBE32(e.written ? StatCache.writtenFlag : 0)
            records.appendBE32(UInt32(path.count))
            paths.append(contentsOf: path)
            count += 1
        }
        keys.withUnsafeBytes { k in
            var j = 0
            for i in 0..<entries.count where !removed[i] {
                let key = UnsafeRawBufferPointer(rebasing: k[keyStarts[i]..<keyStarts[i + 1]])
                // Merge: the added paths that sort before this one go first.
                while j < extra.count, extra[j].key.bytes.withUnsafeBytes({ StatCache.compare($0, 0, $0.count, key, 0, key.count) }) < 0 {
                    extra[j].key.bytes.withUnsafeBytes { append(extra[j].value, $0) }
                    j += 1
                }
                append(entries[i], key)
            }
            while j < extra.count {
                extra[j].key.bytes.withUnsafeBytes { append(extra[j].value, $0) }
                j += 1
            }
        }
        var out = StatCache.header
        out.reserveCapacity(out.count + 8 + records.count + paths.count + 32)
        out.appendBE(count)
        out.append(contentsOf: records)
        out.append(contentsOf: paths)
        let sum = ObjectID.hash(out)
        for w in [sum.w0, sum.w1, sum.w2, sum.w3] { out.appendBE(w) }
        try? FileIO.writeFileAtomically(path, out, sync: false)
        dirty = false
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

private extension ObjectID {
    /// True if the 32 bytes at `offset` of `raw` are this id.
    func bytesEqual(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        for (k, w) in [w0, w1, w2, w3].enumerated()
        where UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8 * k, as: UInt64.self)) != w {
            return false
        }
        return true
    }
}
