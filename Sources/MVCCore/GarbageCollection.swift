#if canImport(Glibc)
internal import Glibc
#endif

public struct GCReport: Sendable, Codable, Equatable {
    public var dryRun: Bool
    /// Objects deleted (or, in a dry run, that would be).
    public var deleted: [ObjectID]
    public var bytesFreed: UInt64
    /// Objects kept only because they, or a recent object referring to them, are younger than
    /// the grace period.
    public var keptYoung: Int
    public var reachable: Int
    /// Packs rewritten without their dead objects, and packs deleted whole.
    public var packsRewritten: Int
    public var packsDeleted: Int
}

extension Repository {
    /// Two weeks, as git's `gc.pruneExpire`: an object written (or re-used by a commit) within it
    /// is never collected, so a commit running concurrently with gc cannot lose what it relies on.
    public static let defaultGrace: Int64 = 14 * 24 * 3600

    /// Deletes objects unreachable from every ref, every ref-log entry (rolled-back and replaced
    /// versions stay restorable), every version `mvc.lock` names, and not written or re-used in the
    /// last `grace` seconds. Packs holding dead objects are rewritten with the live ones, the new
    /// pack durable before the old one goes.
    public func gc(dryRun: Bool = false, grace: Int64 = Repository.defaultGrace) throws(MVCError) -> GCReport {
        let cutoff = StatCache.now() / 1_000_000_000 - grace
        let refRoots = try liveRoots()
        let reachable = try closure(of: refRoots, tolerateMissing: true).objects
        let recent = try recentRoots(excluding: reachable, cutoff: cutoff)
        let live = try closure(of: refRoots + recent, tolerateMissing: true, opaque: Set(recent.map(\.id))).objects
        var report = GCReport(dryRun: dryRun, deleted: [], bytesFreed: 0, keptYoung: live.count - reachable.count,
                              reachable: reachable.count, packsRewritten: 0, packsDeleted: 0)

        // Opening a pack does not hash its index (FORMAT.md 5.4). gc decides what is dead from the
        // ids in the indexes, so a flipped bit in one would make a live object look dead: check
        // every index whole before anything is deleted.
        for pack in try objects.loadedPacks() { try pack.verifyIndex() }
        for (id, loc) in try objects.allRecords() {
            guard case .loose(let path, _, let size) = loc, !live.contains(id) else { continue }
            guard let st = try FileIO.lstat(path), st.mtimeNanos / 1_000_000_000 < cutoff else { continue }
            report.deleted.append(id); report.bytesFreed += size
            if !dryRun { FileIO.unlink(path) }
        }
        for pack in try objects.loadedPacks() {
            let entries = pack.allEntries()
            let dead = entries.filter { !live.contains($0.id) }
            if dead.isEmpty { continue }
            guard let st = try FileIO.lstat(pack.packPath), st.mtimeNanos / 1_000_000_000 < cutoff else { continue }
            report.deleted.append(contentsOf: dead.map(\.id))
            report.bytesFreed += dead.reduce(0) { $0 &+ $1.length }
            if dryRun { continue }
            let keep = entries.filter { live.contains($0.id) }
            if !keep.isEmpty {
                let writer = try PackWriter(directory: objects.packDirectory, durable: objects.durable)
                for e in keep {
                    let bytes = try withFreshBuffer(count: Int(e.length)) { (b) throws(MVCError) -> Int in try pack.read(e, into: b) }
                    // Copy verified: a damaged object must not be laundered into a new pack. A damaged
                    // copy shadowed by a sound loose one (after fsck --repair) is simply dropped.
                    if e.kind == .raw && ObjectID.hash(bytes) != e.id {
                        let loose = objects.loosePath(e.id, kind: .raw)
                        if let good = try FileIO.readSmallFile(loose, limit: 1 << 30), ObjectID.hash(good) == e.id { continue }
                        throw .corrupt(e.id, "found while repacking '\(pack.packPath)'")
                    }
                    var failure: MVCError?
                    bytes.withUnsafeBytes { b in
                        do throws(MVCError) { try writer.append(e.id, kind: e.kind, b) } catch { failure = error }
                    }
                    if let failure { throw failure }
                }
                _ = try writer.finish()
                report.packsRewritten += 1
            } else {
                report.packsDeleted += 1
            }
            // The index first: without it the pack is invisible, so readers never see half a pack.
            FileIO.unlink(String(pack.packPath.dropLast(5)) + ".idx")
            FileIO.unlink(pack.packPath)
        }
        if !dryRun { try objects.refreshPacks(force: true) }
        report.deleted.sort()
        return report
    }

    /// Recent objects are roots too (as in git): a commit running now may have re-used an old
    /// chunk list whose chunks nothing else reaches; keeping what recent objects reference keeps
    /// those chunks.
    func recentRoots(excluding reachable: Set<ObjectID>, cutoff: Int64) throws(MVCError) -> [(label: String, id: ObjectID)] {
        var roots: [(String, ObjectID)] = []
        for (id, loc) in try objects.allRecords() where !reachable.contains(id) {
            let path: String
            switch loc {
            case .loose(let p, _, _): path = p
            case .packed(let pack, _): path = pack.packPath
            }
            if let st = try FileIO.lstat(path), st.mtimeNanos / 1_000_000_000 >= cutoff { roots.append(("recent object \(id.short)", id)) }
        }
        return roots
    }

    /// Why gc keeps an object, or that it would delete it.
    public func explainGC(_ id: ObjectID, grace: Int64 = Repository.defaultGrace) throws(MVCError) -> String {
        guard let loc = try objects.locate(id) else { return "\(id.hex) is not in the store" }
        let refRoots = try liveRoots()
        let (reachable, reasons, _) = try closure(of: refRoots, explain: true, tolerateMissing: true)
        if let r = reasons[id] {
            return "kept: reachable from \(r.root)" + (r.path.isEmpty ? "" : " via " + r.path.joined(separator: " -> "))
        }
        let cutoff = StatCache.now() / 1_000_000_000 - grace
        let recent = try recentRoots(excluding: reachable, cutoff: cutoff)
        let (_, recentReasons, _) = try closure(of: recent, explain: true, tolerateMissing: true, opaque: Set(recent.map(\.id)))
        if let r = recentReasons[id], r.root != "recent object \(id.short)" {
            return "kept for now: referenced by a \(r.root) written or re-used within the grace period" + (r.path.isEmpty ? "" : " via " + r.path.joined(separator: " -> "))
        }
        let path: String
        switch loc {
        case .loose(let p, _, _): path = p
        case .packed(let pack, _): path = pack.packPath
        }
        let mtime = (try FileIO.lstat(path)?.mtimeNanos ?? 0) / 1_000_000_000
        if mtime >= cutoff {
            return "kept for now: unreachable, but written or re-used within the grace period (until \(mtime + grace), Unix time)"
        }
        return "would be deleted: unreachable from every ref, ref log and \(LockFile.fileName), and older than the grace period"
    }
}
