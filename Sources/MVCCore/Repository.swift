#if canImport(Glibc)
internal import Glibc
#endif
internal import Foundation

/// The store's settings, from `.mvc/config` (see docs/FORMAT.md, "Config").
public struct StoreConfig: Sendable, Equatable {
    /// The on-disk format this build reads and writes. A store with a newer version is refused.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var chunking: ChunkerParameters
    public var userName: String?
    public var userEmail: String?
    /// `core.fsync`: false skips every fsync (benchmarks and tests on throwaway stores only; a
    /// crash may then lose or tear recent objects and refs). Default true.
    public var fsync: Bool

    public init(formatVersion: Int = StoreConfig.currentFormatVersion, chunking: ChunkerParameters = .standard,
                userName: String? = nil, userEmail: String? = nil, fsync: Bool = true) {
        self.formatVersion = formatVersion; self.chunking = chunking
        self.userName = userName; self.userEmail = userEmail; self.fsync = fsync
    }

    func encoded() -> [UInt8] {
        var s = "# mvc store configuration; see docs/FORMAT.md\n[core]\n\tformatVersion = \(formatVersion)\n"
        s += "[chunking]\n\talgorithm = \(ChunkerParameters.algorithm)\n\tmin = \(chunking.min)\n\tavg = \(chunking.avg)\n\tmax = \(chunking.max)\n"
        if userName != nil || userEmail != nil {
            s += "[user]\n"
            if let userName { s += "\tname = \(userName)\n" }
            if let userEmail { s += "\temail = \(userEmail)\n" }
        }
        return Array(s.utf8)
    }

    /// Parses the INI-style config: `[section]` lines and `key = value` lines; `#` comments.
    /// Unknown sections and keys are kept for newer versions to use and ignored here.
    static func parse(_ bytes: [UInt8], path: String) throws(MVCError) -> StoreConfig {
        var values: [String: String] = [:]
        var section = ""
        for (n, raw) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw MVCError(.badConfig, "bad section header in '\(path)' line \(n + 1): '\(line)'", hint: "fix the line or restore the file")
                }
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw MVCError(.badConfig, "expected 'key = value' in '\(path)' line \(n + 1): '\(line)'", hint: "fix the line or restore the file")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            values["\(section).\(key)"] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        func int(_ key: String) throws(MVCError) -> Int {
            guard let s = values[key] else { throw MVCError(.badConfig, "'\(path)' lacks '\(key)'", hint: "restore the file or re-create the store") }
            guard let v = Int(s) else { throw MVCError(.badConfig, "'\(key)' in '\(path)' is not a number: '\(s)'", hint: "fix the value") }
            return v
        }
        let version = try int("core.formatVersion")
        if version > currentFormatVersion {
            throw MVCError(.unsupportedFormat, "the store at '\(path)' has format version \(version); this mvc understands version \(currentFormatVersion) at most",
                           hint: "upgrade mvc; nothing was read or changed")
        }
        guard version >= 1 else { throw MVCError(.badConfig, "invalid format version \(version) in '\(path)'") }
        if let alg = values["chunking.algorithm"], alg != ChunkerParameters.algorithm {
            throw MVCError(.unsupportedFormat, "the store at '\(path)' chunks with '\(alg)', which this mvc does not know", hint: "upgrade mvc")
        }
        let chunking = ChunkerParameters(min: try int("chunking.min"), avg: try int("chunking.avg"), max: try int("chunking.max"))
        try chunking.validate()
        var fsync = true
        if let v = values["core.fsync"] {
            guard v == "true" || v == "false" else { throw MVCError(.badConfig, "'core.fsync' in '\(path)' must be true or false, not '\(v)'") }
            fsync = v == "true"
        }
        return StoreConfig(formatVersion: version, chunking: chunking, userName: values["user.name"], userEmail: values["user.email"], fsync: fsync)
    }
}

/// An mvc repository: a work tree whose root holds the store in `.mvc/`.
///
/// ```swift
/// let repo = try Repository.discover()           // walks up from the current directory
/// let result = try repo.commit(paths: ["model.safetensors"], name: "iris-mlp", kind: .model,
///                              inputs: [.init(revision: "iris@v1", role: "dataset")])
/// print(result.name, result.version, result.id)
/// ```
public final class Repository: Sendable {
    /// Absolute path of the work tree (the directory holding `.mvc`).
    public let workTree: String
    /// Absolute path of `.mvc`.
    public let storeDirectory: String
    public let config: StoreConfig
    public let objects: ObjectStore
    public let refs: RefStore

    public static let directoryName = ".mvc"

    private init(workTree: String, config: StoreConfig) {
        self.workTree = workTree
        storeDirectory = joinPath(workTree, Repository.directoryName)
        self.config = config
        objects = ObjectStore(directory: joinPath(storeDirectory, "objects"), durable: config.fsync)
        refs = RefStore(storeDirectory: storeDirectory, durable: config.fsync)
    }

    /// Creates a store in `directory` (which must exist).
    @discardableResult
    public static func initialize(at directory: String, chunking: ChunkerParameters = .standard) throws(MVCError) -> Repository {
        guard let root = FileIO.realpath(directory), let st = try FileIO.lstat(root), st.isDirectory else {
            throw MVCError(.pathNotFound, "directory '\(directory)' does not exist", hint: "create it first")
        }
        let store = joinPath(root, directoryName)
        if FileIO.exists(store) {
            throw MVCError(.alreadyARepository, "'\(store)' already exists", hint: "this directory already has an mvc store")
        }
        try chunking.validate()
        let config = StoreConfig(chunking: chunking)
        // Build in a temp directory and rename, so a crash never leaves half a store.
        let tmp = joinPath(root, ".mvc.tmp-\(getpid())")
        for sub in ["objects/pack", "refs/artifacts", "refs/tags", "logs/refs"] { try FileIO.mkdirs(joinPath(tmp, sub)) }
        try FileIO.writeFileAtomically(joinPath(tmp, "config"), config.encoded(), sync: true)
        try FileIO.writeFileAtomically(joinPath(tmp, ".gitignore"), Array("# the mvc store holds artifact bytes; git holds only its mirror\n*\n".utf8), sync: true)
        try FileIO.rename(tmp, store)
        try FileIO.fsyncDirectory(root)
        return Repository(workTree: root, config: config)
    }

    /// Opens the store of the work tree at `directory` exactly.
    public static func open(at directory: String) throws(MVCError) -> Repository {
        guard let root = FileIO.realpath(directory) else {
            throw MVCError(.pathNotFound, "directory '\(directory)' does not exist")
        }
        let configPath = joinPath(joinPath(root, directoryName), "config")
        guard let bytes = try FileIO.readSmallFile(configPath, limit: 1 << 20) else {
            throw MVCError(.notARepository, "not an mvc repository: '\(root)'", hint: "run 'mvc init' in the work tree's root")
        }
        return Repository(workTree: root, config: try StoreConfig.parse(bytes, path: configPath))
    }

    /// Finds the store in `directory` (default: the current directory) or the nearest parent.
    public static func discover(from directory: String? = nil) throws(MVCError) -> Repository {
        let start = directory ?? FileIO.currentDirectory()
        guard var dir = FileIO.realpath(start) else { throw MVCError(.pathNotFound, "directory '\(start)' does not exist") }
        while true {
            if let st = try FileIO.lstat(joinPath(joinPath(dir, directoryName), "config")), st.isRegular {
                return try open(at: dir)
            }
            if dir == "/" { break }
            dir = parentPath(dir)
        }
        throw MVCError(.notARepository, "not an mvc repository (or any parent up to /): '\(start)'",
                       hint: "run 'mvc init' in your project's root first")
    }

    /// A new batch for the objects of one operation.
    public func newBatch() -> ObjectBatch { ObjectBatch(store: objects) }

    static func artifactRef(_ name: String) -> String { "refs/artifacts/\(name)" }
    static func tagRef(_ name: String, _ version: String) -> String { "refs/tags/\(name)/\(version)" }

    /// Names of every artifact, sorted.
    public func artifactNames() throws(MVCError) -> [String] { try refs.list("refs/artifacts") }

    /// The latest commit of an artifact, nil when it has none.
    public func head(of name: String) throws(MVCError) -> ObjectID? { try refs.read(Repository.artifactRef(name)) }

    /// Who is acting: `MVC_AUTHOR_NAME`/`MVC_AUTHOR_EMAIL`, then `[user]` in `.mvc/config`, then
    /// git's `user.name`/`user.email`, then the login name. Time from `MVC_AUTHOR_DATE`
    /// (`<seconds> [+hhmm]`) when set, else now.
    public func identity() -> Signature {
        identity(names: identityNames())
    }

    /// The name and email of `identity()`, which may ask git (two processes).
    func identityNames() -> (name: String, email: String) {
        let env = ProcessInfo.processInfo.environment
        let name = env["MVC_AUTHOR_NAME"] ?? config.userName ?? Git.config("user.name", in: workTree) ?? env["USER"] ?? "unknown"
        let email = env["MVC_AUTHOR_EMAIL"] ?? config.userEmail ?? Git.config("user.email", in: workTree)
            ?? "\(env["USER"] ?? "unknown")@\(ProcessInfo.processInfo.hostName)"
        return (name, email)
    }

    /// `identity()` with names already looked up; the time is taken now.
    func identity(names: (name: String, email: String)) -> Signature {
        let env = ProcessInfo.processInfo.environment
        let (name, email) = names
        var time = Int64(Date().timeIntervalSince1970)
        var tz = TimeZone.current.secondsFromGMT() / 60
        if let fixed = env["MVC_AUTHOR_DATE"] {
            let parts = fixed.split(separator: " ")
            if let t = parts.first.flatMap({ Int64($0) }) {
                time = t
                tz = parts.count > 1 ? Signature.parseTZ(parts[1]) ?? 0 : 0
            }
        }
        let clean = { (s: String) in String(s.filter { $0 != "<" && $0 != ">" && !$0.isNewline }) }
        return Signature(name: clean(name), email: clean(email), time: time, tzOffsetMinutes: tz)
    }
}

/// The few git facts mvc reads through the `git` command (no libgit2 in the core).
enum Git {
    static func run(_ args: [String], in dir: String) -> (status: Int32, out: String)? {
        guard let r = Subprocess.run(["git", "-C", dir] + args, environment: ["GIT_OPTIONAL_LOCKS": "0"]) else { return nil }
        return (r.status, r.text)
    }

    static func config(_ key: String, in dir: String) -> String? {
        guard let r = run(["config", "--get", key], in: dir), r.status == 0 else { return nil }
        let v = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        return v.isEmpty ? nil : v
    }

    /// The HEAD commit of the git work tree containing `dir`, with a dirty flag (tracked files
    /// changed); nil outside git or before the first git commit.
    static func codeRef(in dir: String) -> CodeRef? {
        guard let head = run(["rev-parse", "--verify", "-q", "HEAD"], in: dir), head.status == 0 else { return nil }
        let commit = head.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard commit.count == 40 || commit.count == 64, isHexString(commit) else { return nil }
        let status = run(["status", "--porcelain", "--untracked-files=no"], in: dir)
        let dirty = status.map { $0.status != 0 || !$0.out.isEmpty } ?? true
        return CodeRef(commit: commit, dirty: dirty)
    }
}
