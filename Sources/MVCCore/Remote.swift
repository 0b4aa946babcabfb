#if canImport(Glibc)
internal import Glibc
#endif
internal import Foundation

/// A configured remote: a name and a URL, kept in `.mvc/remotes` (one `NAME URL` line each).
public struct RemoteConfig: Sendable, Equatable, Codable {
    public var name: String
    public var url: String
    public init(name: String, url: String) { self.name = name; self.url = url }
}

public struct PushReport: Sendable, Codable, Equatable {
    public var remote: String
    public var objectsSent: Int
    public var bytesSent: UInt64
    public var packsSent: Int
    /// Remote refs moved.
    public var refsUpdated: [String]
    /// Refs the remote holds a value for that this store does not descend from (like a
    /// non-fast-forward in git): not pushed.
    public var rejected: [String]
}

public struct FetchReport: Sendable, Codable, Equatable {
    public var remote: String
    public var objectsReceived: Int
    public var bytesReceived: UInt64
    /// Local refs created or fast-forwarded.
    public var refsUpdated: [String]
    /// Local refs that have moved away from the remote's: left alone.
    public var diverged: [String]
}

/// The remote layout (docs/FORMAT.md, "Remotes"): `mvc-remote` (`mvc-remote 1`), packs under
/// `packs/pack-<name>.{pack,idx}` in the local pack format, refs under `refs/` as `<hex>\n`.
public final class RemoteClient {
    public let config: RemoteConfig
    let storage: any RemoteStorage
    let repo: Repository
    /// Remote pack indexes, cached locally (packs are immutable, so a cached index stays valid).
    let cacheDirectory: String
    private var index: [ObjectID: (pack: String, entry: Pack.Entry)] = [:]
    private var indexLoaded = false

    static let marker = "mvc-remote"
    /// Version 2 added zstd-compressed entries (storage kind 3) and `locks/`; version-1 remotes are
    /// read as they are and upgraded by the first push (mvc of version 1 then refuses them clearly).
    static let formatLine = "mvc-remote 2\n"
    static let olderFormatLines = ["mvc-remote 1\n"]
    /// Objects are sent in packs of at most this size: an interrupted push keeps what it sent.
    static let packLimit: UInt64 = 256 << 20

    init(config: RemoteConfig, storage: any RemoteStorage, repo: Repository) {
        self.config = config
        self.storage = storage
        self.repo = repo
        cacheDirectory = joinPath(joinPath(repo.storeDirectory, "remote-cache"), config.name)
    }

    /// Refuses a remote written by a newer mvc; creates the marker on a fresh one when `create`.
    func checkFormat(create: Bool) throws(MVCError) {
        if let v = try storage.read(RemoteClient.marker) {
            let text = String(decoding: v, as: UTF8.self)
            if text == RemoteClient.formatLine { return }
            guard RemoteClient.olderFormatLines.contains(text) else {
                throw MVCError(.unsupportedFormat, "remote '\(config.name)' (\(config.url)) has format '\(text.escapingControlCharacters)'; this mvc reads 'mvc-remote 2' and older",
                               hint: "upgrade mvc")
            }
            if create {   // a push may write compressed entries: older readers must refuse, not misread
                do throws(MVCError) { try storage.swap(RemoteClient.marker, expected: v, new: Array(RemoteClient.formatLine.utf8)) } catch where error.code == .refMoved {}
            }
        } else if create {
            do throws(MVCError) { try storage.swap(RemoteClient.marker, expected: nil, new: Array(RemoteClient.formatLine.utf8)) } catch where error.code == .refMoved {}
        } else {
            throw MVCError(.unknownRevision, "remote '\(config.name)' (\(config.url)) holds no mvc data yet", hint: "push to it first")
        }
    }

    /// What the remote has: every pack index, downloaded once into the cache and verified.
    func remoteIndex() throws(MVCError) -> [ObjectID: (pack: String, entry: Pack.Entry)] {
        if indexLoaded { return index }
        try FileIO.mkdirs(cacheDirectory)
        for key in try storage.list(prefix: "packs/") where key.hasSuffix(".idx") {
            let name = String(key.dropFirst("packs/pack-".count).dropLast(4))
            guard key.hasPrefix("packs/pack-"), ObjectID(hex: name) != nil else { continue }
            let cached = joinPath(cacheDirectory, "pack-\(name).idx")
            var bytes = try FileIO.readSmallFile(cached, limit: 1 << 30)
            if bytes == nil {
                guard let fetched = try storage.read(key) else { continue }
                bytes = fetched
            }
            _ = try Pack.validateIndex(bytes!, name: name, path: "\(config.url)/\(key)")
            try FileIO.writeFileAtomically(cached, bytes!, sync: false)
            for e in Pack.indexEntries(bytes!) where index[e.id] == nil { index[e.id] = ("packs/pack-\(name).pack", e) }
        }
        indexLoaded = true
        return index
    }

    /// The remote's refs: ref name -> value.
    func remoteRefs() throws(MVCError) -> [String: ObjectID] {
        var out: [String: ObjectID] = [:]
        for key in try storage.list(prefix: "refs/") {
            guard let bytes = try storage.read(key) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            guard text.hasSuffix("\n"), let id = ObjectID(hex: text.dropLast()), id.hex == text.dropLast() else {
                throw MVCError(.corruptObject, "remote ref '\(key)' on '\(config.name)' is corrupt", hint: "run 'mvc fsck --remote \(config.name)'")
            }
            out[key] = id
        }
        return out
    }

    /// Reads one object's stored record from the remote (a ranged read), decompressed and verified:
    /// the result is a local record (raw bytes or a chunk list).
    func fetchRecord(_ id: ObjectID) throws(MVCError) -> (kind: StorageKind, bytes: [UInt8]) {
        guard let (pack, e) = try remoteIndex()[id] else { throw .missing(id, "object on remote '\(config.name)'") }
        return try decode(id, kind: e.kind, try storage.read(pack, offset: e.offset, length: e.length))
    }

    /// A remote record as a verified local one: zstd frames are decompressed, raw bytes hashed,
    /// chunk lists checked.
    func decode(_ id: ObjectID, kind: StorageKind, _ bytes: [UInt8]) throws(MVCError) -> (kind: StorageKind, bytes: [UInt8]) {
        switch kind {
        case .raw, .zstd:
            let raw = kind == .zstd ? try Compression.decompress(bytes, id: id) : bytes
            guard ObjectID.hash(raw) == id else { throw .corrupt(id, "the copy on remote '\(config.name)' does not match its id") }
            return (.raw, raw)
        case .chunks:
            _ = try ChunkList.decode(bytes, id: id)
            return (.chunks, bytes)
        }
    }

    func verify(_ id: ObjectID, kind: StorageKind, _ bytes: [UInt8]) throws(MVCError) {
        _ = try decode(id, kind: kind, bytes)
    }

    /// The refs to transfer: all, or those of the artifacts `revisions` name. Every revision must
    /// name an artifact among `all` (a typo is an error, not a silent no-op).
    func selectRefs(_ all: [String], revisions: [String], side: String) throws(MVCError) -> [String] {
        if revisions.isEmpty { return all }
        var selected = Set<String>()
        for r in revisions {
            let name = r.lastIndex(of: "@").map { String(r[..<$0]) } ?? r
            try Names.validateArtifact(name)
            let mine = all.filter { ref in
                let parts = ref.split(separator: "/").dropFirst(2).joined(separator: "/")   // refs/<kind>/NAME...
                return parts == name || parts.hasPrefix(name + "/")
            }
            if mine.isEmpty {
                throw MVCError(.unknownRevision, "unknown revision '\(r)': \(side) has no artifact '\(name)'", hint: "see 'mvc artifacts'")
            }
            selected.formUnion(mine)
        }
        return all.filter { selected.contains($0) }
    }

    /// Sends what the remote lacks for the selected refs, in packs, then moves the remote refs by
    /// compare-and-swap. A ref the remote holds a value for that this store does not descend from
    /// is rejected, like a non-fast-forward push in git.
    public func push(revisions: [String] = [], progress: any ProgressSink = SilentProgress()) throws(MVCError) -> PushReport {
        try checkFormat(create: true)
        let lock = try takeLock("push")
        defer { try? storage.delete(lock) }
        let local = try repo.allRefs().filter { !$0.name.hasPrefix("refs/remotes/") }
        for r in revisions { _ = try repo.resolve(r) }   // every revision must exist here
        let selected = Set(try selectRefs(local.map(\.name), revisions: revisions, side: "this store"))
        let remote = try remoteRefs()
        var report = PushReport(remote: config.name, objectsSent: 0, bytesSent: 0, packsSent: 0, refsUpdated: [], rejected: [])
        var toUpdate: [(String, ObjectID, ObjectID?)] = []
        for (name, value) in local where selected.contains(name) {
            let current = remote[name]
            if current == value { continue }
            if let current, try !repo.isAncestor(current, of: value) { report.rejected.append(name); continue }
            toUpdate.append((name, value, current))
        }
        // Objects: the closure of what we push, minus what the remote has.
        let has = try remoteIndex()
        let (needed, _, missing) = try repo.closure(of: toUpdate.map { ($0.0, $0.1) }, tolerateMissing: true)
        if !missing.isEmpty {
            throw MVCError(.missingObject, "cannot push: \(missing.count) object\(missing.count == 1 ? " is" : "s are") missing from this store (e.g. \(missing.first!.short))",
                           hint: "fetch them first, or push from a store that has the artifact bytes")
        }
        let send = needed.filter { has[$0] == nil }.sorted()
        var sizes: [ObjectID: UInt64] = [:]
        var total: UInt64 = 0
        for id in send { let s = try repo.objects.locate(id)?.storedSize ?? 0; sizes[id] = s; total += s }
        progress.begin("pushing to \(config.name)", totalBytes: total, totalFiles: send.count)
        let outgoing = joinPath(cacheDirectory, "outgoing")
        try FileIO.mkdirs(outgoing)
        var writer: PackWriter?
        var inPack: UInt64 = 0
        func flush() throws(MVCError) {
            guard let w = writer, let name = try w.finish() else { writer = nil; return }
            writer = nil; inPack = 0
            let packFile = joinPath(outgoing, "pack-\(name).pack"), idxFile = joinPath(outgoing, "pack-\(name).idx")
            // The pack first, the index last: the index is what makes a pack visible.
            try storage.upload("packs/pack-\(name).pack", from: packFile)
            try storage.upload("packs/pack-\(name).idx", from: idxFile)
            if let idx = try FileIO.readSmallFile(idxFile, limit: 1 << 30) {
                try FileIO.writeFileAtomically(joinPath(cacheDirectory, "pack-\(name).idx"), idx, sync: false)
                for e in Pack.indexEntries(idx) { index[e.id] = ("packs/pack-\(name).pack", e) }
            }
            FileIO.unlink(packFile); FileIO.unlink(idxFile)
            report.packsSent += 1
        }
        for id in send {
            guard let loc = try repo.objects.locate(id) else { throw .missing(id) }
            // Raw objects are re-read verified; a chunk list is sent as its record.
            let bytes = loc.kind == .raw ? try repo.objects.read(id, limit: 1 << 30) : try repo.objects.readRecord(loc, id: id, limit: 1 << 30)
            if loc.kind == .chunks { _ = try ChunkList.decode(bytes, id: id) }
            // Each raw object is compressed when a sample says it pays (text, not random weights).
            let (kind, payload) = loc.kind == .raw ? Compression.forRemote(bytes) : (loc.kind, bytes)
            if writer == nil { writer = try PackWriter(directory: outgoing, durable: false) }
            var failure: MVCError?
            payload.withUnsafeBytes { b in
                do throws(MVCError) { try writer!.append(id, kind: kind, b) } catch { failure = error }
            }
            if let failure { throw failure }
            inPack += UInt64(payload.count)
            report.objectsSent += 1; report.bytesSent += UInt64(payload.count)
            progress.advance(bytes: UInt64(bytes.count), path: id.short)
            if inPack >= RemoteClient.packLimit { try flush() }
        }
        try flush()
        progress.end()
        let actor = repo.identity()   // once: it may ask git for the user
        for (name, value, current) in toUpdate {
            try storage.swap(name, expected: current.map { Array("\($0.hex)\n".utf8) }, new: Array("\(value.hex)\n".utf8))
            report.refsUpdated.append(name)
            try? setTracking(name, value, actor: actor)
        }
        return report
    }

    /// Remote locks (`locks/<kind>-<random>`): a push holds one while it uploads; gc holds
    /// `locks/gc` and runs only when no push lock exists. Each side writes its own lock before
    /// looking for the other's, so of a push and a gc that start together at least one sees the
    /// other and stops. A lock left by a killed process is removed by a person (the error says so).
    func takeLock(_ kind: String) throws(MVCError) -> String {
        let key = kind == "gc" ? "locks/gc" : "locks/\(kind)-\(UInt64.random(in: 0...UInt64.max))"
        let note = Array("\(ProcessInfo.processInfo.hostName) pid \(getpid()) at \(StatCache.now() / 1_000_000_000)\n".utf8)
        do throws(MVCError) { try storage.swap(key, expected: nil, new: note) } catch where error.code == .refMoved {
            throw MVCError(.lockHeld, "remote '\(config.name)' is locked by a gc ('\(key)' exists)",
                           hint: "wait for it; if no gc is running, delete '\(key)' on the remote")
        }
        let others = try storage.list(prefix: "locks/").filter { $0 != key && (kind == "gc" || $0 == "locks/gc") }
        if !others.isEmpty {
            try? storage.delete(key)
            throw MVCError(.lockHeld, "remote '\(config.name)' is busy: \(others.joined(separator: ", ")) exists",
                           hint: kind == "gc" ? "a push is running; gc later. If none is, delete those lock files on the remote"
                                              : "a gc is running on the remote; push when it is done")
        }
        return key
    }

    /// Garbage collection on the remote (`mvc gc --remote NAME`): deletes objects that no remote
    /// ref reaches (through parents, inputs, stage moves and annotations), rewriting packs that
    /// mix live and dead objects (the new pack and index uploaded before the old ones go). Holds
    /// the remote's gc lock, so no push runs meanwhile.
    public func gc(dryRun: Bool = false) throws(MVCError) -> GCReport {
        try checkFormat(create: false)
        let lock = try takeLock("gc")
        defer { try? storage.delete(lock) }
        let refs = try remoteRefs()
        let packIndex = try remoteIndex()
        // Reachability over the remote's own objects: metadata read by ranged reads.
        var live = Set<ObjectID>()
        enum Want { case any, tree, blob }
        var stack: [(ObjectID, Want)] = refs.values.map { ($0, .any) }
        while let (id, want) = stack.popLast() {
            guard live.insert(id).inserted else { continue }
            guard let (_, e) = packIndex[id] else { continue }   // missing: fsck --remote reports it
            switch want {
            case .blob:
                if e.kind == .chunks {
                    for c in try ChunkList.decode(try fetchRecord(id).bytes, id: id).chunks { stack.append((c.id, .blob)) }
                }
            case .tree:
                for t in try Tree.decode(try fetchRecord(id).bytes, id: id).entries { stack.append((t.id, t.kind == .tree ? .tree : .blob)) }
            case .any:
                for l in try framedLinks(try fetchRecord(id).bytes, id: id) ?? [] { stack.append((l.id, l.isTree ? .tree : .any)) }
            }
        }
        var report = GCReport(dryRun: dryRun, deleted: [], bytesFreed: 0, keptYoung: 0, reachable: live.count, packsRewritten: 0, packsDeleted: 0)
        var byPack: [String: [Pack.Entry]] = [:]
        for (_, v) in packIndex { byPack[v.pack, default: []].append(v.entry) }
        let outgoing = joinPath(cacheDirectory, "outgoing")
        try FileIO.mkdirs(outgoing)
        for (pack, entries) in byPack.sorted(by: { $0.key < $1.key }) {
            let dead = entries.filter { !live.contains($0.id) }
            if dead.isEmpty { continue }
            report.deleted += dead.map(\.id)
            report.bytesFreed += dead.reduce(0) { $0 + $1.length }
            if dryRun { continue }
            let keep = entries.filter { live.contains($0.id) }
            if !keep.isEmpty {
                let writer = try PackWriter(directory: outgoing, durable: false)
                for e in keep.sorted(by: { $0.offset < $1.offset }) {
                    let bytes = try storage.read(pack, offset: e.offset, length: e.length)
                    try verify(e.id, kind: e.kind, bytes)
                    var failure: MVCError?
                    bytes.withUnsafeBytes { b in
                        do throws(MVCError) { try writer.append(e.id, kind: e.kind, b) } catch { failure = error }
                    }
                    if let failure { throw failure }
                }
                if let name = try writer.finish() {
                    try storage.upload("packs/pack-\(name).pack", from: joinPath(outgoing, "pack-\(name).pack"))
                    try storage.upload("packs/pack-\(name).idx", from: joinPath(outgoing, "pack-\(name).idx"))
                    FileIO.unlink(joinPath(outgoing, "pack-\(name).pack")); FileIO.unlink(joinPath(outgoing, "pack-\(name).idx"))
                }
                report.packsRewritten += 1
            } else {
                report.packsDeleted += 1
            }
            // The index first: without it the pack is invisible.
            try storage.delete(String(pack.dropLast(5)) + ".idx")
            try storage.delete(pack)
            FileIO.unlink(joinPath(cacheDirectory, String(pack.dropFirst("packs/".count).dropLast(5)) + ".idx"))
        }
        report.deleted.sort()
        indexLoaded = false; index = [:]
        return report
    }

    /// Remote-tracking ref: what `name` held on this remote when last seen.
    func setTracking(_ name: String, _ value: ObjectID, actor: Signature) throws(MVCError) {
        let tracking = "refs/remotes/\(config.name)/" + name.dropFirst("refs/".count)
        let current = try repo.refs.read(tracking)
        if current != value { try repo.refs.update(tracking, from: current, to: value, actor: actor, message: "remote \(config.name): \(name)") }
    }

    /// Gets what the selected remote refs need and this store lacks, verifying every object on
    /// arrival; then creates or fast-forwards local refs (never moving one that diverged).
    public func fetch(revisions: [String] = [], progress: any ProgressSink = SilentProgress()) throws(MVCError) -> FetchReport {
        try checkFormat(create: false)
        let remote = try remoteRefs()
        let selected = try selectRefs(remote.keys.sorted(), revisions: revisions, side: "remote '\(config.name)'")
        var report = FetchReport(remote: config.name, objectsReceived: 0, bytesReceived: 0, refsUpdated: [], diverged: [])
        let has = try remoteIndex()
        // Phase 1: metadata (commits, moves, annotations, trees, chunk lists), object by object.
        // Phase 2: file data (chunks and whole small files), in coalesced ranged reads per pack.
        var batch = repo.newBatch()
        var batchBytes: UInt64 = 0
        var fetched: [ObjectID: (StorageKind, [UInt8])] = [:]   // metadata received this run
        var dataNeeded = Set<ObjectID>()
        var chunkLists: [(ObjectID, ChunkList)] = []
        func store(_ id: ObjectID, _ kind: StorageKind, _ bytes: [UInt8]) throws(MVCError) {
            if kind == .raw { _ = try batch.putRaw(bytes) } else { try batch.putChunkList(id, try ChunkList.decode(bytes, id: id)) }
            report.objectsReceived += 1; report.bytesReceived += UInt64(bytes.count)
            batchBytes += UInt64(bytes.count)
            if batchBytes >= RemoteClient.packLimit {   // keep what arrived if interrupted
                try batch.commit(); batch = repo.newBatch(); batchBytes = 0
            }
        }
        func metadata(_ id: ObjectID) throws(MVCError) -> [UInt8]? {
            if let (_, b) = fetched[id] { return b }
            if try repo.objects.contains(id) { return nil }
            let (kind, bytes) = try fetchRecord(id)
            // Commits, trees, moves and annotations are raw records (FORMAT.md 5.1). A chunk list
            // here would be stored unchecked (V3) and could be committed with the batch.
            guard kind == .raw else {
                throw MVCError(.corruptObject, "remote '\(config.name)' stores \(id.short) as a chunk list where a commit, tree, move or annotation belongs",
                               hint: "nothing was changed; run 'mvc fsck --remote \(config.name)'")
            }
            fetched[id] = (kind, bytes)
            try store(id, kind, bytes)
            return bytes
        }
        enum Want { case any, tree, blob }
        var stack: [(ObjectID, Want)] = selected.compactMap { remote[$0].map { ($0, .any) } }
        var seen = Set<ObjectID>()
        while let (id, want) = stack.popLast() {
            guard seen.insert(id).inserted else { continue }
            switch want {
            case .blob:
                if try repo.objects.contains(id) {
                    // A local chunk list may still lack chunks (e.g. after a mirror import).
                    if let loc = try repo.objects.locate(id), loc.kind == .chunks {
                        for c in try ChunkList.decode(try repo.objects.readRecord(loc, id: id, limit: 1 << 30), id: id).chunks { stack.append((c.id, .blob)) }
                    }
                    continue
                }
                guard let (_, e) = has[id] else { throw .missing(id, "object on remote '\(config.name)'") }
                if e.kind == .chunks {
                    // Stored only once its chunks add up to its id (below): a bad list must not
                    // stick around and be trusted by the next fetch.
                    let (_, bytes) = try fetchRecord(id)
                    let list = try ChunkList.decode(bytes, id: id)
                    chunkLists.append((id, list))
                    for c in list.chunks { stack.append((c.id, .blob)) }
                } else {
                    dataNeeded.insert(id)
                }
            case .tree:
                var bytes = try metadata(id)
                if bytes == nil { bytes = try repo.objects.read(id) }
                for e in try Tree.decode(bytes!, id: id).entries { stack.append((e.id, e.kind == .tree ? .tree : .blob)) }
            case .any:
                var fetchedBytes = try metadata(id)
                if fetchedBytes == nil { fetchedBytes = try repo.objects.read(id) }
                guard let links = try framedLinks(fetchedBytes!, id: id) else {
                    throw MVCError(.corruptObject, "remote ref target \(id.short) is not a commit, move or annotation")
                }
                for l in links { stack.append((l.id, l.isTree ? .tree : .any)) }
            }
        }
        // Phase 2: group by pack, sort by offset, read spans of nearby objects at once.
        var byPack: [String: [Pack.Entry]] = [:]
        for id in dataNeeded { if let (p, e) = has[id] { byPack[p, default: []].append(e) } }
        let total = byPack.values.joined().reduce(UInt64(0)) { $0 + $1.length }
        progress.begin("fetching from \(config.name)", totalBytes: total, totalFiles: dataNeeded.count)
        for (pack, entries) in byPack.sorted(by: { $0.key < $1.key }) {
            let sorted = entries.sorted { $0.offset < $1.offset }
            var i = 0
            while i < sorted.count {
                var j = i + 1
                let start = sorted[i].offset
                var end = sorted[i].offset + sorted[i].length
                while j < sorted.count, sorted[j].offset <= end + (1 << 20), sorted[j].offset + sorted[j].length - start <= 16 << 20 {
                    end = max(end, sorted[j].offset + sorted[j].length); j += 1
                }
                let span = try storage.read(pack, offset: start, length: end - start)
                for e in sorted[i..<j] {
                    let lo = Int(e.offset - start)
                    let (kind, bytes) = try decode(e.id, kind: e.kind, Array(span[lo..<(lo + Int(e.length))]))
                    try store(e.id, kind, bytes)
                    progress.advance(bytes: e.length, path: e.id.short)
                }
                i = j
            }
        }
        progress.end()
        try batch.commit()
        // A chunk list binds its chunks to the blob id only through the whole content: hash the
        // (now stored, verified) chunks in order before storing the list itself.
        let lists = repo.newBatch()
        for (id, list) in chunkLists {
            let whole = SHA256()
            for c in list.chunks { try repo.objects.stream(c.id) { whole.update($0) } }
            guard whole.finalize() == id else {
                throw MVCError(.corruptObject, "remote '\(config.name)' lists chunks for \(id.short) that do not add up to it",
                               hint: "nothing was changed; run 'mvc fsck --remote \(config.name)'")
            }
            try lists.putChunkList(id, list)
            report.objectsReceived += 1
        }
        try lists.commit()

        let actor = repo.identity()   // once: it may ask git for the user
        for name in selected {
            guard let value = remote[name] else { continue }
            try setTracking(name, value, actor: actor)
            let current = try repo.refs.read(name)
            if current == value { continue }
            if let current, try !repo.isAncestor(current, of: value) { report.diverged.append(name); continue }
            try repo.refs.update(name, from: current, to: value, actor: actor, message: "fetch from \(config.name)")
            report.refsUpdated.append(name)
        }
        return report
    }

    /// Verifies every object in the remote's packs (raw by id, chunk lists by checksum) and that
    /// every remote ref names an object the remote has (`mvc fsck --remote`).
    public func fsck(progress: any ProgressSink = SilentProgress()) throws(MVCError) -> FsckReport {
        try checkFormat(create: false)
        var problems: [FsckProblem] = []
        let index = try remoteIndex()
        var byPack: [String: [Pack.Entry]] = [:]
        for (_, v) in index { byPack[v.pack, default: []].append(v.entry) }
        progress.begin("checking remote \(config.name)", totalBytes: index.values.reduce(0) { $0 + $1.entry.length }, totalFiles: index.count)
        for (pack, entries) in byPack.sorted(by: { $0.key < $1.key }) {
            for e in entries.sorted(by: { $0.offset < $1.offset }) {
                do throws(MVCError) {
                    try verify(e.id, kind: e.kind, try storage.read(pack, offset: e.offset, length: e.length))
                } catch {
                    problems.append(FsckProblem(subject: e.id.hex, problem: "\(error.message) (\(pack))"))
                }
                progress.advance(bytes: e.length, path: e.id.short)
            }
        }
        progress.end()
        let refs = try remoteRefs()
        for (name, value) in refs.sorted(by: { $0.key < $1.key }) where index[value] == nil {
            problems.append(FsckProblem(subject: name, problem: "names \(value.hex), which the remote does not have"))
        }
        return FsckReport(objectsChecked: index.count, refsChecked: refs.count, problems: problems)
    }

    /// Re-fetches objects this store lost or holds damaged copies of (`mvc fsck --repair`). The
    /// fetched copy is written loose, which readers find before a damaged packed one.
    public func repair(_ ids: [ObjectID]) throws(MVCError) -> [ObjectID] {
        var done = Set<ObjectID>()
        return try repair(ids, done: &done)
    }

    private func repair(_ ids: [ObjectID], done: inout Set<ObjectID>) throws(MVCError) -> [ObjectID] {
        var repaired: [ObjectID] = []
        let has = try remoteIndex()
        for id in ids where has[id] != nil && done.insert(id).inserted {
            let (kind, bytes) = try fetchRecord(id)
            if kind == .chunks {
                // Its chunks must be sound too; fetch any that are missing or damaged.
                let list = try ChunkList.decode(bytes, id: id)
                for c in list.chunks where (try? repo.objects.read(c.id)) == nil {
                    repaired.append(contentsOf: try repair([c.id], done: &done))
                }
                // As in fetch: a list is stored only once its (verified) chunks add up to its id;
                // checkout trusts a stored list to do so (FORMAT.md V3).
                let whole = SHA256()
                for c in list.chunks { try repo.objects.stream(c.id) { whole.update($0) } }
                guard whole.finalize() == id else {
                    throw MVCError(.corruptObject, "remote '\(config.name)' lists chunks for \(id.short) that do not add up to it",
                                   hint: "nothing was repaired for \(id.short); run 'mvc fsck --remote \(config.name)'")
                }
            }
            let loose = repo.objects.loosePath(id, kind: kind)
            FileIO.unlink(loose)   // a damaged loose copy
            try FileIO.mkdirs(parentPath(loose))
            try FileIO.writeFileAtomically(loose, bytes, sync: true)
            try FileIO.fsyncDirectory(parentPath(loose))
            repaired.append(id)
        }
        return repaired
    }
}

extension Repository {
    /// Is `ancestor` reachable from `descendant` along first parents (commits) or previous links
    /// (moves, annotations)? Only objects in this store are consulted.
    public func isAncestor(_ ancestor: ObjectID, of descendant: ObjectID) throws(MVCError) -> Bool {
        var cursor: ObjectID? = descendant
        while let c = cursor {
            if c == ancestor { return true }
            guard try objects.contains(c) else { return false }
            switch try objects.framedKind(c) {
            case .commit?: cursor = try objects.readCommit(c).parents.first
            case .move?: cursor = try objects.readMove(c).previous
            case .annotation?: cursor = try objects.readAnnotation(c).previous
            default: return false
            }
        }
        return false
    }

    var remotesFile: String { joinPath(storeDirectory, "remotes") }

    public func remotes() throws(MVCError) -> [RemoteConfig] {
        guard let bytes = try FileIO.readSmallFile(remotesFile, limit: 1 << 20) else { return [] }
        var out: [RemoteConfig] = []
        for (n, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            let f = line.split(separator: " ", maxSplits: 1)
            guard f.count == 2 else { throw MVCError(.badConfig, "'\(remotesFile)' line \(n + 1) is not 'NAME URL'", hint: "fix or remove the line") }
            out.append(RemoteConfig(name: String(f[0]), url: String(f[1])))
        }
        return out
    }

    private func saveRemotes(_ remotes: [RemoteConfig]) throws(MVCError) {
        let text = "# mvc remotes: NAME URL\n" + remotes.map { "\($0.name) \($0.url)\n" }.joined()
        try FileIO.writeFileAtomically(remotesFile, Array(text.utf8), sync: true)
    }

    public func addRemote(_ name: String, url: String) throws(MVCError) {
        do throws(MVCError) { try Stages.validate(name) } catch {   // the same simple rule as stage names
            throw MVCError(.invalidName, "invalid remote name '\(name)'", hint: "use lowercase letters, digits, '-' and '_', starting with a letter")
        }
        var all = try remotes()
        if all.contains(where: { $0.name == name }) {
            throw MVCError(.invalidArgument, "remote '\(name)' already exists", hint: "'mvc remote remove \(name)' first")
        }
        do throws(MVCError) { try Names.validateValue(url, what: "remote URL") } catch {
            throw MVCError(.invalidArgument, "invalid remote URL '\(url.escapingControlCharacters)': it contains control characters", hint: "give the URL on one line")
        }
        _ = try Repository.storage(for: url)   // refuse a URL we cannot use now, not at push time
        all.append(RemoteConfig(name: name, url: url))
        try saveRemotes(all)
    }

    public func removeRemote(_ name: String) throws(MVCError) {
        var all = try remotes()
        guard all.contains(where: { $0.name == name }) else { throw MVCError(.unknownRevision, "no remote named '\(name)'", hint: "see 'mvc remote list'") }
        all.removeAll { $0.name == name }
        try saveRemotes(all)
    }

    /// Where a URL points: a directory (`/path`, `file:///path`) or S3 (`s3://bucket/prefix`).
    public static func storage(for url: String) throws(MVCError) -> any RemoteStorage {
        if url.hasPrefix("s3://") { return try S3Storage(url: url) }
        var path = url
        if path.hasPrefix("file://") { path = String(path.dropFirst("file://".count)) }
        guard path.hasPrefix("/") else {
            throw MVCError(.invalidArgument, "unsupported remote URL '\(url)'", hint: "use an absolute directory path, file:///path or s3://bucket/prefix")
        }
        return try DirectoryStorage(path: path, location: url)
    }

    /// A client for the named remote (default: the only one, or `origin`).
    public func remote(_ name: String?) throws(MVCError) -> RemoteClient {
        let all = try remotes()
        let chosen: RemoteConfig?
        if let name { chosen = all.first { $0.name == name } }
        else { chosen = all.count == 1 ? all.first : all.first { $0.name == "origin" } }
        guard let config = chosen else {
            throw MVCError(.unknownRevision, name.map { "no remote named '\($0)'" } ?? "no default remote",
                           hint: all.isEmpty ? "add one: 'mvc remote add origin /path/or/s3://bucket'" : "name one of: \(all.map(\.name).joined(separator: ", "))")
        }
        return RemoteClient(config: config, storage: try Repository.storage(for: config.url), repo: self)
    }
}

