#if canImport(Glibc)
internal import Glibc
#endif

/// The stat cache, `.mvc/index`: for each work-tree path mvc last hashed, wrote or committed, the
/// file's stat fields and blob id, so unchanged files are not read again (git's index does the same).
///
/// An entry is trusted only when size, mtime, ctime and inode all match and the file's mtime was
/// older than the moment its bytes were read by more than `racyWindow`. Otherwise a rewrite in the
/// same timestamp tick, after mvc read the file, could leave every stat field unchanged (the "racy
/// git" problem); such entries are re-hashed on each use until they age. The cache is only a hint:
/// losing it costs time, never correctness.
///
/// Format (FORMAT.md section 8): `mvc-index 2` and a newline, then binary: the entry count, fixed
/// records sorted by path bytes, the paths, and a SHA-256 of everything before it. It loads with one
/// read, one checksum and no allocation per entry (status reads it on every run); a lookup is a
/// binary search, after trying the entry following the previous hit (lookups come in walk order,
/// which is nearly path order). The text format `mvc-index 1` of earlier versions is read too, and
/// rewritten in the current format by the next `save`.
final class StatCache {
    struct Entry: Equatable {
        var size: UInt64
        var mtimeNanos: Int64
        var ctimeNanos: Int64
        var inode: UInt64
        /// When the bytes were read (clock time taken after the first stat, before the read).
        var readAt: Int64
        var id: ObjectID
    }

    /// Two seconds: coarser than the timestamp granularity of any file system mvc supports.
    static let racyWindow: Int64 = 2_000_000_000

    static let header = Array("mvc-index 2\n".utf8)
    static let textHeader = Array("mvc-index 1\n".utf8)
    /// size, mtime, ctime, inode, read-at (8 bytes each), blob id (32), path length (4).
    static let recordSize = 76

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

    /// A path as bytes: Swift's `String` equality would merge canonically equivalent names (NFC
    /// and NFD 'é'), which Linux keeps apart. Hashed in one call, not byte by byte.
    struct PathKey: Hashable {
        var bytes: [UInt8]
        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

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
                let len = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: p + 72, as: UInt32.self)))
                guard len > 0 else { return false }
                total += len
                starts.append(total)
                list.append(Entry(size: u64(p), mtimeNanos: i64(p + 8), ctimeNanos: i64(p + 16), inode: u64(p + 24), readAt: i64(p + 32),
                                  id: ObjectID(w0: u64(p + 40), w1: u64(p + 48), w2: u64(p + 56), w3: u64(p + 64))))
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

    private func entry(_ rel: String) -> Entry? {
        if let i = withKey(rel, position), !removed[i] { return entries[i] }
        return added.isEmpty ? nil : added[PathKey(bytes: Array(rel.utf8))]
    }

    /// The cached blob id for `rel` if `st` proves the file unchanged since it was read.
    func lookup(_ rel: String, _ st: FileIO.Stat) -> ObjectID? {
        guard let e = entry(rel), e.size == st.size, e.mtimeNanos == st.mtimeNanos, e.ctimeNanos == st.ctimeNanos,
              e.inode == st.inode, max(e.mtimeNanos, e.ctimeNanos) < e.readAt - StatCache.racyWindow else { return nil }
        return e.id
    }

    /// Records that the file at `rel` had blob `id`, with `st` unchanged from before the read
    /// (started at `readAt`) to after it.
    func record(_ rel: String, _ st: FileIO.Stat, readAt: Int64, _ id: ObjectID) {
        let e = Entry(size: st.size, mtimeNanos: st.mtimeNanos, ctimeNanos: st.ctimeNanos, inode: st.inode, readAt: readAt, id: id)
        if let i = withKey(rel, position) {
            if removed[i] || entries[i] != e { entries[i] = e; removed[i] = false; dirty = true }
            return
        }
        let key = PathKey(bytes: Array(rel.utf8))
        if added[key] != e { added[key] = e; dirty = true }
    }

    func forget(_ rel: String) {
        if let i = withKey(rel, position) {
            if !removed[i] { removed[i] = true; dirty = true }
        } else if added.removeValue(forKey: PathKey(bytes: Array(rel.utf8))) != nil {
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
