public struct FsckProblem: Sendable, Codable, Equatable {
    /// The object id, ref or file the problem is in.
    public var subject: String
    public var problem: String
}

public struct FsckReport: Sendable, Codable, Equatable {
    public var objectsChecked: Int
    public var refsChecked: Int
    public var problems: [FsckProblem]
    public var ok: Bool { problems.isEmpty }
}

extension Repository {
    /// Verifies every stored object's id (every chunk, every chunk list against the whole content),
    /// that trees and commits parse in canonical form and reference stored objects, and that every
    /// ref and log entry points at a stored commit of the right artifact.
    public func fsck(progress: any ProgressSink = SilentProgress()) throws(MVCError) -> FsckReport {
        var problems: [FsckProblem] = []
        func report(_ subject: String, _ problem: String) { problems.append(FsckProblem(subject: subject, problem: problem)) }
        let records = try objects.allRecords()
        progress.begin("checking objects", totalBytes: records.reduce(0) { $0 + $1.1.storedSize }, totalFiles: records.count)
        var checked = Set<ObjectID>()
        for (id, loc) in records {
            checked.insert(id)
            do throws(MVCError) {
                switch loc.kind {
                case .raw:
                    let head = loc.storedSize < 1 << 26 ? try objects.readRecord(loc, id: id, limit: 1 << 26) : nil
                    if let head, ObjectID.hash(head) != id { throw MVCError.corrupt(id, "content does not match its id") }
                    if head == nil { try objects.stream(id) { _ in } }
                    switch head.flatMap({ Framing.peekKind($0) }) {
                    case .tree?:
                        for e in try Tree.decode(head!, id: id).entries where try !objects.contains(e.id) {
                            report(id.hex, "tree entry '\(e.name)' names missing object \(e.id.hex)")
                        }
                    case .commit?:
                        let c = try Commit.decode(head!, id: id)
                        for (what, ref) in [("tree", c.tree)] + c.parents.map({ ("parent", $0) }) + c.inputs.map({ ("input", $0.commit) })
                        where try !objects.contains(ref) {
                            report(id.hex, "commit \(c.artifact)@v\(c.version) names missing \(what) \(ref.hex)")
                        }
                    case nil:
                        break
                    }
                case .chunks:
                    try objects.stream(id, verifyWhole: true) { _ in }
                }
            } catch {
                report(id.hex, error.message)
            }
            progress.advance(bytes: loc.storedSize, path: id.short)
        }
        progress.end()

        var refsChecked = 0
        for name in try artifactNames() {
            let ref = Repository.artifactRef(name)
            refsChecked += 1
            do throws(MVCError) {
                guard let head = try refs.read(ref) else { continue }
                let c = try objects.readCommit(head)
                if c.artifact != name { report(ref, "points at a commit of '\(c.artifact)'") }
                // The whole history must be readable.
                _ = try log(name)
                for e in try refs.log(ref) {
                    for target in [e.old, e.new].compactMap({ $0 }) where try !objects.contains(target) {
                        report("logs/\(ref)", "entry of \(e.actor.time) names missing commit \(target.hex)")
                    }
                }
                for (tagged, versions) in try semverTags(name) {
                    refsChecked += versions.count
                    let t = try objects.readCommit(tagged)
                    if t.artifact != name { report("refs/tags/\(name)", "\(versions.joined(separator: ",")) points at a commit of '\(t.artifact)'") }
                }
            } catch {
                report(ref, error.message)
            }
        }
        return FsckReport(objectsChecked: checked.count, refsChecked: refsChecked, problems: problems)
    }
}
