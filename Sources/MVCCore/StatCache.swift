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
/// Format: a first line `mvc-index 1`, then one line per entry, sorted by path:
/// `<size> <mtime ns> <ctime ns> <inode> <read-at ns> <blob id> <path>`.
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

    let path: String
    private var entries: [[UInt8]: (path: String, entry: Entry)] = [:]
    private var dirty = false

    init(path: String) {
        self.path = path
        guard let bytes = try? FileIO.readSmallFile(path, limit: 1 << 30) else { return }
        // Parsed as bytes: this runs on every status of a tree of many files.
        let header = Array("mvc-index 1\n".utf8)
        guard bytes.count >= header.count, Array(bytes[0..<header.count]) == header else { return }   // unreadable or newer: start empty
        let nl = UInt8(ascii: "\n"), sp = UInt8(ascii: " ")
        var p = header.count
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
        while p < bytes.count {
            var end = p
            while end < bytes.count, bytes[end] != nl { end += 1 }
            guard end < bytes.count, let size = number(end), let m = number(end), let c = number(end), let ino = number(end),
                  let readAt = number(end), p + 65 <= end, bytes[p + 64] == sp,
                  let id = ObjectID(hex: String(decoding: bytes[p..<(p + 64)], as: UTF8.self)) else { entries = [:]; return }
            let rel = String(decoding: bytes[(p + 65)..<end], as: UTF8.self)
            entries[rel.byteKey] = (rel, Entry(size: UInt64(size), mtimeNanos: m, ctimeNanos: c, inode: UInt64(ino), readAt: readAt, id: id))
            p = end + 1
        }
    }

    /// The cached blob id for `rel` if `st` proves the file unchanged since it was read.
    func lookup(_ rel: String, _ st: FileIO.Stat) -> ObjectID? {
        guard let e = entries[rel.byteKey]?.entry, e.size == st.size, e.mtimeNanos == st.mtimeNanos, e.ctimeNanos == st.ctimeNanos,
              e.inode == st.inode, max(e.mtimeNanos, e.ctimeNanos) < e.readAt - StatCache.racyWindow else { return nil }
        return e.id
    }

    /// Records that the file at `rel` had blob `id`, with `st` unchanged from before the read
    /// (started at `readAt`) to after it.
    func record(_ rel: String, _ st: FileIO.Stat, readAt: Int64, _ id: ObjectID) {
        let e = Entry(size: st.size, mtimeNanos: st.mtimeNanos, ctimeNanos: st.ctimeNanos, inode: st.inode, readAt: readAt, id: id)
        if entries[rel.byteKey]?.entry != e { entries[rel.byteKey] = (rel, e); dirty = true }
    }

    func forget(_ rel: String) {
        if entries.removeValue(forKey: rel.byteKey) != nil { dirty = true }
    }

    /// Writes the cache when it changed (temp file + rename, no fsync: it is a hint). Errors are
    /// ignored for the same reason: a read-only store still works, only slower.
    func save() {
        guard dirty else { return }
        var out = "mvc-index 1\n"
        for (_, value) in entries.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let e = value.entry
            out += "\(e.size) \(e.mtimeNanos) \(e.ctimeNanos) \(e.inode) \(e.readAt) \(e.id.hex) \(value.path)\n"
        }
        try? FileIO.writeFileAtomically(path, Array(out.utf8), sync: false)
        dirty = false
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
