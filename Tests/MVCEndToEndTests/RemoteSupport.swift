// Support for the remote tests (push, fetch, pull, fsck --remote/--repair, gc): JSON mirrors of
// their outputs, seeded pseudo-random files, a look inside a store's object files (loose objects
// and pack indexes, read from the documented format, never through MVCCore), and a local S3 server
// (moto) started on a free loopback port for one test.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - JSON mirrors

/// `mvc push --json`.
struct RemotePushJSON: Decodable {
    var remote: String, objectsSent: Int, bytesSent: UInt64, packsSent: Int
    var refsUpdated: [String], rejected: [String]
}

/// `mvc fetch --json`.
struct RemoteFetchJSON: Decodable {
    var remote: String, objectsReceived: Int, bytesReceived: UInt64
    var refsUpdated: [String], diverged: [String]
}

/// `mvc gc --json`.
struct RemoteGCJSON: Decodable {
    var dryRun: Bool, deleted: [String], bytesFreed: UInt64, keptYoung: Int, reachable: Int
    var packsRewritten: Int, packsDeleted: Int
}

/// `mvc gc --explain REV --json`.
struct RemoteExplainJSON: Decodable { var id: String, verdict: String }

// MARK: - Running mvc with extra environment

extension Sandbox {
    /// `mvc ARGS --json` with `env` added, requiring success, decoded as `T`.
    func remoteJSON<T: Decodable>(_ type: T.Type, _ arguments: [String], env: [String: String] = [:], cwd: String? = nil,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        let r = try mvcOK(arguments + ["--json"], env: env, cwd: cwd, sourceLocation: sourceLocation)
        do { return try JSONDecoder().decode(T.self, from: r.stdoutData) } catch {
            throw E2EError("cannot decode \(T.self) from \(r): \(error)")
        }
    }

    /// `mvc ARGS` with `env` added, expected to fail the documented way (see `mvcFails`).
    @discardableResult
    func remoteFails(_ arguments: [String], mentioning word: String, env: [String: String] = [:], cwd: String? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try mvc(arguments, cwd: cwd, env: env)
        expectCleanError(r, mentioning: word, sourceLocation: sourceLocation)
        return r
    }

    /// The store directory of the work tree.
    var store: String { path(".mvc") }
}

// MARK: - Files

enum RemoteFiles {
    /// splitmix64: a seedable stream of pseudo-random words (nothing in it deduplicates).
    struct Noise {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Writes 1 MiB blocks of seeded pseudo-random bytes at the given block numbers of `path`
    /// (creating or truncating it first when `create`), one 1 MiB buffer at a time.
    static func writeNoise(_ path: String, blocks: [Int], seed: UInt64, create: Bool) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = open(path, create ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_WRONLY | O_CLOEXEC), 0o644)
        guard fd >= 0 else { throw E2EError("cannot open '\(path)': errno \(errno)") }
        defer { close(fd) }
        let words = (1 << 20) / 8
        let buffer = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: words)
        defer { buffer.deallocate() }
        var rng = Noise(state: seed)
        for block in blocks {
            for i in 0..<words { buffer[i] = rng.next() }
            let raw = UnsafeRawBufferPointer(buffer)
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(block) << 20 + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw E2EError("cannot write '\(path)': errno \(errno)")
                }
                done += n
            }
        }
    }

    /// A new file of `mib` MiB of seeded noise.
    static func writeNoise(_ path: String, mib: Int, seed: UInt64) throws {
        try writeNoise(path, blocks: Array(0..<mib), seed: seed, create: true)
    }

    /// `count` bytes of seeded noise.
    static func noise(_ count: Int, seed: UInt64) -> Data {
        var rng = Noise(state: seed)
        var out = Data(capacity: count + 8)
        while out.count < count { withUnsafeBytes(of: rng.next().littleEndian) { out.append(contentsOf: $0) } }
        return out.prefix(count)
    }

    /// Every regular file under `dir` with its content (for small directories: remotes).
    static func snapshot(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return out }
        while let rel = walker.nextObject() as? String {
            var st = stat()
            if lstat(dir + "/" + rel, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                out[rel] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + rel))
            }
        }
        return out
    }

    /// Names in `dir` (not recursive), sorted; empty when it does not exist.
    static func names(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// Sets the modification time of every regular file under `dir` to `seconds` ago.
    static func backdate(_ dir: String, by seconds: Int) throws {
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return }
        let then = time(nil) - seconds
        while let rel = walker.nextObject() as? String {
            let p = dir + "/" + rel
            var st = stat()
            guard lstat(p, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            var times = [timeval(tv_sec: then, tv_usec: 0), timeval(tv_sec: then, tv_usec: 0)]
            guard utimes(p, &times) == 0 else { throw E2EError("utimes '\(p)': errno \(errno)") }
        }
    }

    /// Flips the lowest bit of the byte at `offset` of `path` (even a read-only file).
    static func flipBit(_ path: String, at offset: UInt64) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw E2EError("stat '\(path)': errno \(errno)") }
        chmod(path, 0o644)
        defer { chmod(path, st.st_mode & 0o7777) }
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw E2EError("cannot open '\(path)': errno \(errno)") }
        defer { close(fd) }
        var byte: UInt8 = 0
        guard pread(fd, &byte, 1, off_t(offset)) == 1 else { throw E2EError("cannot read '\(path)' at \(offset)") }
        byte ^= 1
        guard pwrite(fd, &byte, 1, off_t(offset)) == 1 else { throw E2EError("cannot write '\(path)' at \(offset)") }
    }
}

// MARK: - Inside a store (docs/FORMAT.md 5.1, 5.4)

enum RemoteStoreFiles {
    struct PackEntry: Equatable {
        var id: String, kind: UInt8, offset: UInt64, length: UInt64
    }

    /// The entries of a pack index: magic "MVCIDX01", u64 count, 256 x u32 fan-out, then 49-byte
    /// entries (id 32, kind u8, offset u64, length u64), big-endian.
    static func packEntries(_ idxPath: String) throws -> [PackEntry] {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: idxPath)))
        guard b.count >= 1072, Array(b[0..<8]) == Array("MVCIDX01".utf8) else { throw E2EError("'\(idxPath)' is not a pack index") }
        func u64(_ at: Int) -> UInt64 { b[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let n = Int(u64(8))
        guard b.count == 1072 + 49 * n else { throw E2EError("'\(idxPath)' has a bad length for \(n) entries") }
        return (0..<n).map { i in
            let at = 1040 + 49 * i
            return PackEntry(id: b[at..<(at + 32)].map { String(format: "%02x", $0) }.joined(),
                             kind: b[at + 32], offset: u64(at + 33), length: u64(at + 41))
        }
    }

    /// Pack indexes in a directory (`.mvc/objects/pack` or a remote's `packs`), as full paths.
    static func indexes(in dir: String) -> [String] {
        RemoteFiles.names(in: dir).filter { $0.hasPrefix("pack-") && $0.hasSuffix(".idx") }.map { dir + "/" + $0 }
    }

    /// Every object id a store holds: loose files `objects/xx/<62 hex>[.chunks]` and the entries of
    /// every pack index.
    static func objectIDs(store: String) throws -> Set<String> {
        var ids = Set<String>()
        let objects = store + "/objects"
        for dir in RemoteFiles.names(in: objects) where dir.count == 2 && dir.allSatisfy(\.isHexDigit) {
            for name in RemoteFiles.names(in: objects + "/" + dir) {
                let hex = name.hasSuffix(".chunks") ? String(name.dropLast(".chunks".count)) : name
                if hex.count == 62, hex.allSatisfy(\.isHexDigit) { ids.insert(dir + hex) }
            }
        }
        for idx in indexes(in: objects + "/pack") { for e in try packEntries(idx) { ids.insert(e.id) } }
        return ids
    }
}

// MARK: - Processes

enum RemoteProcess {
    /// True when `pid` has exited (a zombie not yet reaped) or is gone.
    static func hasExited(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state == "Z" || state == "X"
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// A port nothing listens on now (the kernel's pick for port 0).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

// MARK: - A local S3 server

/// `moto_server` on 127.0.0.1 and a free port, for one test. It runs under a watchdog shell that
/// kills it if the test process dies; `stop()` (or deinit) kills it with SIGKILL.
final class RemoteMoto {
    static let installCommand = "python3 -m pip install 'moto[server]==5.2.1' (or, where pip refuses the system Python: pipx install 'moto[server]==5.2.1')"

    let port: Int
    let motoPID: pid_t
    let logPath: String
    private let watchdog: StartedProcess
    private var stopped = false

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// What mvc needs to reach this server (passed to each command).
    var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint]
    }

    private init(port: Int, motoPID: pid_t, logPath: String, watchdog: StartedProcess) {
        self.port = port; self.motoPID = motoPID; self.logPath = logPath; self.watchdog = watchdog
    }

    /// The test process's own environment: moto_server and python3 may be pyenv shims, which need
    /// the real HOME.
    private static var hostEnvironment: [String: String] { ProcessInfo.processInfo.environment }

    /// Starts moto_server and waits until it accepts connections. Fails (never skips) with the
    /// install command when moto_server is not on PATH.
    static func start(scratch: String) throws -> RemoteMoto {
        guard (try? Spawn.which("moto_server")) != nil else {
            throw E2EError("moto_server is not on PATH: the S3 end-to-end test needs this local S3 server; install it with: \(installCommand)")
        }
        let script = """
            moto_server -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
            m=$!
            echo $m >"$4.tmp" && mv "$4.tmp" "$4"
            trap 'kill -9 $m 2>/dev/null; wait $m 2>/dev/null; exit 0' TERM INT
            while kill -0 "$3" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.2; done
            kill -9 $m 2>/dev/null
            """
        var lastLog = ""
        for _ in 0..<3 {   // a port picked free can be taken before moto binds it
            let port = RemoteProcess.freePort()
            let log = scratch + "/moto-\(port).log", pidFile = scratch + "/moto-\(port).pid"
            let shell = try Spawn.start("/bin/sh", ["-c", script, "sh", String(port), log, String(getpid()), pidFile],
                                        cwd: scratch, environment: hostEnvironment, scratch: scratch)
            var motoPID: pid_t = 0
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if motoPID == 0, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                   let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    motoPID = pid
                }
                if motoPID != 0 {
                    if RemoteProcess.hasExited(motoPID) { break }
                    if RemoteProcess.accepts(port: port) {
                        return RemoteMoto(port: port, motoPID: motoPID, logPath: log, watchdog: shell)
                    }
                }
                usleep(50_000)
            }
            lastLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if motoPID != 0 { kill(motoPID, SIGKILL) }
            kill(shell.pid, SIGTERM)
            _ = try? shell.wait()
        }
        throw E2EError("moto_server did not start; its output:\n\(lastLog)\nreinstall it with: \(installCommand)")
    }

    /// Creates a bucket (moto checks no signatures by default, so a plain PUT does).
    func createBucket(_ name: String, scratch: String) throws {
        let code = """
            import sys, urllib.request
            r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b"", method="PUT"), timeout=30)
            print(r.status)
            """
        let r = try Spawn.run(try Spawn.which("python3"), ["-c", code, endpoint + "/" + name], cwd: scratch,
                              environment: RemoteMoto.hostEnvironment, scratch: scratch)
        guard r.status == 0, r.stdout.hasPrefix("200") else {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw E2EError("cannot create bucket '\(name)' on moto at \(endpoint): \(r)\nmoto's log:\n\(log.suffix(3000))")
        }
    }

    /// Kills moto (SIGKILL), then its watchdog.
    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(motoPID, SIGKILL)
        kill(watchdog.pid, SIGTERM)
        _ = try? watchdog.wait()
    }

    deinit { stop() }
}
