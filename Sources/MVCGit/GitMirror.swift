public import MVCCore
internal import CLibGit2
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// What a mirror run did.
public struct MirrorReport: Sendable, Codable, Equatable {
    /// Git commits created (objects already mirrored are not counted).
    public var commitsWritten: Int
    /// Git refs moved, by name.
    public var refsUpdated: [String]
    /// Refs that could not be moved (someone else moved the git ref); a later sync retries.
    public var conflicts: [String]
    /// Git refs ahead of the store (fetched from elsewhere): never moved back; `mvc mirror
    /// import` brings the store up to them.
    public var ahead: [String] = []
}

/// What `mvc mirror import` did.
public struct ImportReport: Sendable, Codable, Equatable {
    public var objectsImported: Int
    public var refsSet: [String]
    /// mvc refs that already held another value and were left alone.
    public var conflicts: [String]
}

/// Mirrors the mvc store into the enclosing git repository under `refs/mvc/`, and back.
///
/// Every mvc commit, stage move and annotation becomes one git commit whose tree holds
/// `files/...` (a Git LFS pointer per artifact file; mode 100755 for executables) and
/// `mvc/<sha256>` (the canonical bytes of the mvc objects it carries). Its message ends with
/// `Mvc-Object: <kind> <sha256>`. Git commits are made deterministically from mvc data (author and
/// time from the mvc object), so mirroring the same store anywhere gives the same git ids. The
/// translation table `.mvc/git-map` (`<sha256> <sha1>` per line) caches the mapping; it can be
/// rebuilt from either side. See docs/FORMAT.md, "Git mirror".
public final class GitMirror {
    let repo: Repository
    let git: GitRepository
    private var map: [ObjectID: GitOID] = [:]
    private var newMapLines: [String] = []
    private var filesTrees: [ObjectID: GitOID] = [:]   // mvc tree id -> git `files` tree
    private var written = 0

    var mapPath: String { repo.storeDirectory + "/git-map" }

    /// The mirror of a store inside a git work tree; nil when the work tree is not in git. Throws
    /// when it may be but git cannot be read (libgit2 missing).
    public static func open(_ repo: Repository) throws(MVCError) -> GitMirror? {
        guard let git = try GitRepository.discover(repo.workTree), git.workTree != nil else { return nil }
        return GitMirror(repo: repo, git: git)
    }

    /// The root of the git work tree containing `path`, nil outside git.
    public static func gitWorkTree(containing path: String) throws(MVCError) -> String? {
        try GitRepository.discover(path)?.workTree
    }

    init(repo: Repository, git: GitRepository) {
        self.repo = repo
        self.git = git
        loadMap()
    }

    /// Absolute path of the git work tree's root.
    public var gitWorkTree: String { git.workTree ?? "" }
    public var gitDirectory: String { git.gitDirectory }

    private func loadMap() {
        guard let text = try? String(contentsOfFile: mapPath, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 2, let id = ObjectID(hex: f[0]), let g = GitOID(hex: String(f[1])) else { continue }
            map[id] = g
        }
    }

    private func remember(_ id: ObjectID, _ g: GitOID) {
        if map[id] != g { map[id] = g; newMapLines.append("\(id.hex) \(g.hex)\n") }
    }

    /// Appends new translation lines (a cache: losing it costs a re-mirror, never data).
    private func saveMap() {
        guard !newMapLines.isEmpty else { return }
        let fd = Glibc.open(mapPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        let bytes = Array(newMapLines.joined().utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        newMapLines = []
    }

    /// The git commit for an mvc object already mirrored, if its git object still exists.
    private func mapped(_ id: ObjectID) -> GitOID? {
        guard let g = map[id], git.objectExists(g) else { return nil }
        return g
    }

    static func pointer(_ id: ObjectID, size: UInt64) -> [UInt8] {
        Array("version https://git-lfs.github.com/spec/v1\noid sha256:\(id.hex)\nsize \(size)\n".utf8)
    }

    /// The `files` tree of an mvc tree: a Git LFS pointer per file, same names and nesting.
    /// Every mvc tree object below (and including) `treeID`, for the commit's `mvc/` directory:
    /// always all of them, so a git commit's bytes never depend on what this run had cached.
    private func collectTrees(_ treeID: ObjectID, into objects: inout [ObjectID: [UInt8]]) throws(MVCError) {
        objects[treeID] = try repo.objects.read(treeID)
        for e in try repo.objects.readTree(treeID).entries where e.kind == .tree { try collectTrees(e.id, into: &objects) }
    }

    private func filesTree(_ treeID: ObjectID, objects: inout [ObjectID: [UInt8]]) throws(MVCError) -> GitOID {
        if let g = filesTrees[treeID] { try collectTrees(treeID, into: &objects); return g }
        let bytes = try repo.objects.read(treeID)
        objects[treeID] = bytes
        var entries: [(name: String, oid: GitOID, mode: GitRepository.Mode)] = []
        for e in try repo.objects.readTree(treeID).entries {
            switch e.kind {
            case .tree: entries.append((e.name, try filesTree(e.id, objects: &objects), .tree))
            case .file: entries.append((e.name, try git.createBlob(GitMirror.pointer(e.id, size: e.size)), .file))
            case .exec: entries.append((e.name, try git.createBlob(GitMirror.pointer(e.id, size: e.size)), .executable))
            }
        }
        let g = try git.createTree(entries)
        filesTrees[treeID] = g
        return g
    }

    private func objectsTree(_ objects: [ObjectID: [UInt8]]) throws(MVCError) -> GitOID {
        var entries: [(name: String, oid: GitOID, mode: GitRepository.Mode)] = []
        for (id, bytes) in objects { entries.append((id.hex, try git.createBlob(bytes), .file)) }
        return try git.createTree(entries)
    }

    private func person(_ s: Signature) -> GitRepository.Person {
        .init(name: s.name, email: s.email.isEmpty ? "unknown" : s.email, time: s.time, offsetMinutes: s.tzOffsetMinutes)
    }

    private func subject(_ message: String) -> (String, String) {
        let lines = message.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let first = lines.first.map(String.init) ?? ""
        let rest = lines.count > 1 ? String(lines[1]).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return (first, rest)
    }

    private func message(_ title: String, body: String, kind: String, id: ObjectID) -> String {
        "\(title)\n\n\(body.isEmpty ? "" : body + "\n\n")Mvc-Object: \(kind) \(id.hex)\n"
    }

    /// The git commit of an mvc commit, creating it (and its parents') when needed.
    func gitCommit(forCommit id: ObjectID) throws(MVCError) -> GitOID {
        if let g = mapped(id) { return g }
        // Walk back to the newest mirrored ancestor, then create forwards (no deep recursion).
        var chain: [(ObjectID, Commit)] = []
        var cursor: ObjectID? = id
        while let c = cursor, mapped(c) == nil {
            let commit = try repo.objects.readCommit(c)
            chain.append((c, commit))
            cursor = commit.parents.first
        }
        for (cid, c) in chain.reversed() {
            var objects: [ObjectID: [UInt8]] = [cid: try repo.objects.read(cid)]
            let files = try filesTree(c.tree, objects: &objects)
            let tree = try git.createTree([("files", files, .tree), ("mvc", try objectsTree(objects), .tree)])
            var parents: [GitOID] = []
            for p in c.parents { parents.append(try gitCommit(forCommit: p)) }
            let (first, rest) = subject(c.message)
            let g = try git.createCommit(tree: tree, parents: parents, author: person(c.author),
                                         message: message("\(c.artifact)@v\(c.version)\(first.isEmpty ? "" : ": " + first)", body: rest, kind: "commit", id: cid))
            remember(cid, g); written += 1
        }
        return mapped(id)!
    }

    /// The git commit of a stage move: the version's files and the move object; parent: the move before.
    func gitCommit(forMove id: ObjectID) throws(MVCError) -> GitOID {
        if let g = mapped(id) { return g }
        var chain: [(ObjectID, StageMove)] = []
        var cursor: ObjectID? = id
        while let m = cursor, mapped(m) == nil {
            let move = try repo.objects.readMove(m)
            chain.append((m, move))
            cursor = move.previous
        }
        for (mid, m) in chain.reversed() {
            var entries: [(name: String, oid: GitOID, mode: GitRepository.Mode)] = []
            var objects: [ObjectID: [UInt8]] = [mid: try repo.objects.read(mid)]
            var label = "(empty)"
            if let c = m.commit {
                _ = try gitCommit(forCommit: c)   // the version itself is mirrored first
                let commit = try repo.objects.readCommit(c)
                label = "v\(commit.version)"
                var unused: [ObjectID: [UInt8]] = [:]
                entries.append(("files", try filesTree(commit.tree, objects: &unused), .tree))
            }
            entries.append(("mvc", try objectsTree(objects), .tree))
            objects = [:]
            let tree = try git.createTree(entries)
            let parents = try m.previous.map { (p) throws(MVCError) in [try gitCommit(forMove: p)] } ?? []
            let weight = m.weight.map { " at \($0)%" } ?? ""
            let g = try git.createCommit(tree: tree, parents: parents, author: person(m.actor),
                                         message: message("\(m.action.rawValue) \(m.artifact)@\(m.stage): \(label)\(weight)",
                                                          body: m.reason.trimmingCharacters(in: .whitespacesAndNewlines), kind: "move", id: mid))
            remember(mid, g); written += 1
        }
        return mapped(id)!
    }

    /// The git commit of an annotation; parent: the annotation before it.
    func gitCommit(forAnnotation id: ObjectID) throws(MVCError) -> GitOID {
        if let g = mapped(id) { return g }
        let a = try repo.objects.readAnnotation(id)
        let parents = try a.previous.map { (p) throws(MVCError) in [try gitCommit(forAnnotation: p)] } ?? []
        let tree = try git.createTree([("mvc", try objectsTree([id: try repo.objects.read(id)]), .tree)])
        let metrics = a.metrics.keys.sorted().map { "\($0)=\(Commit.formatNumber(a.metrics[$0]!))" }.joined(separator: " ")
        let label = repo.label(a.target)
        let title = a.retired ? "retire \(label)" : "metric \(label)\(metrics.isEmpty ? "" : ": " + metrics)"
        let g = try git.createCommit(tree: tree, parents: parents, author: person(a.actor),
                                     message: message(title, body: a.message.trimmingCharacters(in: .whitespacesAndNewlines), kind: "annotation", id: id))
        remember(id, g); written += 1
        return g
    }

    /// Every mvc ref with the git ref it mirrors to and the mvc value.
    func mvcRefs() throws(MVCError) -> [(mvcRef: String, value: ObjectID, kind: String)] {
        var out: [(String, ObjectID, String)] = []
        for name in try repo.artifactNames() {
            if let h = try repo.refs.read("refs/artifacts/\(name)") { out.append(("refs/artifacts/\(name)", h, "commit")) }
            for tag in try repo.refs.list("refs/tags/\(name)") where !tag.contains("/") {
                if let t = try repo.refs.read("refs/tags/\(name)/\(tag)") { out.append(("refs/tags/\(name)/\(tag)", t, "commit")) }
            }
            for stage in try repo.refs.list("refs/stages/\(name)") where !stage.contains("/") {
                if let m = try repo.refs.read("refs/stages/\(name)/\(stage)") { out.append(("refs/stages/\(name)/\(stage)", m, "move")) }
            }
            for hex in try repo.refs.list("refs/annotations/\(name)") where !hex.contains("/") {
                if let a = try repo.refs.read("refs/annotations/\(name)/\(hex)") { out.append(("refs/annotations/\(name)/\(hex)", a, "annotation")) }
            }
        }
        return out
    }

    static func gitRefName(_ mvcRef: String) -> String { "refs/mvc/" + mvcRef.dropFirst("refs/".count) }

    /// Does git commit `descendant` have `ancestor` on its first-parent chain?
    func gitDescends(_ descendant: GitOID, from ancestor: GitOID) throws(MVCError) -> Bool {
        var cursor: GitOID? = descendant
        var steps = 0
        while let c = cursor, steps < 1_000_000 {
            if c == ancestor { return true }
            guard git.objectExists(c) else { return false }
            cursor = try git.readCommit(c).parents.first
            steps += 1
        }
        return false
    }

    /// Brings every `refs/mvc/...` ref up to date with the store. Idempotent; repairs a mirror that
    /// fell behind (commits made while git was absent, a failed update). Each ref moves by
    /// compare-and-swap against the value read just before.
    public func sync(force: Bool = false) throws(MVCError) -> MirrorReport {
        written = 0
        defer { saveMap() }
        var updated: [String] = [], conflicts: [String] = [], ahead: [String] = []
        for (mvcRef, value, kind) in try mvcRefs() {
            let target: GitOID
            switch kind {
            case "move": target = try gitCommit(forMove: value)
            case "annotation": target = try gitCommit(forAnnotation: value)
            default: target = try gitCommit(forCommit: value)
            }
            let gitRef = GitMirror.gitRefName(mvcRef)
            let current = try git.readRef(gitRef)
            if current == target { continue }
            // Only forward: a git ref that already descends from the target came from elsewhere
            // (a fetch); one that neither descends nor precedes it has diverged.
            if let current {
                if try gitDescends(current, from: target) { ahead.append(gitRef); continue }
                if !force, try !gitDescends(target, from: current) { conflicts.append(gitRef); continue }
            }
            // The reflog entry says who moved it and why: the actor recorded in the object itself
            // (no lookup of the current user, which would spawn git for every ref).
            let actor: Signature
            var why = "mvc: \(mvcRef)"
            if kind == "move" {
                let m = try repo.objects.readMove(value)
                actor = m.actor
                let label = try m.commit.map { (c) throws(MVCError) in "v\(try repo.objects.readCommit(c).version)" } ?? "(empty)"
                why = "\(m.action.rawValue): \(m.artifact)@\(m.stage) -> \(label)\(m.weight.map { " at \($0)%" } ?? "")"
                let reason = m.reason.trimmingCharacters(in: .whitespacesAndNewlines)
                if !reason.isEmpty { why += ": " + reason.replacingOccurrences(of: "\n", with: " ") }
            } else if kind == "commit" {
                let c = try repo.objects.readCommit(value)
                actor = c.author
                why = "commit: \(c.artifact)@v\(c.version)"
            } else {
                actor = try repo.objects.readAnnotation(value).actor
            }
            try git.setIdentity(name: actor.name, email: actor.email)
            do throws(MVCError) {
                try git.updateRef(gitRef, to: target, expected: current, message: why)
                updated.append(gitRef)
            } catch where error.code == .refMoved {
                conflicts.append(gitRef)
            }
        }
        return MirrorReport(commitsWritten: written, refsUpdated: updated, conflicts: conflicts, ahead: ahead)
    }

    /// Recreates the store's objects and refs from `refs/mvc/*` (after `git clone` and
    /// `git fetch origin 'refs/mvc/*:refs/mvc/*'`). Blob bytes are not in git: they come later
    /// from a remote. Every imported object is verified against its SHA-256 name.
    public func importAll() throws(MVCError) -> ImportReport {
        let gitRefs = try git.refNames(glob: "refs/mvc/*")
        let batch = repo.newBatch()
        var imported = 0
        var seen = Set<GitOID>()
        var primary: [GitOID: ObjectID] = [:]
        for name in gitRefs {
            guard let tip = try git.readRef(name) else { continue }
            var stack = [tip]
            while let g = stack.popLast() {
                guard seen.insert(g).inserted else { continue }
                let info = try git.readCommit(g)
                stack.append(contentsOf: info.parents)
                guard let trailer = info.message.split(separator: "\n").last(where: { $0.hasPrefix("Mvc-Object: ") }),
                      let hex = trailer.split(separator: " ").last, let id = ObjectID(hex: hex) else {
                    throw MVCError(.gitMirror, "git commit \(g.hex) under '\(name)' has no 'Mvc-Object:' trailer",
                                   hint: "refs/mvc/ holds only what mvc mirrors; remove foreign refs there")
                }
                primary[g] = id
                remember(id, g)
                guard let objectsEntry = try git.readTree(info.tree).first(where: { $0.name == "mvc" }) else {
                    throw MVCError(.gitMirror, "git commit \(g.hex) has no 'mvc' tree")
                }
                for e in try git.readTree(objectsEntry.oid) {
                    guard let oid = ObjectID(hex: e.name) else { continue }
                    let bytes = try git.readBlob(e.oid)
                    guard ObjectID.hash(bytes) == oid else {
                        throw MVCError(.corruptObject, "mirrored object \(e.name) in git commit \(g.hex) does not match its name", hint: "the git mirror is damaged; fetch it again")
                    }
                    if try !repo.objects.contains(oid) {
                        _ = try batch.putRaw(bytes)
                        imported += 1
                    }
                }
            }
        }
        try batch.commit()   // objects durable before any ref names them
        var set: [String] = [], conflicts: [String] = []
        let actor = repo.identity()
        // Check every ref first, so a bad one stops the import before any ref moves.
        for name in gitRefs {
            guard let tip = try git.readRef(name), let id = primary[tip] else { continue }
            guard try repo.objects.contains(id) else {
                throw MVCError(.gitMirror, "'\(name)' names mvc object \(id.short), which its git commit does not carry",
                               hint: "the mirror is damaged or was not written by mvc; nothing was imported into refs; fetch it again")
            }
        }
        for name in gitRefs {
            guard let tip = try git.readRef(name), let id = primary[tip] else { continue }
            let mvcRef = "refs/" + name.dropFirst("refs/mvc/".count)
            // A ref may only name what the store now holds (its trailer could name anything).
            guard try repo.objects.contains(id) else {
                throw MVCError(.gitMirror, "'\(name)' names mvc object \(id.short), which its git commit does not carry",
                               hint: "the mirror is damaged or was not written by mvc; fetch it again")
            }
            let current = try repo.refs.read(mvcRef)
            if current == id { continue }
            if let current, try repo.isAncestor(id, of: current) { continue }   // the store is ahead
            // Fast-forward only: a local ref the mirror descends from moves up; a diverged one stays.
            if let current, try !repo.isAncestor(current, of: id) { conflicts.append(mvcRef); continue }
            try repo.refs.update(mvcRef, from: current, to: id, actor: actor, message: "mirror import: \(name)")
            set.append(mvcRef)
        }
        saveMap()
        return ImportReport(objectsImported: imported, refsSet: set, conflicts: conflicts)
    }
}
