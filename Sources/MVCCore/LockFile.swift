internal import Yams

/// `mvc.lock` at the work-tree root, committed to git with the code: for each path mvc tracks, the
/// artifact version the code at this git commit uses. `mvc commit` and `mvc checkout` write it;
/// git hooks restore what it names after a branch switch.
///
/// ```yaml
/// # mvc.lock: the artifact versions this code uses. Written by mvc; commit it with your code.
/// version: 1
/// paths:
///   data:
///     artifact: iris
///     version: 2
///     commit: 5d1b...        # the mvc commit
///     kind: tree             # what the path is in that commit: tree or file
///     id: 0f3a...            # its tree or blob id
/// ```
public struct LockFile: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        public var path: String
        public var artifact: String
        public var version: Int
        public var commit: ObjectID
        public var kind: TreeEntry.Kind
        public var id: ObjectID
    }

    public var entries: [Entry] = []
    public static let fileName = "mvc.lock"

    public init(entries: [Entry] = []) { self.entries = entries }

    func encoded() -> [UInt8] {
        var s = "# mvc.lock: the artifact versions this code uses. Written by mvc; commit it with your code.\nversion: 1\n"
        s += entries.isEmpty ? "paths: {}\n" : "paths:\n"
        for e in entries.sorted(by: { utf8Less($0.path, $1.path) }) {
            s += "  \(yamlQuote(e.path)):\n    artifact: \(yamlQuote(e.artifact))\n    version: \(e.version)\n"
            s += "    commit: \(e.commit.hex)\n    kind: \(e.kind.rawValue)\n    id: \(e.id.hex)\n"
        }
        return Array(s.utf8)
    }

    /// A double-quoted YAML scalar when the plain form could be misread.
    private func yamlQuote(_ s: String) -> String {
        let plain = s.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || "-_./".unicodeScalars.contains($0) }
        if plain, let f = s.first, f.isLetter || f == "_" { return s }
        return "\"" + s.unicodeScalars.map { c -> String in
            switch c {
            case "\"": return "\\\""
            case "\\": return "\\\\"
            default: return c.value < 0x20 ? "\\x" + (c.value < 16 ? "0" : "") + String(c.value, radix: 16) : String(c)
            }
        }.joined() + "\""
    }

    package static func parse(_ text: String, path: String) throws(MVCError) -> LockFile {
        func bad(_ why: String, _ mark: Mark? = nil) -> MVCError {
            MVCError(.badConfig, "invalid '\(path)\(mark.map { ":\($0.line):\($0.column)" } ?? "")': \(why)",
                     hint: "restore it from git ('git checkout -- \(path)') or re-create it with 'mvc commit'/'mvc checkout'")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw bad("not valid YAML: \(error)") }
        guard let top = root?.mapping else { throw bad("expected a mapping") }
        guard top["version"]?.scalar?.string == "1" else { throw bad("unknown or missing 'version' (this mvc reads version 1)") }
        var out = LockFile()
        guard let paths = top["paths"]?.mapping else { return out }
        for (k, v) in paths {
            guard let p = k.scalar?.string, let m = v.mapping else { throw bad("malformed entry", k.mark) }
            guard let artifact = m["artifact"]?.scalar?.string, let version = (m["version"]?.scalar?.string).flatMap({ Int($0) }),
                  let commit = (m["commit"]?.scalar?.string).flatMap({ ObjectID(hex: $0) }),
                  let kind = (m["kind"]?.scalar?.string).flatMap({ TreeEntry.Kind(rawValue: $0) }),
                  let id = (m["id"]?.scalar?.string).flatMap({ ObjectID(hex: $0) }) else {
                throw bad("entry '\(p)' lacks artifact, version, commit, kind or id", k.mark)
            }
            do throws(MVCError) { try validateRelativePath(p) } catch { throw bad(error.message, k.mark) }
            out.entries.append(Entry(path: p, artifact: artifact, version: version, commit: commit, kind: kind, id: id))
        }
        return out
    }
}

extension Repository {
    var lockFilePath: String { joinPath(workTree, LockFile.fileName) }

    /// The work tree's `mvc.lock`; empty when there is none.
    public func lockFile() throws(MVCError) -> LockFile {
        guard let bytes = try FileIO.readSmallFile(lockFilePath, limit: 64 << 20) else { return LockFile() }
        return try LockFile.parse(String(decoding: bytes, as: UTF8.self), path: LockFile.fileName)
    }

    /// What `path` is inside a commit's tree (kind and id), nil when absent.
    func entry(at path: String, inTree root: ObjectID) throws(MVCError) -> (TreeEntry.Kind, ObjectID)? {
        var kind = TreeEntry.Kind.tree, id = root
        for part in path.split(separator: "/") {
            guard kind == .tree, let e = try objects.readTree(id).entry(named: String(part)) else { return nil }
            kind = e.kind; id = e.id
        }
        return (kind, id)
    }

    /// Records that the work tree now holds `commit`'s paths: updates `mvc.lock` (replacing entries
    /// for the same paths, or paths inside or around them) and the managed block of `.gitignore`.
    func recordInWorkTree(_ commitID: ObjectID, _ commit: Commit) throws(MVCError) {
        var lock = try lockFile()
        let roots = commit.paths
        lock.entries.removeAll { e in roots.contains { r in e.path == r || e.path.hasPrefix(r + "/") || r.hasPrefix(e.path + "/") } }
        for r in roots {
            guard let (kind, id) = try entry(at: r, inTree: commit.tree) else { continue }
            lock.entries.append(.init(path: r, artifact: commit.artifact, version: commit.version, commit: commitID, kind: kind, id: id))
        }
        try FileIO.writeFileAtomically(lockFilePath, lock.encoded(), sync: false)
        try updateGitignore(lock.entries.map(\.path))
    }

    static let gitignoreBegin = "# >>> mvc: artifact paths; their bytes live in the mvc store (managed by mvc)"
    static let gitignoreEnd = "# <<< mvc"

    /// Rewrites the managed block of `.gitignore` so that artifact bytes never enter git.
    func updateGitignore(_ paths: [String]) throws(MVCError) {
        let path = joinPath(workTree, ".gitignore")
        let old = try FileIO.readSmallFile(path, limit: 16 << 20).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var lines = old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        if let b = lines.firstIndex(of: Repository.gitignoreBegin), let e = lines[b...].firstIndex(of: Repository.gitignoreEnd) {
            lines.removeSubrange(b...e)
        }
        // Git's pattern syntax: anchor at this directory; escape what git would interpret.
        func pattern(_ p: String) -> String {
            var out = "/"
            for c in p { if "*?[\\!# ".contains(c) { out.append("\\") }; out.append(c) }
            return out
        }
        let block = [Repository.gitignoreBegin] + paths.sorted(by: utf8Less).map(pattern) + [Repository.gitignoreEnd]
        let text = (lines + block).joined(separator: "\n") + "\n"
        if text != old { try FileIO.writeFileAtomically(path, Array(text.utf8), sync: false) }
    }
}
