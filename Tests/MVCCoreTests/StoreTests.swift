import Foundation
import Testing
@testable import MVCCore

@Suite("Object store: packs, loose objects, chunk lists")
struct StoreTests {
    @Test("a large batch becomes a pack whose objects read back verified, by id and by prefix")
    func packRoundTrip() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let batch = repo.newBatch()
        var ids: [ObjectID] = []
        for i in 0..<(ObjectBatch.looseLimit.objects + 10) { ids.append(try batch.putRaw(noise(100 + i, seed: UInt64(i + 1)))) }
        #expect(try !repo.objects.contains(ids[0]), "objects are invisible until the batch commits")
        try batch.commit()
        for (i, id) in ids.enumerated() {
            #expect(try repo.objects.read(id) == noise(100 + i, seed: UInt64(i + 1)))
            #expect(try repo.objects.ids(withPrefix: String(id.hex.prefix(10))) == [id])
        }
        let packs = try FileManager.default.contentsOfDirectory(atPath: repo.objects.packDirectory)
        #expect(packs.filter { $0.hasSuffix(".pack") }.count == 1)
        #expect(packs.filter { $0.hasPrefix("tmp-") }.isEmpty)
    }

    @Test("a small batch is written as loose objects, not a pack")
    func smallBatchIsLoose() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let batch = repo.newBatch()
        let ids = try (0..<3).map { (i: Int) throws -> ObjectID in try batch.putRaw(noise(50, seed: UInt64(i + 1))) }
        try batch.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.objects.packDirectory).isEmpty)
        for id in ids {
            #expect(FileManager.default.fileExists(atPath: repo.objects.loosePath(id, kind: .raw)))
            #expect(try repo.objects.read(id).count == 50)
        }
    }

    @Test("an abandoned batch leaves no pack and no temp file")
    func abandonedBatch() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        do {
            let batch = repo.newBatch()
            _ = try batch.putRaw(noise(10, seed: 3))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo.objects.packDirectory).isEmpty)
    }

    @Test("a flipped byte in a pack is reported as corruption naming the object")
    func corruptPack() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let batch = repo.newBatch()
        let id = try batch.putRaw(Array("hello, weights".utf8))
        for i in 0..<ObjectBatch.looseLimit.objects { _ = try batch.putRaw(noise(64 + i, seed: 7)) }   // enough for a pack
        try batch.commit()
        let pack = try #require(try FileManager.default.contentsOfDirectory(atPath: repo.objects.packDirectory).first { $0.hasSuffix(".pack") })
        let path = repo.objects.packDirectory + "/" + pack
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let entry = try #require(try repo.objects.loadedPacks().first?.find(id))
        bytes[Int(entry.offset)] ^= 0x01
        chmod(path, 0o644)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let fresh = try Repository.open(at: dir.path)
        let error = #expect(throws: MVCError.self) { try fresh.objects.read(id) }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains(id.hex) == true)
        #expect(try !fresh.fsck().ok)
    }

    @Test("loose objects are read and verified too")
    func looseObjects() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let bytes = Array("a loose object".utf8)
        let id = ObjectID.hash(bytes)
        let path = try repo.objects.writeLoose(id, bytes)!
        #expect(path.hasSuffix(String(id.hex.dropFirst(2))))
        #expect(try repo.objects.read(id) == bytes)
        #expect(try repo.objects.ids(withPrefix: String(id.hex.prefix(6))) == [id])
        _ = FileManager.default.createFile(atPath: path, contents: Data("a lose object".utf8))
        #expect(throws: MVCError.self) { try repo.objects.read(id) }
    }

    @Test("chunk lists: encoding round trip; checksum catches a flipped bit")
    func chunkList() throws {
        let list = ChunkList(chunks: [.init(id: ObjectID.hash([1]), size: 10), .init(id: ObjectID.hash([2]), size: 20)])
        let id = ObjectID.hash([9])
        var bytes = list.encoded()
        #expect(try ChunkList.decode(bytes, id: id) == list)
        bytes[30] ^= 0x80
        #expect(throws: MVCError.self) { try ChunkList.decode(bytes, id: id) }
        #expect(throws: MVCError.self) { try ChunkList.decode(Array(list.encoded().dropLast(5)), id: id) }
    }

    @Test("a multi-chunk file is stored as chunks and streams back byte-exact")
    func multiChunkBlob() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path, chunking: smallChunks)
        let content = noise(200_000, seed: 11)
        dir.write("model.bin", content)
        let result = try repo.commit(CommitRequest(paths: ["model.bin"], name: "m", kind: .model, baseDirectory: dir.path))
        let files = try repo.files(ofTree: result.tree)
        #expect(files.count == 1)
        #expect(files[0].id == ObjectID.hash(content))
        guard case .chunks? = try repo.objects.locate(files[0].id)?.kind else {
            Issue.record("expected a chunk list"); return
        }
        var back: [UInt8] = []
        try repo.objects.stream(files[0].id, verifyWhole: true) { back.append(contentsOf: $0) }
        #expect(back == content)

        // An edit near the start re-uses most chunks.
        var edited = content
        edited.replaceSubrange(1000..<1000, with: noise(500, seed: 12))
        dir.write("model.bin", edited)
        let v2 = try repo.commit(CommitRequest(paths: ["model.bin"], name: "m", baseDirectory: dir.path))
        #expect(v2.version == 2)
        #expect(v2.newBytes < UInt64(content.count) / 4, "an insertion stored \(v2.newBytes) new bytes")
    }
}

@Suite("Blob writer: ids and round trips at block boundaries")
struct BlobWriterTests {
    /// `count` bytes: 64 KiB of noise tiled, each tile's first 8 bytes its index (cheap to make).
    static func tiled(_ count: Int) -> [UInt8] {
        let tile = noise(65536, seed: 5)
        var out = [UInt8](); out.reserveCapacity(count)
        var i: UInt64 = 0
        while out.count < count {
            var t = tile
            withUnsafeBytes(of: i.bigEndian) { for (k, b) in $0.enumerated() { t[k] = b } }
            out.append(contentsOf: t.prefix(count - out.count))
            i += 1
        }
        return out
    }

    @Test("blob id is SHA-256 of the file whether it fits one block or spans several", arguments: [
        0, 1, 65536, BlobWriter.blockSize - 1, BlobWriter.blockSize, BlobWriter.blockSize + 1, 2 * BlobWriter.blockSize + 12345,
    ])
    func sizes(_ size: Int) throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let content = Self.tiled(size)
        dir.write("f.bin", content)
        let r = try repo.commit(CommitRequest(paths: ["f.bin"], name: "f", baseDirectory: dir.path))
        let file = try repo.files(ofTree: r.tree)[0]
        #expect(file.id == ObjectID.hash(content))
        #expect(file.size == UInt64(size))
        var back: [UInt8] = []
        try repo.objects.stream(file.id, verifyWhole: true) { back.append(contentsOf: $0) }
        #expect(back == content)
    }
}

@Suite("Refs: compare-and-swap under a lock, with a log")
struct RefTests {
    @Test("create, move, stale expected value, held lock, log")
    func compareAndSwap() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let a = ObjectID.hash([1]), b = ObjectID.hash([2]), c = ObjectID.hash([3])
        let ref = "refs/artifacts/x"
        try repo.refs.update(ref, from: nil, to: a, actor: testActor, message: "create")
        try repo.refs.update(ref, from: a, to: b, actor: testActor, message: "move")
        let stale = #expect(throws: MVCError.self) { try repo.refs.update(ref, from: a, to: c, actor: testActor, message: "stale") }
        #expect(stale?.code == .refMoved)
        #expect(try repo.refs.read(ref) == b)

        _ = FileManager.default.createFile(atPath: repo.refs.path(ref) + ".lock", contents: Data())
        let locked = #expect(throws: MVCError.self) { try repo.refs.update(ref, from: b, to: c, actor: testActor, message: "locked") }
        #expect(locked?.code == .lockHeld)
        #expect(try repo.refs.read(ref) == b, "a held lock leaves the ref alone")
        #expect(FileManager.default.fileExists(atPath: repo.refs.path(ref) + ".lock"), "someone else's lock is not removed")

        let log = try repo.refs.log(ref)
        #expect(log.map(\.message) == ["create", "move"])
        #expect(log[1].old == a && log[1].new == b && log[1].actor == testActor)
    }

    @Test("a name cannot be both an artifact and a namespace")
    func directoryFileConflict() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        try repo.refs.update("refs/artifacts/a", from: nil, to: ObjectID.hash([1]), actor: testActor, message: "")
        let e = #expect(throws: MVCError.self) {
            try repo.refs.update("refs/artifacts/a/b", from: nil, to: ObjectID.hash([2]), actor: testActor, message: "")
        }
        #expect(e?.code == .nameConflict)
    }

    @Test("a corrupt ref file is an error, not a silent miss")
    func corruptRef() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write(".mvc/refs/artifacts/x", "not an id\n")
        #expect(throws: MVCError.self) { try repo.refs.read("refs/artifacts/x") }
    }

    @Test("concurrent updates from many threads: exactly one wins per expected value")
    func racingUpdates() async throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let ref = "refs/artifacts/race"
        let start = ObjectID.hash([0])
        try repo.refs.update(ref, from: nil, to: start, actor: testActor, message: "start")
        let wins = await withTaskGroup(of: Bool.self) { group in
            for i in 1...8 {
                group.addTask {
                    (try? repo.refs.update(ref, from: start, to: ObjectID.hash([UInt8(i)]), actor: testActor, message: "racer \(i)")) != nil
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(wins == 1)
        #expect(try repo.refs.log(ref).count == 2)
    }
}

@Suite("Repository: init, discovery, format version")
struct RepositoryTests {
    @Test("discover walks up from a subdirectory; outside any store it fails clearly")
    func discovery() throws {
        let dir = TempDir()
        try Repository.initialize(at: dir.path)
        dir.write("a/b/c/file.txt", "x")
        let repo = try Repository.discover(from: dir.path + "/a/b/c")
        #expect(repo.workTree == FileIO.realpath(dir.path))
        let other = TempDir()
        let e = #expect(throws: MVCError.self) { try Repository.discover(from: other.path) }
        #expect(e?.code == .notARepository)
        #expect(throws: MVCError.self) { try Repository.initialize(at: dir.path) }
    }

    @Test("a newer format version is refused and the config left untouched")
    func newerFormat() throws {
        let dir = TempDir()
        try Repository.initialize(at: dir.path)
        let config = String(decoding: dir.read(".mvc/config")!, as: UTF8.self)
        let newer = config.replacingOccurrences(of: "formatVersion = 1", with: "formatVersion = 2")
        dir.write(".mvc/config", newer)
        let e = #expect(throws: MVCError.self) { try Repository.open(at: dir.path) }
        #expect(e?.code == .unsupportedFormat)
        #expect(e?.message.contains("format version 2") == true)
        #expect(String(decoding: dir.read(".mvc/config")!, as: UTF8.self) == newer)
    }

    @Test("a config with a syntax error names the line")
    func badConfig() throws {
        let dir = TempDir()
        try Repository.initialize(at: dir.path)
        dir.write(".mvc/config", "[core]\nformatVersion 1\n")
        let e = #expect(throws: MVCError.self) { try Repository.open(at: dir.path) }
        #expect(e?.code == .badConfig)
        #expect(e?.message.contains("line 2") == true)
    }
}
