internal import Dispatch

/// An input edge as the user gives it: a revision and an optional role.
public struct InputSpec: Sendable, Equatable {
    public var revision: String
    /// nil: the input's kind (`dataset`, `config`), or `base-model` for a model.
    public var role: String?
    public init(revision: String, role: String? = nil) { self.revision = revision; self.role = role }

    /// Parses `NAME@REV[:ROLE]`.
    public static func parse(_ s: String) throws(MVCError) -> InputSpec {
        if let colon = s.lastIndex(of: ":") {
            let role = String(s[s.index(after: colon)...])
            try Names.validateKey(role, what: "input role")
            return InputSpec(revision: String(s[..<colon]), role: role)
        }
        return InputSpec(revision: s)
    }
}

/// A value computed on another thread while a commit reads its files: the code provenance and
/// the author's names, which ask git (four processes between them).
///
/// `@unchecked Sendable`: `result` is written once on the global queue before `done` is
/// signalled, and read only after waiting for it.
private final class Background<Value>: @unchecked Sendable {
    private var result: Value?
    private let done = DispatchSemaphore(value: 0)
    private var waited = false

    init(_ compute: @escaping @Sendable () -> Value) {
        DispatchQueue.global().async { [self] in
            result = compute()
            done.signal()
        }
    }

    var value: Value {
        if !waited { done.wait(); waited = true }
        return result!
    }
}

/// Everything `mvc commit` takes.
public struct CommitRequest: Sendable {
    public var paths: [String]
    public var name: String
    public var message: String
    /// nil: the artifact's current kind, or `other` for a new artifact.
    public var kind: ArtifactKind?
    public var inputs: [InputSpec]
    public var params: [String: String]
    public var metrics: [String: Double]
    public var semver: String?
    /// Directory that relative `paths` are relative to; nil: the current directory.
    public var baseDirectory: String?

    public init(paths: [String], name: String, message: String = "", kind: ArtifactKind? = nil,
                inputs: [InputSpec] = [], params: [String: String] = [:], metrics: [String: Double] = [:],
                semver: String? = nil, baseDirectory: String? = nil) {
        self.paths = paths; self.name = name; self.message = message; self.kind = kind; self.inputs = inputs
        self.params = params; self.metrics = metrics; self.semver = semver; self.baseDirectory = baseDirectory
    }
}

public struct CommitResult: Sendable, Codable, Equatable {
    public var name: String
    public var version: Int
    public var id: ObjectID
    public var tree: ObjectID
    public var semver: String?
    public var files: Int
    public var bytes: UInt64
    /// Bytes of new objects added to the store by this commit (after dedup).
    public var newBytes: UInt64
    /// True when nothing differed from the latest version, so no commit was made.
    public var unchanged: Bool
    /// Problems after the commit point (e.g. `mvc.lock` not writable): the commit stands.
    public var warnings: [String] = []
}

extension Repository {
    /// Commits `paths` as the next version of an artifact: stores new chunks in one pack, syncs it,
    /// then moves `refs/artifacts/NAME` by compare-and-swap (the commit point).
    public func commit(_ request: CommitRequest, progress: any ProgressSink = SilentProgress()) throws(MVCError) -> CommitResult {
        try Names.validateArtifact(request.name)
        if let v = request.semver { try Names.validateSemver(v) }
        guard !request.paths.isEmpty else { throw MVCError(.invalidArgument, "nothing to commit: no paths given") }
        for (k, v) in request.params { try Names.validateKey(k, what: "parameter"); try Names.validateValue(v, what: "parameter value") }
        for k in request.metrics.keys { try Names.validateKey(k, what: "metric") }

        let ref = Repository.artifactRef(request.name)
        let parentID = try refs.read(ref)
        let parent = try parentID.map { (id) throws(MVCError) in try objects.readCommit(id) }
        if let v = request.semver, try refs.read(Repository.tagRef(request.name, v)) != nil {
            throw MVCError(.invalidArgument, "'\(request.name)' already has a version tagged \(v)", hint: "semantic versions are given once; pick the next one")
        }
        if parentID == nil { try refs.checkNoConflict(ref) }   // before any work, not after hashing
        let kind = request.kind ?? parent?.kind ?? .other
        if let parent, parent.kind != kind {
            throw MVCError(.invalidArgument, "artifact '\(request.name)' is a \(parent.kind.rawValue), not a \(kind.rawValue)",
                           hint: "use --kind \(parent.kind.rawValue), or another name for a new artifact")
        }

        // Inputs resolve before any work, so a typo costs nothing.
        var inputs: [InputEdge] = []
        for spec in request.inputs {
            let (id, c) = try resolveCommit(spec.revision)
            inputs.append(InputEdge(commit: id, role: spec.role ?? (c.kind == .model ? "base-model" : c.kind.rawValue)))
        }

        // Paths: relative to the work tree, without ones nested in another given path.
        var roots = Set<String>()
        for p in request.paths { roots.insert(try relativePath(p, base: request.baseDirectory)) }
        let sortedRoots = roots.sorted(by: utf8Less).filter { r in !roots.contains { r.hasPrefix($0 + "/") } }
        var found: [FoundFile] = []
        for r in sortedRoots { found.append(contentsOf: try walk(r)) }
        if let j = try interruptedRewrite(), found.contains(where: { $0.relativePath.byteKey == j.path.byteKey }) {
            throw RewriteJournal.interrupted(j.path)
        }
        let totalBytes = found.reduce(UInt64(0)) { $0 + $1.stat.size }

        // The code provenance runs git twice (`rev-parse`, `status`, which can take a while in a
        // big repository), the author's names up to twice more: ask while the files are read.
        let workTree = self.workTree
        let code = Background { Git.codeRef(in: workTree) }
        let names = Background { [self] in identityNames() }
        let batch = newBatch()
        let writer = BlobWriter(chunker: Chunker(config.chunking), batch: batch)
        progress.begin("committing \(request.name)", totalBytes: totalBytes, totalFiles: found.count)
        let cache = statCache()
        var entries: [FileEntry?] = Array(repeating: nil, count: found.count)
        var toRead: [Int] = []
        for (i, f) in found.enumerated() {
            if let id = cache.lookup(f.relativePath, f.stat), try batch.contains(id) {
                // Unchanged since mvc last read it, and its bytes are stored: nothing to read.
                entries[i] = FileEntry(path: f.relativePath, kind: f.stat.isExecutable ? .exec : .file, size: f.stat.size, id: id)
                progress.advance(bytes: f.stat.size, path: f.relativePath)
            } else {
                toRead.append(i)
            }
        }
        if toRead.count == 1, let i = toRead.first {
            // One file (a model): its own pipeline, with progress as the bytes go by.
            let f = found[i]
            let stored = try writer.store(path: joinPath(workTree, f.relativePath)) { progress.advance(bytes: $0, path: f.relativePath) }
            cache.record(f.relativePath, stored.stat, readAt: stored.readAt, stored.id)
            entries[i] = FileEntry(path: f.relativePath, kind: f.stat.isExecutable ? .exec : .file, size: stored.size, id: stored.id)
        } else if !toRead.isEmpty {
            let paths = toRead.map { (path: joinPath(workTree, found[$0].relativePath), size: found[$0].stat.size) }
            let stored = try writer.storeMany(paths) { k, size in progress.advance(bytes: size, path: found[toRead[k]].relativePath) }
            for (k, s) in stored.enumerated() {
                let f = found[toRead[k]]
                cache.record(f.relativePath, s.stat, readAt: s.readAt, s.id)
                entries[toRead[k]] = FileEntry(path: f.relativePath, kind: s.stat.isExecutable ? .exec : .file, size: s.size, id: s.id)
            }
        }
        progress.end()
        let files = entries.map { $0! }
        defer { cache.save() }
        let tree = try buildTree(files, batch: batch)

        // Re-committing the same files with nothing new to say is a no-op, not a new version.
        if let parent, let parentID, parent.tree == tree, parent.paths == sortedRoots, request.message.isEmpty,
           request.semver == nil, request.inputs.isEmpty, request.params.isEmpty, request.metrics.isEmpty {
            var result = CommitResult(name: request.name, version: parent.version, id: parentID, tree: tree, semver: nil,
                                      files: files.count, bytes: totalBytes, newBytes: 0, unchanged: true)
            do throws(MVCError) { try recordInWorkTree(parentID, parent) } catch { result.warnings.append(error.message) }
            return result
        }

        let author = identity(names: names.value)
        let commit = Commit(tree: tree, parents: parentID.map { [$0] } ?? [], artifact: request.name, kind: kind,
                            version: (parent?.version ?? 0) + 1, paths: sortedRoots, inputs: inputs,
                            code: code.value, params: request.params, metrics: request.metrics,
                            environment: Repository.environment(), author: author, message: request.message)
        try commit.validate()
        let id = try batch.put(commit)
        let newBytes = batch.newBytes
        try batch.commit()   // durable before the ref makes it reachable

        let summary = "commit: \(request.name)@v\(commit.version)\(request.message.isEmpty ? "" : " " + (request.message.split(separator: "\n").first.map(String.init) ?? ""))"
        try refs.update(ref, from: parentID, to: id, actor: author, message: summary)
        if let v = request.semver {
            try refs.update(Repository.tagRef(request.name, v), from: nil, to: id, actor: author, message: "tag: \(request.name)@\(v)")
        }
        var result = CommitResult(name: request.name, version: commit.version, id: id, tree: tree, semver: request.semver,
                                  files: files.count, bytes: totalBytes, newBytes: newBytes, unchanged: false)
        do throws(MVCError) { try recordInWorkTree(id, commit) } catch { result.warnings.append("\(LockFile.fileName) not updated: \(error.message)") }
        return result
    }

    /// The environment recorded in every commit: OS, architecture, mvc version.
    static func environment() -> [String: String] {
        #if os(Linux)
        let os = "linux"
        #elseif os(macOS)
        let os = "macos"
        #else
        let os = "unknown"
        #endif
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "arm64"
        #else
        let arch = "unknown"
        #endif
        return ["os": os, "arch": arch, "mvc": MVCVersion.string]
    }
}

public enum MVCVersion {
    public static let string = "0.1.0"
}
