/// The objects a commit, stage move or annotation names (a commit's tree flagged as a tree), or
/// nil when the bytes are none of those. Shared by every walk over objects that are not (yet) in
/// the store: fetch and gc on a remote.
func framedLinks(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> [(id: ObjectID, isTree: Bool)]? {
    switch Framing.peekKind(bytes) {
    case .commit?:
        let c = try Commit.decode(bytes, id: id)
        return [(c.tree, true)] + c.parents.map { ($0, false) } + c.inputs.map { ($0.commit, false) }
    case .move?:
        let m = try StageMove.decode(bytes, id: id)
        return [m.commit, m.previous].compactMap { $0 }.map { ($0, false) }
    case .annotation?:
        let a = try Annotation.decode(bytes, id: id)
        return [a.target, a.previous].compactMap { $0 }.map { ($0, false) }
    default:
        return nil
    }
}

/// Walking what refs keep alive: the closure of commits, trees, blobs, chunks, moves and
/// annotations. Shared by push (what to send), fetch (what to get), and gc (what to keep).
extension Repository {
    /// Why an object is kept: the root that reaches it and the path from there.
    public struct Reason: Sendable, Equatable, Codable {
        public var root: String
        public var path: [String]
    }

    /// Every ref under `.mvc/refs` (artifacts, tags, stages, annotations, remote-tracking), with
    /// its value.
    public func allRefs() throws(MVCError) -> [(name: String, value: ObjectID)] {
        var out: [(String, ObjectID)] = []
        for name in try refs.list("refs") {
            if let v = try refs.read("refs/" + name) { out.append(("refs/" + name, v)) }
        }
        return out
    }

    /// The objects a set of roots keeps alive. `explain` records, for each object, the first root
    /// and path found (for `mvc gc --explain`). Objects missing from the store are reported in
    /// `missing` instead of failing the walk when `tolerateMissing`.
    /// `opaque`: roots that may be plain files (recent objects gc keeps): if one does not parse as
    /// the object its header claims, it is kept as bytes instead of failing the walk.
    public func closure(of roots: [(label: String, id: ObjectID)], explain: Bool = false, tolerateMissing: Bool = false,
                        opaque: Set<ObjectID> = []) throws(MVCError) -> (objects: Set<ObjectID>, reasons: [ObjectID: Reason], missing: Set<ObjectID>) {
        var seen = Set<ObjectID>()
        var reasons: [ObjectID: Reason] = [:]
        var missing = Set<ObjectID>()
        // (id, how to read it, label path)
        enum Kind { case any, tree, blob }
        var stack: [(ObjectID, Kind, Reason?)] = roots.reversed().map { ($0.id, .any, explain ? Reason(root: $0.label, path: []) : nil) }
        while let (id, kind, reason) = stack.popLast() {
            guard seen.insert(id).inserted else { continue }
            if let reason { reasons[id] = reason }
            func child(_ c: ObjectID, _ k: Kind, _ step: String) {
                stack.append((c, k, reason.map { Reason(root: $0.root, path: $0.path + [step]) }))
            }
            guard let loc = try objects.locate(id) else {
                if tolerateMissing { missing.insert(id); continue }
                throw .missing(id)
            }
            switch kind {
            case .blob:
                if loc.kind == .chunks {
                    let list = try ChunkList.decode(try objects.readRecord(loc, id: id, limit: 1 << 30), id: id)
                    for c in list.chunks { child(c.id, .blob, "chunk \(c.id.short)") }
                }
            case .tree:
                for e in try objects.readTree(id).entries {
                    child(e.id, e.kind == .tree ? .tree : .blob, e.name)
                }
            case .any:
                // Refs and links name commits, moves and annotations: the header says which.
                if opaque.contains(id) {
                    // A recent object may be a user's file that merely looks framed.
                    let parses: Bool
                    switch try objects.framedKind(id) {
                    case .commit?: parses = (try? objects.readCommit(id)) != nil
                    case .move?: parses = (try? objects.readMove(id)) != nil
                    case .annotation?: parses = (try? objects.readAnnotation(id)) != nil
                    case .tree?: parses = (try? objects.readTree(id)) != nil
                    case nil: parses = true
                    }
                    if !parses { continue }
                }
                switch try objects.framedKind(id) {
                case .commit?:
                    let c = try objects.readCommit(id)
                    child(c.tree, .tree, "\(c.artifact)@v\(c.version) tree")
                    for p in c.parents { child(p, .any, "parent of \(c.artifact)@v\(c.version)") }
                    for i in c.inputs { child(i.commit, .any, "\(i.role) input of \(c.artifact)@v\(c.version)") }
                case .move?:
                    let m = try objects.readMove(id)
                    if let c = m.commit { child(c, .any, "\(m.artifact)@\(m.stage) move \(m.sequence)") }
                    if let p = m.previous { child(p, .any, "move \(m.sequence - 1) of \(m.artifact)@\(m.stage)") }
                case .annotation?:
                    let a = try objects.readAnnotation(id)
                    child(a.target, .any, "annotated commit")
                    if let p = a.previous { child(p, .any, "earlier annotation") }
                case .tree?:
                    seen.remove(id); stack.append((id, .tree, reason))
                case nil:
                    seen.remove(id); stack.append((id, .blob, reason))
                }
            }
        }
        return (seen.subtracting(missing), reasons, missing)
    }

    /// The roots that must stay restorable: every ref, every target in every ref log (a rolled-back
    /// version stays restorable), and every version `mvc.lock` names.
    public func liveRoots() throws(MVCError) -> [(label: String, id: ObjectID)] {
        var roots: [(String, ObjectID)] = []
        for (name, value) in try allRefs() {
            roots.append((name, value))
            for (i, e) in try refs.log(name).enumerated() {
                for v in [e.old, e.new].compactMap({ $0 }) where v != value { roots.append(("\(name) log entry \(i + 1)", v)) }
            }
        }
        // An mvc.lock that does not parse stops gc: what it names must not be collected blindly.
        for e in try lockFile().entries { roots.append(("\(LockFile.fileName) '\(e.path)'", e.commit)) }
        return roots
    }
}
