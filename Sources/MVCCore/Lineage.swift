/// One node of a provenance graph walk.
public struct LineageNode: Sendable, Codable, Equatable {
    public var id: ObjectID
    public var artifact: String
    public var version: Int
    public var kind: ArtifactKind
    /// How this node relates to its parent in the walk (the input's role); nil for the root.
    public var role: String?
    /// Depth in the walk; 0 for the revision asked about.
    public var depth: Int
    /// True when this node was already shown above (the graph is a DAG, not a tree).
    public var repeated: Bool
}

extension Repository {
    /// The provenance graph from a revision, depth first: upstream (what it was made from,
    /// recursively) or downstream (what was made from it).
    public func lineage(_ revision: String, downstream: Bool = false) throws(MVCError) -> [LineageNode] {
        let (rootID, _) = try resolveCommit(revision)
        var children: [ObjectID: [InputEdge]] = [:]   // downstream: commit -> commits that used it
        if downstream {
            for (id, c) in try allCommits() {
                for i in c.inputs { children[i.commit, default: []].append(InputEdge(commit: id, role: i.role)) }
            }
        }
        var out: [LineageNode] = []
        var shown = Set<ObjectID>()
        func visit(_ id: ObjectID, role: String?, depth: Int) throws(MVCError) {
            let c = try objects.readCommit(id)
            let repeated = !shown.insert(id).inserted
            out.append(LineageNode(id: id, artifact: c.artifact, version: c.version, kind: c.kind, role: role, depth: depth, repeated: repeated))
            if repeated { return }
            let next = downstream ? (children[id] ?? []).sorted { ($0.role, $0.commit) < ($1.role, $1.commit) } : c.inputs
            for e in next { try visit(e.commit, role: e.role, depth: depth + 1) }
        }
        try visit(rootID, role: nil, depth: 0)
        return out
    }

    /// Every commit in every artifact's history.
    public func allCommits() throws(MVCError) -> [(ObjectID, Commit)] {
        var out: [(ObjectID, Commit)] = []
        for name in try artifactNames() { out.append(contentsOf: try log(name).map { ($0.id, $0.commit) }) }
        return out
    }
}
