#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// The content-addressed object store under `.mvc/objects`.
///
/// Every object is a byte string named by its SHA-256. It is stored either loose
/// (`objects/ab/<62 hex>` holding the bytes; `objects/ab/<62 hex>.chunks` holding a chunk list) or
/// in a pack (`objects/pack/pack-*.{pack,idx}`). Reads verify ids: a mismatch is corruption.
public final class ObjectStore: Sendable {
    public let directory: String
    let packDirectory: String
    /// The packs as last listed, with the pack directory's mtime then and when the listing was made.
    private struct PackList {
        var packs: [Pack]
        var directoryMtime: Int64
        var listedAt: Int64
    }
    private let packs = Mutex<PackList?>(nil)
    /// Objects read so far (whole reads and streams): lets tests count work instead of time.
    let readCount = Atomic<Int>(0)
    private let freshenedPacks = Mutex<Set<String>>([])

    /// fsync objects before refs may point at them (`core.fsync`).
    let durable: Bool

    init(directory: String, durable: Bool = true) {
        self.directory = directory
        self.durable = durable
        packDirectory = joinPath(directory, "pack")
    }

    enum Location {
        case loose(path: String, kind: StorageKind, size: UInt64)
        case packed(Pack, Pack.Entry)

        var kind: StorageKind {
            switch self {
            case .loose(_, let k, _): return k
            case .packed(_, let e): return e.kind
            }
        }
        var storedSize: UInt64 {
            switch self {
            case .loose(_, _, let s): return s
            case .packed(_, let e): return e.length
            }
        }
    }

    func loosePath(_ id: ObjectID, kind: StorageKind) -> String {
        let hex = id.hex
        let base = joinPath(joinPath(directory, String(hex.prefix(2))), String(hex.dropFirst(2)))
        return kind == .raw ? base : base + ".chunks"
    }

    /// The packs, listed once and then again only when `refreshPacks` sees the directory change.
    func loadedPacks() throws(MVCError) -> [Pack] {
        if let p = packs.withLock({ $0 }) { return p.packs }
        return try refreshPacks(force: true)
    }

    /// Re-lists the pack directory when it may have changed since the last listing (another process
    /// published a pack), keeping packs already open. Returns the current packs.
    @discardableResult
    func refreshPacks(force: Bool = false) throws(MVCError) -> [Pack] {
        let current = packs.withLock { $0 }
        let mtime = try FileIO.lstat(packDirectory)?.mtimeNanos ?? 0
        if !force, let current, current.directoryMtime == mtime,
           mtime < current.listedAt - StatCache.racyWindow {   // an unchanged mtime proves nothing within a tick
            return current.packs
        }
        let listedAt = StatCache.now()
        var byName: [String: Pack] = [:]
        for p in current?.packs ?? [] { byName[p.name] = p }
        var loaded: [Pack] = []
        for file in (try FileIO.listDirectory(packDirectory) ?? []).sorted() where file.hasPrefix("pack-") && file.hasSuffix(".idx") {
            let name = String(file.dropFirst(5).dropLast(4))
            if let open = byName[name] { loaded.append(open) } else { loaded.append(try Pack(directory: packDirectory, name: name)) }
        }
        packs.withLock { $0 = PackList(packs: loaded, directoryMtime: mtime, listedAt: listedAt) }
        return loaded
    }

    /// Where an object is stored. On a miss, `refresh` re-lists the packs if the directory changed,
    /// so a long-lived store sees packs that other processes published since.
    ///
    /// Reads look at loose files first: a sound loose copy shadows a damaged packed one (as
    /// `fsck --repair` leaves them). Presence checks (`packsFirst`) look in the pack indexes first,
    /// which are in memory, and probe the two loose paths (two `lstat`s) only on a miss there: a
    /// re-commit of many unchanged files asks for each of them.
    func locate(_ id: ObjectID, refresh: Bool = true, packsFirst: Bool = false) throws(MVCError) -> Location? {
        if packsFirst, let found = try findPacked(id) { return found }
        for kind in [StorageKind.raw, .chunks] {
            let path = loosePath(id, kind: kind)
            if let st = try FileIO.lstat(path), st.isRegular { return .loose(path: path, kind: kind, size: st.size) }
        }
        if !packsFirst, let found = try findPacked(id) { return found }
        if refresh {
            let before = try loadedPacks().count
            let now = try refreshPacks()
            if now.count != before { return try locate(id, refresh: false, packsFirst: packsFirst) }
        }
        return nil
    }

    private func findPacked(_ id: ObjectID) throws(MVCError) -> Location? {
        for pack in try loadedPacks() {
            if let e = pack.find(id) { return .packed(pack, e) }
        }
        return nil
    }

    /// True if the object is stored. `refresh: false` skips re-listing packs on a miss (dedup
    /// checks while writing, where a miss only costs a duplicate copy).
    public func contains(_ id: ObjectID, refresh: Bool = true) throws(MVCError) -> Bool {
        try locate(id, refresh: refresh, packsFirst: true) != nil
    }

    /// Reads a stored record's bytes (a raw object or a chunk list), unverified.
    func readRecord(_ loc: Location, id: ObjectID, limit: Int) throws(MVCError) -> [UInt8] {
        guard loc.storedSize <= UInt64(limit) else {
            throw MVCError(.invalidArgument, "object \(id.short) is \(loc.storedSize) bytes, too large to read into memory")
        }
        switch loc {
        case .loose(let path, _, _):
            guard let bytes = try FileIO.readSmallFile(path, limit: limit) else { throw .missing(id) }
            return bytes
        case .packed(let pack, let e):
            return try withFreshBuffer(count: Int(e.length)) { (b) throws(MVCError) -> Int in try pack.read(e, into: b) }
        }
    }

    /// Reads a whole small object (tree, commit, small file) and verifies its id.
    public func read(_ id: ObjectID, limit: Int = 64 << 20) throws(MVCError) -> [UInt8] {
        readCount.add(1, ordering: .relaxed)
        guard let loc = try locate(id) else { throw .missing(id) }
        if loc.kind == .raw {
            let bytes = try readRecord(loc, id: id, limit: limit)
            guard ObjectID.hash(bytes) == id else { throw .corrupt(id, "content does not match its id") }
            return bytes
        }
        var out: [UInt8] = []
        try stream(id, location: loc) { (piece) throws(MVCError) in
            out.append(contentsOf: piece)
            if out.count > limit { throw MVCError(.invalidArgument, "object \(id.short) is too large to read into memory") }
        }
        return out
    }

    public func readTree(_ id: ObjectID) throws(MVCError) -> Tree { try Tree.decode(try read(id), id: id) }

    public func readCommit(_ id: ObjectID) throws(MVCError) -> Commit { try Commit.decode(try read(id), id: id) }

    /// Size in bytes of the object's content, without reading it (reads a chunk list's header).
    public func size(of id: ObjectID) throws(MVCError) -> UInt64 {
        guard let loc = try locate(id) else { throw .missing(id) }
        if loc.kind == .raw { return loc.storedSize }
        return try ChunkList.decode(try readRecord(loc, id: id, limit: 1 << 30), id: id).totalSize
    }

    /// The kind of a framed object, nil for a blob (or any unframed bytes).
    public func framedKind(_ id: ObjectID) throws(MVCError) -> ObjectKind? {
        guard let loc = try locate(id) else { throw .missing(id) }
        guard loc.kind == .raw, loc.storedSize < 1 << 26 else { return nil }
        return Framing.peekKind(try readRecord(loc, id: id, limit: 1 << 26))
    }

    /// Streams an object's content in pieces of at most 1 MiB. A chunk list is checked against its
    /// checksum; then either each chunk is verified against its own id before it is passed on, or,
    /// with `verifyWhole` (fsck), the SHA-256 of the whole content is checked against the object's
    /// id instead (one hash pass, and the only check that binds the list to the id). The last check
    /// happens after the last piece, so callers that publish the bytes write them to a temp file
    /// and publish it only when `stream` returns. (Checkout copies and verifies chunks its own way:
    /// `CheckoutWriter`.)
    public func stream(_ id: ObjectID, verifyWhole: Bool = false,
                       _ body: (UnsafeRawBufferPointer) throws(MVCError) -> Void) throws(MVCError) {
        guard let loc = try locate(id) else { throw .missing(id) }
        try stream(id, location: loc, verifyWhole: verifyWhole, body)
    }

    func stream(_ id: ObjectID, location loc: Location, verifyWhole: Bool = false,
                        _ body: (UnsafeRawBufferPointer) throws(MVCError) -> Void) throws(MVCError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        switch loc.kind {
        case .zstd:
            throw .corrupt(id, "a compressed record (remote packs only) is in the local store")
        case .raw:
            try streamRaw(id, loc, buffer: buffer, body)
        case .chunks:
            let list = try ChunkList.decode(try readRecord(loc, id: id, limit: 1 << 30), id: id)
            let whole = verifyWhole ? SHA256() : nil
            for c in list.chunks {
                let cl = try chunkLocation(c.id, size: UInt64(c.size))
                // With the whole content checked against the id, hashing each chunk again would
                // only double the work: any damaged chunk changes the whole hash.
                try streamRaw(c.id, cl, buffer: buffer, verify: whole == nil) { (piece) throws(MVCError) in
                    whole?.update(piece)
                    try body(piece)
                }
            }
            if let whole, whole.finalize() != id { throw .corrupt(id, "chunks do not add up to the object's id") }
        }
    }

    /// A chunk list record, checked against its checksum (FORMAT.md 5.2).
    func chunkList(_ id: ObjectID, at loc: Location) throws(MVCError) -> ChunkList {
        try ChunkList.decode(try readRecord(loc, id: id, limit: 1 << 30), id: id)
    }

    /// Where a listed chunk is stored: a raw record of exactly its listed size, or an error.
    func chunkLocation(_ id: ObjectID, size: UInt64) throws(MVCError) -> Location {
        guard let loc = try locate(id) else { throw .missing(id, "chunk") }
        guard loc.kind == .raw, loc.storedSize == size else {
            throw .corrupt(id, "chunk is \(loc.storedSize) bytes, its list says \(size)")
        }
        return loc
    }

    /// Raw objects up to 1 MiB (every chunk) are read whole and verified before `body` sees them.
    private func streamRaw(_ id: ObjectID, _ loc: Location, buffer: UnsafeMutableRawBufferPointer, verify: Bool = true,
                           _ body: (UnsafeRawBufferPointer) throws(MVCError) -> Void) throws(MVCError) {
        let hasher = SHA256()
        var remaining = loc.storedSize
        var position: UInt64 = 0
        var fd: Int32 = -1
        if case .loose(let path, _, _) = loc { fd = try FileIO.openRead(path) }
        defer { if fd >= 0 { close(fd) } }
        var pieces = 0
        while remaining > 0 || pieces == 0 {
            let want = Int(min(UInt64(buffer.count), remaining))
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
            let n: Int
            switch loc {
            case .loose(let path, _, _): n = try FileIO.readFully(fd, into: piece, path: path)
            case .packed(let pack, let e): n = want == 0 ? 0 : try pack.read(e, from: position, into: piece)
            }
            guard n == want else { throw .corrupt(id, "object is truncated") }
            if verify { hasher.update(UnsafeRawBufferPointer(piece)) }
            remaining -= UInt64(n); position += UInt64(n); pieces += 1
            if verify && remaining == 0 && hasher.finalize() != id { throw .corrupt(id, "content does not match its id") }
            try body(UnsafeRawBufferPointer(piece))
            if remaining == 0 { break }
        }
    }

    /// Every object id with the given hex prefix (at least one digit), loose and packed.
    public func ids(withPrefix prefix: String) throws(MVCError) -> [ObjectID] {
        let prefix = prefix.lowercased()
        var out = Set<ObjectID>()
        if prefix.count >= 2 {
            let shard = joinPath(directory, String(prefix.prefix(2)))
            for name in try FileIO.listDirectory(shard) ?? [] {
                let hex = String(prefix.prefix(2)) + (name.hasSuffix(".chunks") ? String(name.dropLast(7)) : name)
                if hex.hasPrefix(prefix), let id = ObjectID(hex: hex) { out.insert(id) }
            }
        }
        for pack in try loadedPacks() { out.formUnion(pack.ids(withPrefix: prefix)) }
        return out.sorted()
    }

    /// Every stored record: (id, how it is stored, where), loose first then packs.
    func allRecords() throws(MVCError) -> [(ObjectID, Location)] {
        var out: [(ObjectID, Location)] = []
        for shard in (try FileIO.listDirectory(directory) ?? []).sorted() where shard.count == 2 && isHexString(shard) {
            for name in (try FileIO.listDirectory(joinPath(directory, shard)) ?? []).sorted() {
                let isChunks = name.hasSuffix(".chunks")
                guard let id = ObjectID(hex: shard + (isChunks ? String(name.dropLast(7)) : name)) else { continue }
                let path = joinPath(joinPath(directory, shard), name)
                guard let st = try FileIO.lstat(path), st.isRegular else { continue }
                out.append((id, .loose(path: path, kind: isChunks ? .chunks : .raw, size: st.size)))
            }
        }
        for pack in try loadedPacks() {
            for e in pack.allEntries() { out.append((e.id, .packed(pack, e))) }
        }
        return out
    }

    /// Sets the mtime of the file holding an object to now (see `ObjectBatch.contains`). Packs are
    /// freshened at most once per process.
    func freshen(_ loc: Location) {
        let path: String
        switch loc {
        case .loose(let p, _, _): path = p
        case .packed(let pack, _):
            guard freshenedPacks.withLock({ $0.insert(pack.name).inserted }) else { return }
            path = pack.packPath
        }
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Writes one loose record (temp file + rename) unless the object is stored; returns the path
    /// written. Not synced: the caller syncs the files and their directories together.
    func writeLoose(_ id: ObjectID, _ bytes: [UInt8], kind: StorageKind = .raw) throws(MVCError) -> String? {
        if try contains(id, refresh: false) { return nil }
        let path = loosePath(id, kind: kind)
        try FileIO.mkdirs(parentPath(path))
        try FileIO.writeFileAtomically(path, bytes, sync: false)
        return path
    }
}

/// The objects of one operation (a commit, a stage move), made durable together with one sync
/// before any ref points at them.
///
/// Small batches (a config file, a stage move: a few objects, under 1 MiB) are written as loose
/// files; a batch that grows past `looseLimit` objects or bytes becomes one new pack. So the number
/// of packs grows with large commits only, and lookups stay cheap.
public final class ObjectBatch {
    let store: ObjectStore
    private var writer: PackWriter?
    private var pending: [(id: ObjectID, kind: StorageKind, bytes: [UInt8])] = []
    private var pendingIndex: [ObjectID: Int] = [:]
    private var pendingBytes = 0
    private(set) var newBytes: UInt64 = 0

    static let looseLimit = (objects: 64, bytes: 1 << 20)

    init(store: ObjectStore) { self.store = store }

    /// Bytes the operation expects to add (files about to be stored), so that a pack can reserve
    /// its blocks ahead (`PackWriter.reserve`); a hint, never a limit.
    private var expected: UInt64 = 0
    func expect(_ bytes: UInt64) {
        expected += bytes
        writer?.reserve(bytes)
    }

    private func packWriter() throws(MVCError) -> PackWriter {
        if let writer { return writer }
        let w = try PackWriter(directory: store.packDirectory, durable: store.durable)
        w.reserve(expected)
        for p in pending {
            var failure: MVCError?
            p.bytes.withUnsafeBytes { b in
                do throws(MVCError) { try w.append(p.id, kind: p.kind, b) } catch { failure = error }
            }
            if let failure { throw failure }
        }
        pending = []; pendingIndex = [:]; pendingBytes = 0
        writer = w
        return w
    }

    /// True if the store or this batch already holds the object. An object found in the store is
    /// "freshened" (its file's mtime set to now, as git does), so a concurrent gc keeps it for a
    /// whole grace period: this operation is about to make it reachable again.
    func contains(_ id: ObjectID) throws(MVCError) -> Bool {
        if writer?.contains(id) == true || pendingIndex[id] != nil { return true }
        // Found in a pack, the pack is freshened even if a loose copy exists too: gc keeps every
        // id a recent file holds (recent roots are ids), so either copy keeps the object alive.
        guard let loc = try store.locate(id, refresh: false, packsFirst: true) else { return false }
        store.freshen(loc)
        return true
    }

    private func add(_ id: ObjectID, kind: StorageKind, _ bytes: UnsafeRawBufferPointer) throws(MVCError) {
        if writer == nil && pending.count < ObjectBatch.looseLimit.objects && pendingBytes + bytes.count <= ObjectBatch.looseLimit.bytes {
            pendingIndex[id] = pending.count
            pending.append((id, kind, Array(bytes)))
            pendingBytes += bytes.count
        } else {
            try packWriter().append(id, kind: kind, bytes)
        }
        newBytes += UInt64(bytes.count)
    }

    /// Adds a raw object unless it is already stored.
    func putRaw(_ id: ObjectID, _ bytes: UnsafeRawBufferPointer) throws(MVCError) {
        if try contains(id) { return }
        try add(id, kind: .raw, bytes)
    }

    package func putRaw(_ bytes: [UInt8]) throws(MVCError) -> ObjectID {
        let id = ObjectID.hash(bytes)
        var failure: MVCError?
        bytes.withUnsafeBytes { b in
            do throws(MVCError) { try putRaw(id, b) } catch { failure = error }
        }
        if let failure { throw failure }
        return id
    }

    func putChunkList(_ id: ObjectID, _ list: ChunkList) throws(MVCError) {
        if try contains(id) { return }
        let bytes = list.encoded()
        var failure: MVCError?
        bytes.withUnsafeBytes { b in
            do throws(MVCError) { try add(id, kind: .chunks, b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public func put(_ tree: Tree) throws(MVCError) -> ObjectID { try putRaw(tree.encoded()) }
    public func put(_ commit: Commit) throws(MVCError) -> ObjectID { try putRaw(commit.encoded()) }

    /// Makes every object durable: the pack (fsync of pack, index and directory), or each loose
    /// file and then each directory it went into. After this returns, a ref may point at them.
    public func commit() throws(MVCError) {
        if let w = writer {
            _ = try w.finish()
            writer = nil
            try store.refreshPacks(force: true)
            return
        }
        var directories = Set<String>()
        var written: [(fd: Int32, path: String)] = []
        defer { for f in written { close(f.fd) } }
        for p in pending {
            guard let path = try store.writeLoose(p.id, p.bytes, kind: p.kind) else { continue }
            if store.durable {
                written.append((try FileIO.openRead(path), path))
                directories.insert(parentPath(path))
            }
        }
        // The files, then the directories they went into, each round in parallel.
        try FileIO.fsyncAll(files: written)
        if !directories.isEmpty { try FileIO.fsyncAll(directories: directories.sorted() + [store.directory]) }
        pending = []; pendingIndex = [:]; pendingBytes = 0
    }
}
