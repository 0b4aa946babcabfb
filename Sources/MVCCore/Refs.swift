#if canImport(Glibc)
internal import Glibc
#endif

/// One line of a ref's log: who moved it, when, from what to what, and why.
public struct RefLogEntry: Sendable, Equatable, Codable {
    public var old: ObjectID?
    public var new: ObjectID?
    public var actor: Signature
    public var message: String

    /// `<old> <new> <name> <<email>> <seconds> <+hhmm>\t<message>\n`; a missing side is 64 zeros.
    func encoded() -> [UInt8] {
        let zero = String(repeating: "0", count: 64)
        let msg = message.map { $0 == "\n" || $0 == "\t" ? " " : $0 }
        return Array("\(old?.hex ?? zero) \(new?.hex ?? zero) \(actor.name) <\(actor.email)> \(actor.time) \(actor.tzString)\t\(String(msg))\n".utf8)
    }

    static func decode(_ line: Substring) -> RefLogEntry? {
        guard let tab = line.firstIndex(of: "\t") else { return nil }
        let head = line[..<tab], message = String(line[line.index(after: tab)...])
        let f = head.split(separator: " ", maxSplits: 2)
        guard f.count == 3, let lt = f[2].firstIndex(of: "<"), let gt = f[2].lastIndex(of: ">"), lt > f[2].startIndex else { return nil }
        let zero = String(repeating: "0", count: 64)
        let old = f[0] == zero ? nil : ObjectID(hex: f[0]), new = f[1] == zero ? nil : ObjectID(hex: f[1])
        if (f[0] != zero && old == nil) || (f[1] != zero && new == nil) { return nil }
        let tail = f[2][f[2].index(after: gt)...].split(separator: " ")
        guard tail.count == 2, let t = Int64(tail[0]), let tz = Signature.parseTZ(tail[1]) else { return nil }
        let name = String(f[2][..<f[2].index(before: lt)])
        let email = String(f[2][f[2].index(after: lt)..<gt])
        let entry = RefLogEntry(old: old, new: new, actor: Signature(name: name, email: email, time: t, tzOffsetMinutes: tz), message: message)
        // Only the canonical form is accepted (lowercase hex, +hhmm zones, ...).
        guard entry.encoded().elementsEqual((line + "\n").utf8) else { return nil }
        return entry
    }
}

/// Refs under `.mvc/refs`: one file per ref holding `<64 hex>\n`, each with a log under
/// `.mvc/logs/<ref>`. Updates are compare-and-swap under `<ref>.lock`, as git does them.
public final class RefStore: Sendable {
    let storeDirectory: String
    /// fsync ref values, logs and directories (`core.fsync`).
    let durable: Bool

    init(storeDirectory: String, durable: Bool = true) {
        self.storeDirectory = storeDirectory
        self.durable = durable
    }

    func path(_ ref: String) -> String { joinPath(storeDirectory, ref) }
    func logPath(_ ref: String) -> String { joinPath(joinPath(storeDirectory, "logs"), ref) }

    /// The ref's target, nil when it does not exist.
    public func read(_ ref: String) throws(MVCError) -> ObjectID? {
        let p = path(ref)
        if let st = try FileIO.lstat(p), st.isDirectory { return nil }
        guard let bytes = try FileIO.readSmallFile(p, limit: 4096) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasSuffix("\n"), let id = ObjectID(hex: text.dropLast()), id.hex == text.dropLast() else {
            throw MVCError(.corruptObject, "ref '\(ref)' is corrupt: '\(text.prefix(70))'",
                           hint: "restore it from its log '\(logPath(ref))' (last column of the last line) or run 'mvc fsck'")
        }
        return id
    }

    /// One ref change of a transaction.
    public struct Update: Sendable {
        public var ref: String
        public var expected: ObjectID?
        public var new: ObjectID?
        public var message: String
        public init(ref: String, expected: ObjectID?, new: ObjectID?, message: String) {
            self.ref = ref; self.expected = expected; self.new = new; self.message = message
        }
    }

    /// Moves `ref` from `expected` to `new` (nil = absent), appending to its log.
    /// Fails with `.lockHeld` if another process holds the lock and `.refMoved` if the ref no
    /// longer holds `expected`. The new value is fsynced before the rename that publishes it.
    public func update(_ ref: String, from expected: ObjectID?, to new: ObjectID?, actor: Signature, message: String) throws(MVCError) {
        try update([Update(ref: ref, expected: expected, new: new, message: message)], actor: actor)
    }

    /// Moves several refs together, as git's ref transactions do: every lock is taken and every
    /// expected value checked before any ref changes, so a held lock or a moved ref fails the
    /// whole transaction with nothing changed. (A crash between the final renames can still leave
    /// some moved and not others, as with git's loose refs.)
    public func update(_ updates: [Update], actor: Signature) throws(MVCError) {
        let sorted = updates.sorted { $0.ref < $1.ref }
        var locks: [(update: Update, path: String, lock: String, fd: Int32)] = []
        var published = Set<String>()
        defer {
            for l in locks {
                close(l.fd)
                if !published.contains(l.lock) { FileIO.unlink(l.lock) }
            }
        }
        for u in sorted {
            let p = path(u.ref)
            try checkNoConflict(u.ref)
            try FileIO.mkdirs(parentPath(p))
            let lock = p + ".lock"
            let fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd < 0 {
                if errno == EEXIST {
                    throw MVCError(.lockHeld, "ref '\(u.ref)' is locked: '\(lock)' exists",
                                   hint: "another mvc is updating it; if none is running, remove '\(lock)'")
                }
                throw .io("create lock", path: lock, errno: errno)
            }
            locks.append((u, p, lock, fd))
        }
        for l in locks {
            let current = try read(l.update.ref)
            guard current == l.update.expected else {
                throw MVCError(.refMoved, "ref '\(l.update.ref)' moved since it was read (expected \(l.update.expected?.short ?? "nothing"), found \(current?.short ?? "nothing"))",
                               hint: "another process changed it; look again and retry")
            }
        }
        // New values and log lines, then one round of fsyncs for all of them (in parallel), then
        // the renames that publish the values.
        var toSync: [(fd: Int32, path: String)] = []
        for l in locks {
            if let new = l.update.new {
                try FileIO.writeAll(l.fd, Array("\(new.hex)\n".utf8), path: l.lock)
                toSync.append((l.fd, l.lock))
            }
        }
        var logs: [Int32] = []
        defer { for fd in logs { close(fd) } }
        for l in locks {
            let (fd, lp) = try appendLog(l.update.ref, RefLogEntry(old: l.update.expected, new: l.update.new, actor: actor, message: l.update.message))
            logs.append(fd)
            toSync.append((fd, lp))
        }
        if durable { try FileIO.fsyncAll(files: toSync) }
        for l in locks {
            if l.update.new != nil {
                try FileIO.rename(l.lock, l.path)
                published.insert(l.lock)
            } else {
                FileIO.unlink(l.path)
            }
        }
        if durable { try FileIO.fsyncAll(directories: Set(locks.map { parentPath($0.path) }).sorted()) }
    }

    /// Appends a line to a ref's log; returns the open log (the caller syncs and closes it).
    private func appendLog(_ ref: String, _ entry: RefLogEntry) throws(MVCError) -> (Int32, String) {
        let lp = logPath(ref)
        try FileIO.mkdirs(parentPath(lp))
        let fd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io("open log", path: lp, errno: errno) }
        do throws(MVCError) { try FileIO.writeAll(fd, entry.encoded(), path: lp) } catch { close(fd); throw error }
        return (fd, lp)
    }

    /// A ref named `a/b` cannot coexist with a ref `a` (one would be a file, the other a directory).
    func checkNoConflict(_ ref: String) throws(MVCError) {
        var prefix = ""
        let parts = ref.split(separator: "/")
        for part in parts.dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            if let st = try FileIO.lstat(path(prefix)), !st.isDirectory {
                throw MVCError(.nameConflict, "'\(ref)' conflicts with existing '\(prefix)'",
                               hint: "an artifact name cannot also be a namespace of another; pick another name")
            }
        }
        if let st = try FileIO.lstat(path(ref)), st.isDirectory {
            throw MVCError(.nameConflict, "'\(ref)' conflicts with existing refs below it",
                           hint: "an artifact name cannot also be a namespace of another; pick another name")
        }
    }

    /// The log of a ref, oldest first.
    public func log(_ ref: String) throws(MVCError) -> [RefLogEntry] {
        guard let bytes = try FileIO.readSmallFile(logPath(ref), limit: 1 << 30) else { return [] }
        var out: [RefLogEntry] = []
        for (n, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n").enumerated() {
            guard let e = RefLogEntry.decode(line) else {
                throw MVCError(.corruptObject, "log of '\(ref)' is corrupt at line \(n + 1)", hint: "inspect '\(logPath(ref))'")
            }
            out.append(e)
        }
        return out
    }

    /// Ref names below a prefix such as `refs/artifacts`, sorted, without the prefix.
    public func list(_ prefix: String) throws(MVCError) -> [String] {
        var out: [String] = []
        func walk(_ rel: String) throws(MVCError) {
            let dir = joinPath(path(prefix), rel)
            for name in try FileIO.listDirectory(dir) ?? [] {
                if name.hasSuffix(".lock") { continue }   // a ref being written; artifact names cannot end in .lock
                let child = rel.isEmpty ? name : rel + "/" + name
                guard let st = try FileIO.lstat(joinPath(dir, name)) else { continue }
                if st.isDirectory { try walk(child) } else if st.isRegular { out.append(child) }
            }
        }
        try walk("")
        return out.sorted()
    }
}
