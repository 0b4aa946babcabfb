/// Resolving revisions: `NAME`, `NAME@vN`, `NAME@SEMVER`, `NAME@latest`, `NAME@STAGE`,
/// `NAME@STAGE~K` (what the stage held K moves ago), `NAME@<id prefix>`, or a full or
/// unique-prefix hex id (at least 4 digits).
extension Repository {
    /// The commit a revision names.
    public func resolve(_ revision: String) throws(MVCError) -> ObjectID {
        let unknown = { (why: String) in
            MVCError(.unknownRevision, "unknown revision '\(revision)'\(why.isEmpty ? "" : ": " + why)",
                     hint: "see 'mvc log NAME' for versions, or 'mvc artifacts' for names")
        }
        if let at = revision.lastIndex(of: "@") {
            let name = String(revision[..<at]), rev = String(revision[revision.index(after: at)...])
            try Names.validateArtifact(name)
            guard let head = try head(of: name) else { throw unknown("no artifact named '\(name)'") }
            if rev.isEmpty || rev == "latest" { return head }
            if rev.first == "v", let n = Int(rev.dropFirst()), n >= 1 {
                var cursor: ObjectID? = head
                while let id = cursor {
                    let c = try objects.readCommit(id)
                    if c.version == n { return id }
                    if c.version < n { break }
                    cursor = c.parents.first
                }
                throw unknown("'\(name)' has no version v\(n)")
            }
            // NAME@STAGE and NAME@STAGE~K (the value K moves ago), before hex: a stage may be named 'cafe'.
            let stagePart = rev.split(separator: "~", maxSplits: 1, omittingEmptySubsequences: false)
            if (try? Stages.validate(String(stagePart[0]))) != nil {
                let stage = String(stagePart[0])
                var back = 0
                if stagePart.count == 2 {
                    guard let k = Int(stagePart[1]), k >= 0 else { throw unknown("'~\(stagePart[1])' is not a number of moves") }
                    back = k
                }
                var isStage = try refs.read(Repository.stageRef(name, stage)) != nil
                // A broken mvc.yaml must not break id prefixes that happen to look like stage names.
                if !isStage { isStage = (try? policy())?.stages.contains(stage) ?? false }
                if isStage {
                    do throws(MVCError) { return try stageCommit(name, stage, back: back) } catch {
                        throw error.code == .unknownRevision ? MVCError(.unknownRevision, "unknown revision '\(revision)': \(error.message)", hint: error.hint) : error
                    }
                }
            }
            if Names.isSemverLike(rev) {
                if let id = try refs.read(Repository.tagRef(name, rev)) { return id }
                throw unknown("'\(name)' has no version tagged \(rev)")
            }
            if rev.count >= 4, isHexString(rev) {
                let id = try resolvePrefix(rev, original: revision)
                let c = try objects.readCommit(id)
                guard c.artifact == name else { throw unknown("\(id.short) is a commit of '\(c.artifact)', not of '\(name)'") }
                return id
            }
            throw unknown("'\(rev)' is not a version (v3), a semantic version (1.4.0), a stage or an id")
        }
        if let id = ObjectID(hex: revision) {
            guard try objects.contains(id) else { throw unknown("no such object") }
            return id
        }
        if (try? Names.validateArtifact(revision)) != nil, let head = try head(of: revision) { return head }
        if revision.count >= 4, isHexString(revision) { return try resolvePrefix(revision, original: revision) }
        throw unknown("")
    }

    /// Resolves a revision that must name a commit.
    public func resolveCommit(_ revision: String) throws(MVCError) -> (id: ObjectID, commit: Commit) {
        let id = try resolve(revision)
        guard try objects.framedKind(id) == .commit else {
            throw MVCError(.invalidArgument, "'\(revision)' names object \(id.short), which is not a commit", hint: "give a version such as NAME@v1")
        }
        return (id, try objects.readCommit(id))
    }

    private func resolvePrefix(_ prefix: String, original: String) throws(MVCError) -> ObjectID {
        let matches = try objects.ids(withPrefix: prefix)
        if matches.isEmpty {
            throw MVCError(.unknownRevision, "unknown revision '\(original)': no object starts with \(prefix)",
                           hint: "see 'mvc log NAME' for ids")
        }
        if matches.count > 1 {
            throw MVCError(.ambiguousRevision, "id prefix '\(prefix)' is ambiguous: \(matches.prefix(5).map(\.short).joined(separator: ", "))\(matches.count > 5 ? ", ..." : "")",
                           hint: "give more hex digits")
        }
        return matches[0]
    }

    /// `name@vN` for a commit, for people.
    public func label(_ id: ObjectID) -> String {
        guard let c = try? objects.readCommit(id) else { return id.short }
        return "\(c.artifact)@v\(c.version)"
    }

    /// An artifact's commits, newest first (first-parent history).
    public func log(_ name: String) throws(MVCError) -> [(id: ObjectID, commit: Commit)] {
        try Names.validateArtifact(name)
        guard let head = try head(of: name) else {
            throw MVCError(.unknownRevision, "no artifact named '\(name)'", hint: "see 'mvc artifacts' for names")
        }
        var out: [(ObjectID, Commit)] = []
        var cursor: ObjectID? = head
        while let id = cursor {
            let c = try objects.readCommit(id)
            out.append((id, c))
            cursor = c.parents.first
        }
        return out
    }

    /// Semantic-version tags of an artifact, by commit.
    public func semverTags(_ name: String) throws(MVCError) -> [ObjectID: [String]] {
        var out: [ObjectID: [String]] = [:]
        for tag in try refs.list("refs/tags/\(name)") where !tag.contains("/") {
            if let id = try refs.read(Repository.tagRef(name, tag)) { out[id, default: []].append(tag) }
        }
        return out
    }
}
