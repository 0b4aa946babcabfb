#if canImport(Glibc)
internal import Glibc
#endif

/// Where a remote keeps its files: keys are `/`-separated relative paths. Two implementations
/// (a directory, S3-compatible object storage) pass one conformance suite.
public protocol RemoteStorage: Sendable {
    /// For messages: the URL the remote was added with.
    var location: String { get }
    /// Keys under a prefix (`packs/`), sorted.
    func list(prefix: String) throws(MVCError) -> [String]
    /// The whole value, nil when absent.
    func read(_ key: String) throws(MVCError) -> [UInt8]?
    /// `length` bytes at `offset` (ranged reads fetch single objects out of packs).
    func read(_ key: String, offset: UInt64, length: UInt64) throws(MVCError) -> [UInt8]
    /// Publishes a local file under `key` atomically: readers see all of it or nothing.
    func upload(_ key: String, from path: String) throws(MVCError)
    func delete(_ key: String) throws(MVCError)
    /// Compare-and-swap of a small value (a ref): `expected` nil means "must not exist", `new`
    /// nil deletes. Fails with `.refMoved` when the value is not `expected`.
    func swap(_ key: String, expected: [UInt8]?, new: [UInt8]?) throws(MVCError)
}

/// A remote that is a directory (`/path` or `file:///path`), e.g. on a shared NFS mount. Writes
/// are temp file + fsync + rename; `swap` holds `<key>.lock` (O_EXCL) while it compares.
public final class DirectoryStorage: RemoteStorage {
    public let location: String
    let root: String

    public init(path: String, location: String) throws(MVCError) {
        self.location = location
        guard let st = try FileIO.lstat(path), st.isDirectory else {
            throw MVCError(.pathNotFound, "remote directory '\(path)' does not exist", hint: "create it (mkdir -p) or check the URL")
        }
        root = FileIO.realpath(path) ?? path
    }

    private func path(_ key: String) throws(MVCError) -> String {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !key.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw MVCError(.unsafePath, "refusing remote key '\(key)'")
        }
        return joinPath(root, key)
    }

    public func list(prefix: String) throws(MVCError) -> [String] {
        var out: [String] = []
        func walk(_ rel: String) throws(MVCError) {
            for name in try FileIO.listDirectory(joinPath(root, rel)) ?? [] where !name.hasPrefix(".tmp-") && !name.hasSuffix(".lock") {
                let child = rel.isEmpty ? name : rel + "/" + name
                guard let st = try FileIO.lstat(joinPath(root, child)) else { continue }
                if st.isDirectory { try walk(child) } else if st.isRegular { out.append(child) }
            }
        }
        var dir = prefix
        while dir.hasSuffix("/") { dir.removeLast() }
        try walk(dir)
        return out.sorted()
    }

    public func read(_ key: String) throws(MVCError) -> [UInt8]? {
        try FileIO.readSmallFile(try path(key), limit: 1 << 30)
    }

    public func read(_ key: String, offset: UInt64, length: UInt64) throws(MVCError) -> [UInt8] {
        let p = try path(key)
        let fd = try FileIO.openRead(p)
        defer { close(fd) }
        let bytes = try withFreshBuffer(count: Int(length)) { (b) throws(MVCError) -> Int in try FileIO.pread(fd, into: b, at: offset, path: p) }
        guard bytes.count == Int(length) else { throw MVCError(.corruptObject, "remote file '\(key)' is shorter than its index says", hint: "run 'mvc fsck --remote'") }
        return bytes
    }

    public func upload(_ key: String, from source: String) throws(MVCError) {
        let dest = try path(key)
        try FileIO.mkdirs(parentPath(dest))
        let tmp = joinPath(parentPath(dest), ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        let inFD = try FileIO.openRead(source)
        defer { close(inFD) }
        let outFD = try FileIO.createExclusive(tmp)
        do throws(MVCError) {
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buf.deallocate() }
            while true {
                let n = try FileIO.read(inFD, into: buf, path: source)
                if n == 0 { break }
                try FileIO.writeAll(outFD, UnsafeRawBufferPointer(rebasing: buf[0..<n]), path: tmp)
            }
            try FileIO.fsync(outFD, path: tmp)
            close(outFD)
            try FileIO.rename(tmp, dest)
            try FileIO.fsyncDirectory(parentPath(dest))
        } catch {
            close(outFD)
            FileIO.unlink(tmp)
            throw error
        }
    }

    public func delete(_ key: String) throws(MVCError) {
        let p = try path(key)
        if unlink(p) != 0 && errno != ENOENT { throw .io("delete", path: p, errno: errno) }
    }

    public func swap(_ key: String, expected: [UInt8]?, new: [UInt8]?) throws(MVCError) {
        let p = try path(key)
        try FileIO.mkdirs(parentPath(p))
        let lock = p + ".lock"
        let fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            if errno == EEXIST {
                throw MVCError(.lockHeld, "remote ref '\(key)' is locked: '\(lock)' exists", hint: "another push is running; if none is, remove the lock file")
            }
            throw .io("create lock", path: lock, errno: errno)
        }
        var published = false
        defer { close(fd); if !published { unlink(lock) } }
        let current = try FileIO.readSmallFile(p, limit: 1 << 20)
        guard current == expected else {
            throw MVCError(.refMoved, "remote ref '\(key)' moved since it was read", hint: "fetch, then push again")
        }
        if let new {
            try FileIO.writeAll(fd, new, path: lock)
            try FileIO.fsync(fd, path: lock)
            try FileIO.rename(lock, p)
            published = true
        } else {
            unlink(p)
        }
        try FileIO.fsyncDirectory(parentPath(p))
    }
}
