import Foundation
import Testing
@testable import MVCCore

// A hostile remote against FORMAT.md V3: checkout verifies each chunk against its own id, so a
// chunk list is trusted to add up to the blob id it is stored under, and every path that stores
// one must check that first. The remote here holds, under a real blob's id, a well-formed chunk
// list (magic, sizes, checksum all valid) of other, sound chunks that the remote also holds.

/// 16K/64K/256K: a 700 KB file is a list of about ten chunks.
private let chunking = ChunkerParameters(min: 16 << 10, avg: 64 << 10, max: 256 << 10)

/// What the planted list names instead of the file's own chunks.
enum ChunkListLie: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// The chunks of another file of the same size (pushed by another store).
    case otherFile
    /// The file's own chunks, in reverse order.
    case reordered
    var testDescription: String { rawValue }
}

/// How the local store's copy of the file's chunk list is damaged before `fsck --repair`.
enum ChunkListDamage: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case flippedLoose, deletedLoose, flippedPacked
    var testDescription: String { rawValue }
}

/// Store `a` has `ds@v1` (`data/x.bin`, blob `x`); store `c` has `other@v1` (`data/z.bin`, as
/// many bytes, other content); both pushed to the directory remote `origin`.
private struct Fixture {
    let a: Store, c: Store
    let remote = TempDir()
    let x: ObjectID, xBytes: [UInt8], xList: ChunkList, zList: ChunkList

    /// `packed`: `ds@v1` also holds a 600 KB file, so its commit is one pack (over 1 MiB), not
    /// loose files.
    init(packed: Bool) throws {
        a = try Store(chunking: chunking)
        c = try Store(chunking: chunking)
        xBytes = noise(700_000, seed: 11)
        var files = ["data/x.bin": xBytes]
        if packed { files["data/pad.bin"] = noise(600_000, seed: 12) }
        let rx = try a.commit("ds", files)
        x = try #require(try a.repo.files(ofTree: rx.tree).first { $0.path == "data/x.bin" }).id
        xList = try Self.chunkList(a.repo, x)
        switch try #require(try a.repo.objects.locate(x)) {
        case .loose(_, let kind, _): #expect(!packed && kind == .chunks)
        case .packed(_, let e): #expect(packed && e.kind == .chunks)
        }
        let rz = try c.commit("other", ["data/z.bin": noise(700_000, seed: 13)])
        let z = try #require(try c.repo.files(ofTree: rz.tree).first).id
        zList = try Self.chunkList(c.repo, z)
        #expect(xList.chunks.count >= 2 && zList.chunks.count >= 2)
        #expect(xList.totalSize == zList.totalSize && x != z)
        for s in [a, c] {
            try s.repo.addRemote("origin", url: remote.path)
            _ = try s.repo.remote(nil).push()
        }
    }

    static func chunkList(_ repo: Repository, _ id: ObjectID) throws -> ChunkList {
        try repo.objects.chunkList(id, at: try #require(try repo.objects.locate(id)))
    }

    func lie(_ lie: ChunkListLie) -> ChunkList {
        switch lie {
        case .otherFile: return zList
        case .reordered: return ChunkList(chunks: xList.chunks.reversed())
        }
    }

    /// Rewrites the remote pack that holds `x` with `list` as `x`'s record, every other record as
    /// it was; the new pack replaces the old one (index deleted first, as `gc --remote` does).
    func plant(_ list: ChunkList) throws {
        let dir = remote.path + "/packs"
        var planted = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasPrefix("pack-") && file.hasSuffix(".idx") {
            let name = String(file.dropFirst("pack-".count).dropLast(".idx".count))
            let pack = try Pack(directory: dir, name: name)
            guard pack.find(x) != nil else { continue }
            let staging = TempDir()
            let writer = try PackWriter(directory: staging.path, durable: false)
            for e in pack.allEntries() {
                var bytes = [UInt8](repeating: 0, count: Int(e.length))
                if e.id == x {
                    bytes = list.encoded()
                } else {
                    _ = try bytes.withUnsafeMutableBytes { try pack.read(e, into: $0) }
                }
                try bytes.withUnsafeBytes { try writer.append(e.id, kind: e.id == x ? .chunks : e.kind, $0) }
            }
            // The index holds ids, kinds, offsets and lengths only: a list of the same length
            // gives the same pack name, so the new files replace the old ones.
            let newName = try #require(try writer.finish())
            try FileManager.default.removeItem(atPath: "\(dir)/pack-\(name).idx")
            try FileManager.default.removeItem(atPath: "\(dir)/pack-\(name).pack")
            for ext in ["pack", "idx"] {
                try FileManager.default.moveItem(atPath: "\(staging.path)/pack-\(newName).\(ext)", toPath: "\(dir)/pack-\(newName).\(ext)")
            }
            planted += 1
        }
        #expect(planted == 1, "x should be in exactly one remote pack")
        // The record is well-formed: fsck --remote (which checks chunk lists by their checksum)
        // finds nothing, only the whole-content hash tells.
        let check = try Repository.open(at: c.dir.path).remote(nil).fsck()
        #expect(check.ok, "\(check.problems)")
    }

    /// Damages store `a`'s copy of `x`'s chunk list.
    func damage(_ damage: ChunkListDamage) throws {
        switch (damage, try #require(try a.repo.objects.locate(x))) {
        case (.flippedLoose, .loose(let path, .chunks, _)):
            try flip(path, at: 40)   // in the first chunk's id: the checksum no longer matches
        case (.deletedLoose, .loose(let path, .chunks, _)):
            try FileManager.default.removeItem(atPath: path)
        case (.flippedPacked, .packed(let pack, let e)):
            try flip(pack.packPath, at: Int(e.offset) + 40)
        case (let d, let loc):
            Issue.record("cannot apply \(d) to \(loc)")
        }
    }

    private func flip(_ path: String, at offset: Int) throws {
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        bytes[offset] ^= 0x40
        chmod(path, 0o644)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// Every record the store holds for `id`, where and (for loose files) with which bytes.
private func records(_ repo: Repository, _ id: ObjectID) throws -> [String] {
    try repo.objects.allRecords().filter { $0.0 == id }.map { record -> String in
        switch record.1 {
        case .loose(let path, let kind, let size):
            let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
            return "loose \(path) \(kind) \(size) \(ObjectID.hash(bytes).hex)"
        case .packed(let pack, let e):
            return "packed \(pack.name) \(e.kind) \(e.offset) \(e.length)"
        }
    }
}

@Suite("Remotes: a well-formed chunk list whose chunks do not add up to its id")
struct RemoteChunkListTests {
    @Test("fsck --repair refuses it: nothing written, nothing reported repaired, the damage still reported",
          arguments: ChunkListDamage.allCases, ChunkListLie.allCases)
    func repairRefuses(damage: ChunkListDamage, lie: ChunkListLie) throws {
        let f = try Fixture(packed: damage == .flippedPacked)
        try f.plant(f.lie(lie))
        try f.damage(damage)
        let store = try Repository.open(at: f.a.dir.path)
        let broken = try store.fsck()
        #expect(broken.problems.contains { $0.subject == f.x.hex }, "\(broken.problems)")
        let before = try records(store, f.x)
        #expect(before.isEmpty == (damage == .deletedLoose))

        var repaired: [ObjectID]?
        let error = #expect(throws: MVCError.self) {
            repaired = try store.remote(nil).repair(broken.problems.compactMap { ObjectID(hex: $0.subject) })
        }
        #expect(repaired == nil)
        #expect(error?.code == .corruptObject)
        #expect(error?.message == "remote 'origin' lists chunks for \(f.x.short) that do not add up to it")

        let after = try Repository.open(at: f.a.dir.path)
        #expect(try records(after, f.x) == before, "the bad list must not be stored")
        #expect(try after.fsck().problems.contains { $0.subject == f.x.hex }, "fsck still reports the damage")
        let out = TempDir()
        #expect(throws: MVCError.self) { try after.checkout("ds@v1", into: out.path + "/co") }
        #expect(out.read("co/data/x.bin") == nil)
    }

    @Test("fetch refuses it: the fetch fails, again on retry, leaving no chunk list and no ref",
          arguments: ChunkListLie.allCases)
    func fetchRefuses(lie: ChunkListLie) throws {
        let f = try Fixture(packed: false)
        try f.plant(f.lie(lie))
        let b = try Store(chunking: chunking)
        try b.repo.addRemote("origin", url: f.remote.path)
        for _ in 1...2 {   // a failed fetch must not leave the list "already stored" for the next one
            let error = #expect(throws: MVCError.self) { try Repository.open(at: b.dir.path).remote(nil).fetch(revisions: ["ds"]) }
            #expect(error?.code == .corruptObject)
            #expect(error?.message == "remote 'origin' lists chunks for \(f.x.short) that do not add up to it")
        }
        let fresh = try Repository.open(at: b.dir.path)
        #expect(try records(fresh, f.x).isEmpty)
        #expect(try fresh.objects.ids(withPrefix: f.x.hex).isEmpty)
        #expect(try fresh.refs.read("refs/artifacts/ds") == nil)
        #expect(try fresh.refs.read("refs/remotes/origin/artifacts/ds") == nil)
        let out = TempDir()
        #expect(throws: MVCError.self) { try fresh.checkout("ds@v1", into: out.path + "/co") }
        #expect(out.read("co/data/x.bin") == nil)
    }

    @Test("fetch refuses a chunk list where a commit belongs, and stores nothing for it")
    func chunkListAsCommit() throws {
        let f = try Fixture(packed: false)
        // A remote ref naming x, which the remote holds (honestly) as a chunk list.
        f.remote.write("refs/artifacts/evil", f.x.hex + "\n")
        let b = try Store(chunking: chunking)
        try b.repo.addRemote("origin", url: f.remote.path)
        let error = #expect(throws: MVCError.self) { try b.repo.remote(nil).fetch(revisions: ["evil"]) }
        #expect(error?.code == .corruptObject)
        #expect(error?.message == "remote 'origin' stores \(f.x.short) as a chunk list where a commit, tree, move or annotation belongs")
        let fresh = try Repository.open(at: b.dir.path)
        #expect(try records(fresh, f.x).isEmpty)
        #expect(try fresh.refs.read("refs/artifacts/evil") == nil)
    }

    @Test("control: with the honest remote, repair and fetch succeed and check out the exact bytes",
          arguments: ChunkListDamage.allCases)
    func honestRemote(damage: ChunkListDamage) throws {
        let f = try Fixture(packed: damage == .flippedPacked)
        try f.damage(damage)
        let store = try Repository.open(at: f.a.dir.path)
        let broken = try store.fsck()
        #expect(broken.problems.contains { $0.subject == f.x.hex }, "\(broken.problems)")
        let repaired = try store.remote(nil).repair(broken.problems.compactMap { ObjectID(hex: $0.subject) })
        #expect(repaired.contains(f.x))
        let after = try Repository.open(at: f.a.dir.path)
        let check = try after.fsck()
        #expect(check.ok, "\(check.problems)")
        let out = TempDir()
        _ = try after.checkout("ds@v1", into: out.path + "/co")
        #expect(out.read("co/data/x.bin") == f.xBytes)

        let b = try Store(chunking: chunking)
        try b.repo.addRemote("origin", url: f.remote.path)
        let fetched = try b.repo.remote(nil).fetch(revisions: ["ds"])
        #expect(fetched.refsUpdated == ["refs/artifacts/ds"])
        let fresh = try Repository.open(at: b.dir.path)
        #expect(try fresh.fsck().ok)
        _ = try fresh.checkout("ds@v1", into: out.path + "/fetched")
        #expect(out.read("fetched/data/x.bin") == f.xBytes)
    }
}
