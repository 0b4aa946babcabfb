#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import Dispatch
internal import CMVCCrypto

/// Thin, checked wrappers over POSIX file calls. Every failure becomes an `MVCError` naming the
/// path, with a hint for the causes a user can fix (disk full, permissions).
enum FileIO {
    /// The stat fields mvc cares about.
    struct Stat: Equatable, Sendable {
        var mode: UInt32
        var size: UInt64
        var inode: UInt64
        var mtimeNanos: Int64
        var ctimeNanos: Int64

        var isRegular: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFREG) }
        var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
        var isSymlink: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFLNK) }
        var isExecutable: Bool { mode & 0o100 != 0 }
    }

    /// `lstat`, nil when the path does not exist.
    static func lstat(_ path: String) throws(MVCError) -> Stat? {
        var st = Glibc.stat()
        if Glibc.lstat(path, &st) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io("stat", path: path, errno: errno)
        }
        return Stat(st)
    }

    /// `lstat` of `name` in the directory open as `dir` (`fstatat`, no symlink followed); `path`
    /// names it in errors.
    static func lstat(in dir: Int32, _ name: String, path: String) throws(MVCError) -> Stat? {
        var st = Glibc.stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io("stat", path: path, errno: errno)
        }
        return Stat(st)
    }

    static func stat(fd: Int32, path: String) throws(MVCError) -> Stat {
        var st = Glibc.stat()
        if fstat(fd, &st) != 0 { throw .io("stat", path: path, errno: errno) }
        return Stat(st)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func openRead(_ path: String) throws(MVCError) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ELOOP {
                throw MVCError(.unsupportedFileType, "'\(path)' is a symbolic link", hint: "mvc stores regular files and directories; commit the link's target instead")
            }
            throw .io("open", path: path, errno: errno)
        }
        return fd
    }

    /// Creates `name` in the directory open as `dir`, as `createExclusive` does; `path` names it
    /// in errors.
    static func createExclusive(in dir: Int32, _ name: String, mode: mode_t, path: String) throws(MVCError) -> Int32 {
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        if fd < 0 { throw .io("create", path: path, errno: errno) }
        return fd
    }

    /// Creates a new file that must not exist yet (O_EXCL), for temp files and lock files.
    static func createExclusive(_ path: String, mode: mode_t = 0o644) throws(MVCError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        if fd < 0 { throw .io("create", path: path, errno: errno) }
        return fd
    }

    /// Reads up to `buffer.count` bytes, retrying on EINTR; 0 means end of file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(MVCError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw .io("read", path: path, errno: errno)
        }
    }

    /// Fills `buffer` completely unless end of file comes first; returns the bytes read.
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(MVCError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), path: path)
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, path: String) throws(MVCError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("read", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(MVCError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("write", path: path, errno: errno)
            }
            done += n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(MVCError) {
        var failure: MVCError?
        bytes.withUnsafeBytes { buf in
            do throws(MVCError) { try writeAll(fd, buf, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    static func fsync(_ fd: Int32, path: String) throws(MVCError) {
        if Glibc.fsync(fd) != 0 { throw .io("sync", path: path, errno: errno) }
    }

    /// Makes a directory's entries (a rename into it) durable.
    static func fsyncDirectory(_ path: String) throws(MVCError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io("open directory", path: path, errno: errno) }
        defer { close(fd) }
        if Glibc.fsync(fd) != 0 && errno != EINVAL { throw .io("sync directory", path: path, errno: errno) }
    }

    /// fsyncs several open files, or directories given by path, at the same time and returns when
    /// all are durable (the first error, if any, is thrown). ext4 commits concurrent fsyncs in one
    /// journal transaction and one device flush where it can, so a ref transaction's values and
    /// logs, or a batch's loose objects, cost about one flush instead of one each.
    static func fsyncAll(files: [(fd: Int32, path: String)] = [], directories: [String] = []) throws(MVCError) {
        let count = files.count + directories.count
        if count == 0 { return }
        if count == 1 {
            if let f = files.first { try fsync(f.fd, path: f.path) } else { try fsyncDirectory(directories[0]) }
            return
        }
        final class Failures: @unchecked Sendable {   // each index written by one iteration only
            var errors: [MVCError?]
            init(_ n: Int) { errors = Array(repeating: nil, count: n) }
        }
        let failures = Failures(count)
        failures.errors.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: count) { i in
                do throws(MVCError) {
                    if i < files.count { try fsync(files[i].fd, path: files[i].path) } else { try fsyncDirectory(directories[i - files.count]) }
                } catch {
                    slots[i] = error
                }
            }
        }
        if let first = failures.errors.compactMap({ $0 }).first { throw first }
    }

    /// Renames `from` to `to`, both in the directory open as `dir`; `path` names `to` in errors.
    static func rename(_ from: String, _ to: String, in dir: Int32, path: String) throws(MVCError) {
        if renameat(dir, from, dir, to) != 0 { throw .io("rename into", path: path, errno: errno) }
    }

    static func rename(_ from: String, _ to: String) throws(MVCError) {
        if Glibc.rename(from, to) != 0 { throw .io("rename into", path: to, errno: errno) }
    }

    /// Swaps two existing names in the directory open as `dir` atomically (Linux `renameat2` with
    /// `RENAME_EXCHANGE`). False if the system or file system cannot, or `to` is gone: the caller
    /// renames instead. `path` names `to` in errors.
    static func exchange(_ from: String, _ to: String, in dir: Int32, path: String) throws(MVCError) -> Bool {
        #if os(Linux)
        if mvc_renameat2(dir, from, dir, to, UInt32(MVC_RENAME_EXCHANGE)) == 0 { return true }
        switch errno {
        case EINVAL, ENOSYS, ENOENT, EOPNOTSUPP: return false
        default: throw .io("rename into", path: path, errno: errno)
        }
        #else
        return false
        #endif
    }

    static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    static func mkdirs(_ path: String, mode: mode_t = 0o755) throws(MVCError) {
        if mkdir(path, mode) == 0 { return }
        switch errno {
        case EEXIST:
            guard let st = try lstat(path), st.isDirectory else {
                throw MVCError(.io, "cannot create directory '\(path)': a file is in the way", hint: "move the file aside")
            }
            return
        case ENOENT:
            let parent = parentPath(path)
            guard parent != path, !parent.isEmpty else { throw .io("create directory", path: path, errno: ENOENT) }
            try mkdirs(parent, mode: mode)
            if mkdir(path, mode) != 0 && errno != EEXIST { throw .io("create directory", path: path, errno: errno) }
        default:
            throw .io("create directory", path: path, errno: errno)
        }
    }

    /// Entry names of a directory, without `.` and `..`, unsorted; nil if it does not exist.
    static func listDirectory(_ path: String) throws(MVCError) -> [String]? {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io("list", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(validatingCString: $0) ?? "" }
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names
    }

    /// A directory's entries (without `.` and `..`, unsorted), each name as raw bytes with its
    /// `lstat`, made with `fstatat` relative to the open directory: no path is resolved again for
    /// each entry, and no `String` is made. `stat` is nil for an entry that vanished after it was
    /// listed. nil when the directory does not exist or is no longer a directory (a symlink to one
    /// is not followed).
    static func listDirectoryWithStats(_ path: String) throws(MVCError) -> [(name: [UInt8], stat: Stat?)]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR || errno == ELOOP { return nil }
            throw .io("list", path: path, errno: errno)
        }
        guard let dir = fdopendir(fd) else {
            let e = errno
            close(fd)
            throw .io("list", path: path, errno: e)
        }
        defer { closedir(dir) }
        var out: [(name: [UInt8], stat: Stat?)] = []
        var st = Glibc.stat()
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw .io("list", path: path, errno: errno) }
                break
            }
            let failure: (code: Int32, name: [UInt8])? = withUnsafePointer(to: &entry.pointee.d_name) { raw in
                raw.withMemoryRebound(to: CChar.self, capacity: 256) { (name: UnsafePointer<CChar>) -> (code: Int32, name: [UInt8])? in
                    let len = strlen(name)
                    if name[0] == 0x2E && (len == 1 || (len == 2 && name[1] == 0x2E)) { return nil }   // "." and ".."
                    let bytes = name.withMemoryRebound(to: UInt8.self, capacity: len) { Array(UnsafeBufferPointer(start: $0, count: len)) }
                    if fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                        out.append((bytes, Stat(st)))
                    } else if errno == ENOENT {
                        out.append((bytes, nil))
                    } else {
                        return (errno, bytes)
                    }
                    return nil
                }
            }
            if let failure { throw .io("stat", path: joinPath(path, String(decoding: failure.name, as: UTF8.self)), errno: failure.code) }
        }
        return out
    }

    /// Reads a whole small file (refs, config, logs); nil if it does not exist.
    static func readSmallFile(_ path: String, limit: Int = 64 << 20) throws(MVCError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io("open", path: path, errno: errno)
        }
        defer { close(fd) }
        return try readAll(fd, path: path, limit: limit)
    }

    /// Reads the rest of the file open as `fd`, at most `limit` bytes (more is an error).
    static func readAll(_ fd: Int32, path: String, limit: Int) throws(MVCError) -> [UInt8] {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &buf, buf.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("read", path: path, errno: errno)
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > limit { throw MVCError(.io, "file '\(path)' is larger than expected (\(limit) bytes)", hint: "it may be corrupt; move it aside") }
        }
        return out
    }

    /// Writes a small file atomically: temp file, optional fsync, rename.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], sync: Bool) throws(MVCError) {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try createExclusive(tmp)
        do throws(MVCError) {
            try writeAll(fd, bytes, path: tmp)
            if sync { try fsync(fd, path: tmp) }
            close(fd)
            try rename(tmp, path)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
    }

    static func realpath(_ path: String) -> String? {
        guard let p = Glibc.realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(validatingCString: p) ?? path
    }

    static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "." }
        return buf.withUnsafeBufferPointer { String(validatingCString: $0.baseAddress!) } ?? "." 
    }

    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// The process's umask, from `/proc/self/status` (Linux 4.7), without changing it as `umask(2)`
    /// would (another thread could create a file meanwhile); nil when unknown.
    static func umask() -> mode_t? {
        guard let bytes = try? readSmallFile("/proc/self/status", limit: 1 << 16) else { return nil }
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("Umask:".utf8)) {
            let digits = line.dropFirst(6).filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
            return mode_t(String(decoding: digits, as: UTF8.self), radix: 8)
        }
        return nil
    }
}

extension FileIO.Stat {
    init(_ st: stat) {
        mode = UInt32(st.st_mode)
        size = UInt64(st.st_size)
        inode = UInt64(st.st_ino)
        mtimeNanos = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNanos = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }
}

/// `a/b/c` -> `a/b`; `c` -> `.`; `/c` -> `/`.
func parentPath(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

func joinPath(_ a: String, _ b: String) -> String {
    if b.isEmpty { return a }
    if a.isEmpty || a == "." { return b }
    return a.hasSuffix("/") ? a + b : a + "/" + b
}

/// Fills a fresh buffer through `fill` (which returns the bytes it wrote) and copies it out.
/// Exists because `Array.withUnsafeMutableBytes` rethrows and so erases typed errors.
func withFreshBuffer(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(MVCError) -> Int) throws(MVCError) -> [UInt8] {
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
    defer { buf.deallocate() }
    let n = try fill(UnsafeMutableRawBufferPointer(rebasing: buf[0..<count]))
    return Array(buf[0..<n])
}
