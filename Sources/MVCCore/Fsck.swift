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
    /// Checks the whole store, in two passes:
    /// 1. every stored record, where it is: a raw object must hash to its id; a chunk list must pass
    ///    its checksum, name stored chunks of the listed sizes, and add up to its id;
    /// 2. everything reachable from every ref and ref-log entry: commits and trees must parse in
    ///    canonical form, and every tree, blob, parent and input they name must be stored.
    /// Whether an object is a tree or a commit is known only from what points at it (a user's file
    /// may well begin with `tree 5\0`), so parsing happens in the second pass only.
    public func fsck(progress: any ProgressSink = SilentProgress()) throws(MVCError) -> FsckReport {
        var problems: [FsckProblem] = []
        func report(_ subject: String, _ problem: String) { problems.append(FsckProblem(subject: subject, problem: problem)) }

        // Opening a pack checks its index's header, fan-out and name, not the whole checksum. The
        // records of a pack whose index is damaged are not read through it (its numbers may point
        // anywhere); what they held shows up as missing in the second pass.
        var damagedPacks = Set<String>()
        for pack in try objects.loadedPacks() {
            do throws(MVCError) { try pack.verifyIndex() } catch {
                report(pack.indexPath, error.message)
                damagedPacks.insert(pack.packPath)
            }
        }
        let records = try objects.allRecords().filter { _, loc in
            if case .packed(let pack, _) = loc { return !damagedPacks.contains(pack.packPath) }
            return true
        }
        progress.begin("checking objects", totalBytes: records.reduce(0) { $0 &+ $1.1.storedSize }, totalFiles: records.count)
        var ids = Set<ObjectID>()
        var damaged: [(ObjectID, String)] = [], sound = Set<ObjectID>()
        for (id, loc) in records {
            ids.insert(id)
            do throws(MVCError) {
                try objects.stream(id, location: loc, verifyWhole: true) { _ in }
                sound.insert(id)
            } catch {
                damaged.append((id, "\(error.message) (\(loc.describe))"))
            }
            progress.advance(bytes: loc.storedSize, path: id.short)
        }
        progress.end()
        // A damaged copy shadowed by a sound one (e.g. a loose copy written by --repair, which
        // readers find first) harms nothing; gc drops it with its pack eventually.
        for (id, why) in damaged where !sound.contains(id) { report(id.hex, why) }

        // Pass 2: reachability from refs and their logs.
        var commitsSeen = Set<ObjectID>(), treesSeen = Set<ObjectID>()
        var refsChecked = 0
        func checkTree(_ id: ObjectID, in label: String, depth: Int) {
            guard treesSeen.insert(id).inserted else { return }
            guard depth < Repository.maxTreeDepth else { report(id.hex, "trees nest too deep (in \(label))"); return }
            do throws(MVCError) {
                for e in try objects.readTree(id).entries {
                    if e.kind == .tree { checkTree(e.id, in: label, depth: depth + 1); continue }
                    var stored = ids.contains(e.id)
                    if !stored { stored = try objects.contains(e.id) }
                    guard stored else {
                        report(e.id.hex, "file '\(e.name)' of \(label) is missing from the store"); continue
                    }
                    let size = try objects.size(of: e.id)
                    if size != e.size { report(e.id.hex, "file '\(e.name)' of \(label) is \(size) bytes, its tree says \(e.size)") }
                }
            } catch {
                report(id.hex, "tree of \(label): \(error.message)")
            }
        }
        func checkCommit(_ id: ObjectID, from origin: String) {
            var stack = [id]
            while let next = stack.popLast() {
                guard commitsSeen.insert(next).inserted else { continue }
                do throws(MVCError) {
                    let c = try objects.readCommit(next)
                    let label = "\(c.artifact)@v\(c.version)"
                    checkTree(c.tree, in: label, depth: 0)
                    stack.append(contentsOf: c.parents)
                    stack.append(contentsOf: c.inputs.map(\.commit))
                } catch {
                    report(next.hex, "commit reachable from \(origin): \(error.message)")
                }
            }
        }

        for name in try artifactNames() {
            let ref = Repository.artifactRef(name)
            refsChecked += 1
            do throws(MVCError) {
                guard let head = try refs.read(ref) else { continue }
                if let c = try? objects.readCommit(head), c.artifact != name {
                    report(ref, "points at a commit of '\(c.artifact)'")
                }
                checkCommit(head, from: ref)
                for e in try refs.log(ref) {
                    for target in [e.old, e.new].compactMap({ $0 }) { checkCommit(target, from: "the log of \(ref)") }
                }
                for tag in try refs.list("refs/tags/\(name)") where !tag.contains("/") {
                    refsChecked += 1
                    let tagRef = Repository.tagRef(name, tag)
                    guard let tagged = try refs.read(tagRef) else { continue }
                    checkCommit(tagged, from: tagRef)
                    if let c = try? objects.readCommit(tagged), c.artifact != name {
                        report(tagRef, "points at a commit of '\(c.artifact)'")
                    }
                }
                try checkStagesAndAnnotations(name)
            } catch {
                report(ref, error.message)
            }
        }

        /// Stage refs point at move chains; annotation refs at annotation chains. Every link must be
        /// stored, canonical, of this artifact, with sequence numbers counting down to 1.
        func checkStagesAndAnnotations(_ name: String) throws(MVCError) {
            for stage in try refs.list("refs/stages/\(name)") where !stage.contains("/") {
                let ref = Repository.stageRef(name, stage)
                refsChecked += 1
                var cursor = try refs.read(ref)
                var expected: Int?
                while let id = cursor {
                    do throws(MVCError) {
                        let m = try objects.readMove(id)
                        if m.artifact != name || m.stage != stage { report(id.hex, "move in the chain of \(ref) is for \(m.artifact)@\(m.stage)") }
                        if let e = expected, m.sequence != e { report(id.hex, "move \(m.sequence) of \(ref) follows move \(e + 1)") }
                        expected = m.sequence - 1
                        if let c = m.commit {
                            checkCommit(c, from: ref)
                            if let cc = try? objects.readCommit(c), cc.artifact != name { report(id.hex, "move of \(ref) names a commit of '\(cc.artifact)'") }
                        }
                        cursor = m.previous
                    } catch {
                        report(id.hex, "stage move reachable from \(ref): \(error.message)")
                        cursor = nil
                    }
                }
                for e in try refs.log(ref) {
                    for target in [e.old, e.new].compactMap({ $0 }) where !ids.contains(target) {
                        if try !objects.contains(target) { report("logs/\(ref)", "entry of \(e.actor.time) names missing move \(target.hex)") }
                    }
                }
            }
            for hex in try refs.list("refs/annotations/\(name)") where !hex.contains("/") {
                let ref = "refs/annotations/\(name)/\(hex)"
                refsChecked += 1
                var cursor = try refs.read(ref)
                while let id = cursor {
                    do throws(MVCError) {
                        let a = try objects.readAnnotation(id)
                        if a.target.hex != hex || a.artifact != name { report(id.hex, "annotation in \(ref) is for \(a.artifact) \(a.target.short)") }
                        checkCommit(a.target, from: ref)
                        cursor = a.previous
                    } catch {
                        report(id.hex, "annotation reachable from \(ref): \(error.message)")
                        cursor = nil
                    }
                }
            }
        }
        return FsckReport(objectsChecked: ids.count, refsChecked: refsChecked, problems: problems)
    }
}

extension ObjectStore.Location {
    var describe: String {
        switch self {
        case .loose(let path, _, _): return path
        case .packed(let pack, let e): return "\(pack.packPath) at offset \(e.offset)"
        }
    }
}
