#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization
internal import Dispatch
internal import CMVCCrypto

/// How an object's bytes are stored.
public enum StorageKind: UInt8, Sendable, Codable {
    /// The object's bytes, as they are.
    case raw = 1
    /// A chunk list: the object's bytes are the concatenation of other (raw) objects.
    case chunks = 2
    /// The object's bytes compressed as one zstd frame. Only in packs on remotes: fetch
    /// decompresses (and verifies) before storing locally.
    case zstd = 3
}

/// A chunk list record (storage kind `chunks`): the ids and sizes of the chunks whose
/// concatenation is the object, with a checksum of the record itself.
///
/// Layout: `"MVCCHNK1"`, total size (u64 BE), count (u64 BE), count x (id: 32 bytes, size: u32 BE),
/// then SHA-256 of all the preceding bytes.
struct ChunkList: Equatable, Sendable {
    struct Chunk: Equatable, Sendable {
        var id: ObjectID
        var size: UInt32
    }
    var chunks: [Chunk]
    var totalSize: UInt64 { chunks.reduce(0) { $0 + UInt64($1.size) } }

    static let magic = Array("MVCCHNK1".utf8)

    func encoded() -> [UInt8] {
        var out = ChunkList.magic
        out.appendBE(totalSize)
        out.appendBE(UInt64(chunks.count))
        for c in chunks {
            out.append(contentsOf: c.id.bytes)
            out.appendBE32(c.size)
        }
        out.append(contentsOf: ObjectID.hash(out).bytes)
        return out
    }

    static func decode(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> ChunkList {
        guard bytes.count >= 24 + 32, Array(bytes[0..<8]) == magic else { throw .corrupt(id, "bad chunk list header") }
        let total = bytes.readBE(at: 8), count = bytes.readBE(at: 16)
        guard count <= UInt64(bytes.count), bytes.count == 24 + Int(count) * 36 + 32 else {
            throw .corrupt(id, "chunk list is truncated")
        }
        let sum = ObjectID.hash(Array(bytes[..<(bytes.count - 32)]))
        guard sum.bytes == Array(bytes[(bytes.count - 32)...]) else { throw .corrupt(id, "chunk list checksum mismatch") }
        var chunks: [Chunk] = []
        chunks.reserveCapacity(Int(count))
        var p = 24
        for _ in 0..<count {
            chunks.append(Chunk(id: ObjectID(bytes: bytes[p..<(p + 32)]), size: UInt32(bytes.readBE32(at: p + 32))))
            p += 36
        }
        let list = ChunkList(chunks: chunks)
        guard list.totalSize == total else { throw .corrupt(id, "chunk list sizes do not add up") }
        return list
    }
}

/// A read-only pack: `pack-<name>.pack` holding many objects, found through `pack-<name>.idx`.
///
/// `.pack`: `"MVCPACK1"`, then entries `kind (u8) | id (32) | length (u64 BE) | bytes`.
/// `.idx`: `"MVCIDX01"`, count (u64 BE), fan-out (256 x u32 BE: number of ids whose first byte is
/// <= i), count x (id 32 | kind u8 | offset of the bytes u64 BE | length u64 BE) sorted by id, then
/// SHA-256 of everything before it; `<name>` is that checksum in hex.
///
/// The index is mapped, not read: a lookup touches a few pages of it, so opening a store's packs
/// costs the same whatever their size (a 100 GiB store has ~33 MB of index). Opening checks its
/// header, length, fan-out and that its stored checksum is its name; hashing the whole index is
/// `verifyIndex`, for fsck and gc (FORMAT.md 5.4). Every record read is verified against its id
/// anyway, and an entry pointing outside the pack is reported before it is used. As with git's
/// mapped indexes, another program truncating an index while mvc has it mapped would end mvc with
/// SIGBUS; mvc itself only ever replaces an index by rename, and never writes one in place.
///
/// `@unchecked Sendable`: `index` is a read-only private mapping, unmapped only in `deinit`.
final class Pack: @unchecked Sendable {
    let name: String
    let packPath: String
    let indexPath: String
    private let index: UnsafeRawBufferPointer
    private let fd: Int32
    /// The .pack's size at open (packs never change): every entry must lie within it.
    private let packSize: UInt64
    let count: Int

    static let packMagic = Array("MVCPACK1".utf8)
    static let indexMagic = Array("MVCIDX01".utf8)
    static let entrySize = 49
    static let headerSize = 16 + 256 * 4

    struct Entry: Sendable {
        var id: ObjectID
        var kind: StorageKind
        var offset: UInt64
        var length: UInt64
    }

    init(directory: String, name: String) throws(MVCError) {
        self.name = name
        packPath = joinPath(directory, "pack-\(name).pack")
        indexPath = joinPath(directory, "pack-\(name).idx")
        let map = try Pack.mapIndex(indexPath)
        let unmap = { _ = munmap(UnsafeMutableRawPointer(mutating: map.baseAddress), map.count) }
        do throws(MVCError) {
            count = try Pack.checkMappedIndex(map, name: name, path: indexPath)
        } catch {
            unmap()
            throw error
        }
        fd = open(packPath, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            unmap()
            throw .io("open pack", path: packPath, errno: e)
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let e = errno
            close(fd)
            unmap()
            throw .io("stat pack", path: packPath, errno: e)
        }
        packSize = UInt64(st.st_size)
        index = map
    }

    deinit {
        _ = munmap(UnsafeMutableRawPointer(mutating: index.baseAddress), index.count)
        close(fd)
    }

    /// Maps an index file read-only.
    private static func mapIndex(_ path: String) throws(MVCError) -> UnsafeRawBufferPointer {
        let ifd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if ifd < 0 {
            if errno == ENOENT { throw MVCError(.missingObject, "pack index '\(path)' disappeared", hint: "run 'mvc fsck'") }
            throw .io("open pack index", path: path, errno: errno)
        }
        defer { close(ifd) }
        let st = try FileIO.stat(fd: ifd, path: path)
        guard st.isRegular, st.size >= UInt64(Pack.headerSize + 32), st.size <= 1 << 40 else {
            throw corruptIndex(path, "wrong length")
        }
        guard let p = mmap(nil, Int(st.size), PROT_READ, MAP_PRIVATE, ifd, 0), p != MAP_FAILED else {
            throw .io("map pack index", path: path, errno: errno)
        }
        return UnsafeRawBufferPointer(start: p, count: Int(st.size))
    }

    private static func corruptIndex(_ path: String, _ why: String) -> MVCError {
        MVCError(.corruptObject, "pack index '\(path)' is corrupt: \(why)", hint: "run 'mvc fsck'; move the pack aside if it cannot be read")
    }

    /// An index's magic and length; returns the number of entries.
    private static func checkHeader(_ idx: UnsafeRawBufferPointer, path: String) throws(MVCError) -> Int {
        guard idx.count >= Pack.headerSize + 32, idx.prefix(8).elementsEqual(Pack.indexMagic) else { throw corruptIndex(path, "bad header") }
        let count = idx.readBE(at: 8)
        guard count < UInt64(idx.count), idx.count == Pack.headerSize + Int(count) * Pack.entrySize + 32 else {
            throw corruptIndex(path, "wrong length")
        }
        return Int(count)
    }

    /// Hashes everything before an index's checksum and compares it with the checksum and the name.
    private static func checkChecksum(_ idx: UnsafeRawBufferPointer, name: String, path: String) throws(MVCError) {
        let sum = ObjectID.hash(UnsafeRawBufferPointer(rebasing: idx[..<(idx.count - 32)]))
        guard idx.suffix(32).elementsEqual(sum.bytes), sum.hex == name else { throw corruptIndex(path, "checksum mismatch") }
    }

    /// What opening checks, without hashing: magic, length, a non-decreasing fan-out ending at the
    /// count, and the stored checksum equal to the name. Returns the number of entries.
    private static func checkMappedIndex(_ idx: UnsafeRawBufferPointer, name: String, path: String) throws(MVCError) -> Int {
        let count = try checkHeader(idx, path: path)
        var previous: UInt32 = 0
        for b in 0..<256 {
            let f = idx.readBE32(at: 16 + b * 4)
            guard f >= previous else { throw corruptIndex(path, "fan-out decreases at \(b)") }
            previous = f
        }
        guard UInt64(previous) == UInt64(count) else { throw corruptIndex(path, "fan-out ends at \(previous), not at \(count)") }
        guard let named = ObjectID(hex: name), idx.suffix(32).elementsEqual(named.bytes) else {
            throw corruptIndex(path, "its checksum is not its name")
        }
        return count
    }

    /// Hashes the whole index and compares it with its checksum (fsck, gc).
    func verifyIndex() throws(MVCError) {
        try Pack.checkChecksum(index, name: name, path: indexPath)
    }

    /// Checks an index's header, length and checksum (which is also the pack's name); returns
    /// the number of entries. For indexes read whole (from a remote).
    static func validateIndex(_ idx: [UInt8], name: String, path: String) throws(MVCError) -> Int {
        var result: Result<Int, MVCError> = .success(0)
        idx.withUnsafeBytes { raw in
            result = Result { () throws(MVCError) -> Int in
                let count = try checkHeader(raw, path: path)
                try checkChecksum(raw, name: name, path: path)
                return count
            }
        }
        return try result.get()
    }

    /// Every entry of a validated index.
    static func indexEntries(_ idx: [UInt8]) -> [Entry] {
        let count = Int(idx.readBE(at: 8))
        return (0..<count).map { i in
            let p = Pack.headerSize + i * Pack.entrySize
            return Entry(id: ObjectID(bytes: idx[p..<(p + 32)]), kind: StorageKind(rawValue: idx[p + 32]) ?? .raw,
                         offset: idx.readBE(at: p + 33), length: idx.readBE(at: p + 41))
        }
    }

    func entry(at i: Int) -> Entry {
        let p = Pack.headerSize + i * Pack.entrySize
        return Entry(id: id(at: i), kind: StorageKind(rawValue: index[p + 32]) ?? .raw,
                     offset: index.readBE(at: p + 33), length: index.readBE(at: p + 41))
    }

    /// The id of entry `i`, read as four big-endian words (no array: `find` calls this per step).
    private func id(at i: Int) -> ObjectID {
        let p = Pack.headerSize + i * Pack.entrySize
        return ObjectID(w0: index.readBE(at: p), w1: index.readBE(at: p + 8), w2: index.readBE(at: p + 16), w3: index.readBE(at: p + 24))
    }

    /// Clamped to the count checked at open: the mapping shows the file as it is now.
    private func fanout(_ b: Int) -> Int { b < 0 ? 0 : min(Int(index.readBE32(at: 16 + b * 4)), count) }

    /// Binary search in the fan-out bucket of the id's first byte.
    func find(_ id: ObjectID) -> Entry? {
        var lo = fanout(Int(id.firstByte) - 1), hi = fanout(Int(id.firstByte))
        while lo < hi {
            let mid = (lo + hi) / 2
            let found = self.id(at: mid)
            if found == id { return entry(at: mid) }
            if found < id { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// Ids starting with a hex prefix.
    func ids(withPrefix prefix: String) -> [ObjectID] {
        guard let first = prefixFirstByteRange(prefix) else { return [] }
        var out: [ObjectID] = []
        for i in fanout(Int(first.lowerBound) - 1)..<fanout(Int(first.upperBound)) {
            let e = entry(at: i)
            if e.id.hex.hasPrefix(prefix) { out.append(e.id) }
        }
        return out
    }

    func allEntries() -> [Entry] { (0..<count).map(entry(at:)) }

    func read(_ e: Entry, from: UInt64 = 0, into buffer: UnsafeMutableRawBufferPointer) throws(MVCError) -> Int {
        // The index is not hashed on open: an entry pointing outside the pack is damage, reported
        // as such (before any arithmetic on its numbers could overflow).
        guard e.offset >= UInt64(Pack.packMagic.count + 41), e.offset <= packSize, e.length <= packSize - e.offset, from <= e.length else {
            let (end, overflow) = e.offset.addingReportingOverflow(e.length)
            if !overflow && end > packSize && end - packSize < 1 << 40 {
                throw .corrupt(e.id, "pack '\(packPath)' is truncated, or its index is damaged; run 'mvc fsck'")
            }
            throw .corrupt(e.id, "its entry in '\(indexPath)' points outside the pack; run 'mvc fsck'")
        }
        let want = min(UInt64(buffer.count), e.length - from)
        let n = try FileIO.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(want)]), at: e.offset + from, path: packPath)
        if n < Int(want) { throw .corrupt(e.id, "pack '\(packPath)' is truncated") }
        return n
    }
}

/// `"ab"` -> 0xab...0xab; `"a"` -> 0xa0...0xaf.
func prefixFirstByteRange(_ prefix: String) -> ClosedRange<UInt8>? {
    let u = Array(prefix.utf8)
    guard let h = u.first.flatMap(hexValue) else { return nil }
    if u.count >= 2, let l = hexValue(u[1]) { return (h << 4 | l)...(h << 4 | l) }
    return (h << 4)...(h << 4 | 15)
}

/// Writes one new pack: objects are appended to a temp file; `finish` writes the index, syncs both
/// and renames them into place (pack first, index last: the index makes the pack visible).
final class PackWriter {
    private let directory: String
    private let tmpPack: String
    private let fd: Int32
    private var offset: UInt64 = 0
    private var entries: [ObjectID: Pack.Entry] = [:]
    private var buffer: [UInt8] = []

    private let durable: Bool

    init(directory: String, durable: Bool = true) throws(MVCError) {
        self.directory = directory
        self.durable = durable
        try FileIO.mkdirs(directory)
        tmpPack = joinPath(directory, "tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).pack")
        fd = try FileIO.createExclusive(tmpPack, mode: 0o444)
        try FileIO.writeAll(fd, Pack.packMagic, path: tmpPack)
        offset = UInt64(Pack.packMagic.count)
    }

    deinit {
        flushQueue.sync {}
        close(fd)
        FileIO.unlink(tmpPack)
    }

    func contains(_ id: ObjectID) -> Bool { entries[id] != nil }

    func append(_ id: ObjectID, kind: StorageKind, _ bytes: UnsafeRawBufferPointer) throws(MVCError) {
        if entries[id] != nil { return }
        var header: [UInt8] = [kind.rawValue]
        header.append(contentsOf: id.bytes)
        header.appendBE(UInt64(bytes.count))
        try writeRecord(header, bytes)
        let dataOffset = offset + UInt64(header.count)
        entries[id] = Pack.Entry(id: id, kind: kind, offset: dataOffset, length: UInt64(bytes.count))
        offset = dataOffset + UInt64(bytes.count)
        startWriteback()
    }

    /// Writes a record's header and bytes with one `writev` (a commit appends ~8,000 chunks per
    /// GiB), finishing with plain writes if the kernel takes less than everything.
    private func writeRecord(_ header: [UInt8], _ bytes: UnsafeRawBufferPointer) throws(MVCError) {
        let total = header.count + bytes.count
        let written: Int = header.withUnsafeBytes { h in
            var iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: h.baseAddress), iov_len: h.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)]
            while true {
                let n = writev(fd, &iov, bytes.isEmpty ? 1 : 2)
                if n >= 0 || errno != EINTR { return n }
            }
        }
        if written == total { return }
        if written < 0 { throw .io("write", path: tmpPack, errno: errno) }
        if written < header.count {
            try FileIO.writeAll(fd, Array(header[written...]), path: tmpPack)
            try FileIO.writeAll(fd, bytes, path: tmpPack)
        } else {
            try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[(written - header.count)...]), path: tmpPack)
        }
    }

    /// Starts writing back what was appended so far (Linux `sync_file_range`), every 8 MiB: the
    /// disk works while we hash, and the final fsync has little left to do. The call blocks while
    /// the device's queue is full, and it builds the I/O requests on the calling thread, so it runs
    /// on a queue of its own: measured on a 1 GiB commit, issuing it inline stalled the pipeline
    /// for ~0.15 s. `finish` waits for the queue before its fsync.
    private var writebackFrom: UInt64 = 0
    private let flushQueue = DispatchQueue(label: "mvc.writeback")
    private func startWriteback() {
        guard durable, offset - writebackFrom >= 8 << 20 else { return }
        #if os(Linux)
        let (fd, from, length) = (self.fd, Int64(writebackFrom), Int64(offset - writebackFrom))
        flushQueue.async { _ = mvc_sync_file_range(fd, from, length, UInt32(MVC_SYNC_FILE_RANGE_WRITE)) }
        #endif
        writebackFrom = offset
    }

    /// Allocates room for about `bytes` more on disk ahead of the writes (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`: the size does not change, `finish` gives back what was not used).
    /// Writing into allocated blocks skips ext4's delayed-allocation bookkeeping for every page:
    /// measured on a 1 GiB commit, ~50 ms less system time on the thread that writes the pack.
    /// Best effort: a file system without `fallocate`, or too little free space, just goes without.
    private var reservedTo: UInt64 = 0
    func reserve(_ bytes: UInt64) {
        #if os(Linux)
        guard bytes >= 8 << 20, offset + bytes > reservedTo else { return }
        let from = max(offset, reservedTo)
        // Even a failed call (ENOSPC) may have allocated part of the range: `finish` trims
        // whatever was attempted.
        reservedTo = offset + bytes
        _ = mvc_fallocate(fd, MVC_FALLOC_FL_KEEP_SIZE, Int64(from), Int64(offset + bytes - from))
        #endif
    }

    /// Syncs and publishes the pack; returns its name, or nil when nothing was appended.
    func finish() throws(MVCError) -> String? {
        if entries.isEmpty { return nil }
        let sorted = entries.values.sorted { $0.id < $1.id }
        var idx = Pack.indexMagic
        idx.appendBE(UInt64(sorted.count))
        var fan = [UInt32](repeating: 0, count: 256)
        for e in sorted { fan[Int(e.id.firstByte)] += 1 }
        var running: UInt32 = 0
        for i in 0..<256 { running += fan[i]; idx.appendBE32(running) }
        for e in sorted {
            idx.append(contentsOf: e.id.bytes)
            idx.append(e.kind.rawValue)
            idx.appendBE(e.offset)
            idx.appendBE(e.length)
        }
        let name = ObjectID.hash(idx).hex
        idx.append(contentsOf: ObjectID(hex: name)!.bytes)

        flushQueue.sync {}
        // Give back the blocks reserved past the end (truncating to the same size frees them).
        if reservedTo > offset && ftruncate(fd, off_t(offset)) != 0 { throw .io("truncate", path: tmpPack, errno: errno) }
        if durable { try FileIO.fsync(fd, path: tmpPack) }
        let packPath = joinPath(directory, "pack-\(name).pack")
        let idxPath = joinPath(directory, "pack-\(name).idx")
        try FileIO.rename(tmpPack, packPath)
        try FileIO.writeFileAtomically(idxPath, idx, sync: durable)
        if durable { try FileIO.fsyncDirectory(directory) }
        return name
    }
}

extension Array where Element == UInt8 {
    mutating func appendBE(_ v: UInt64) {
        for s in stride(from: 56, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
    }
    mutating func appendBE32(_ v: UInt32) {
        for s in stride(from: 24, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }
    func readBE(at p: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(self[p + i]) }
        return v
    }
    func readBE32(at p: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(self[p + i]) }
        return v
    }
}

extension UnsafeRawBufferPointer {
    func readBE(at p: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: p, as: UInt64.self)) }
    func readBE32(at p: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: p, as: UInt32.self)) }
}
