import Foundation
import Testing
@testable import MVCCore
#if canImport(Glibc)
import Glibc
#endif

/// Checkout's writer: chunks read into fixed slots, written, and verified chunk by chunk on a second
/// thread; pieces larger than a slot a window at a time.
@Suite("Checkout writer: slots, windows, per-chunk verification")
struct CheckoutWriterTests {
    /// A store holding one chunked file of `size` bytes (small chunks: a pack when the batch is
    /// large, loose records when it is small); returns the repository, the file's id and bytes.
    static func chunkedFile(_ dir: TempDir, size: Int, seed: UInt64) throws -> (Repository, ObjectID, [UInt8]) {
        let content = noise(size, seed: seed)
        dir.write("repo/model.bin", content)
        let repo = try Repository.initialize(at: dir.path + "/repo", chunking: smallChunks)
        let r = try repo.commit(CommitRequest(paths: ["model.bin"], name: "m", kind: .model, baseDirectory: dir.path + "/repo"))
        let file = try #require(try repo.files(ofTree: r.tree).first)
        #expect(file.id == ObjectID.hash(content))
        guard case .chunks? = try repo.objects.locate(file.id)?.kind else { throw MVCError(.invalidArgument, "expected a chunk list") }
        return (repo, file.id, content)
    }

    /// Writes `id` through `writer` into a new file under `dir`; returns its bytes.
    static func export(_ writer: CheckoutWriter, _ id: ObjectID, _ dir: TempDir, name: String) throws -> [UInt8] {
        let path = dir.path + "/" + name
        let fd = try FileIO.createExclusive(path)
        defer { close(fd) }
        var reported: UInt64 = 0
        try writer.write(id, to: fd, path: path) { reported += $0 }
        let bytes = dir.read(name) ?? []
        #expect(reported == UInt64(bytes.count), "progress adds up to the file")
        return bytes
    }

    /// Flips one byte of a chunk, where it is stored (a pack or a loose file).
    static func damage(_ repo: Repository, chunk id: ObjectID, at delta: UInt64 = 10) throws {
        let path: String, offset: UInt64
        switch try #require(try repo.objects.locate(id)) {
        case .packed(let pack, let e): path = pack.packPath; offset = e.offset + delta
        case .loose(let p, _, _): path = p; offset = delta
        }
        chmod(path, 0o644)
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        var b: UInt8 = 0
        #expect(pread(fd, &b, 1, off_t(offset)) == 1)
        b ^= 0x40
        #expect(pwrite(fd, &b, 1, off_t(offset)) == 1)
    }

    static func middleChunk(_ repo: Repository, _ id: ObjectID) throws -> ObjectID {
        let loc = try #require(try repo.objects.locate(id))
        let chunks = try repo.objects.chunkList(id, at: loc).chunks
        #expect(chunks.count > 10)
        return chunks[chunks.count / 2].id
    }

    @Test("chunks in a pack are written byte-exact, whether many fit in a slot, a few, or none (windows)",
          arguments: [8 << 20, 40_000, 4096])
    func packedRoundTrip(_ segmentBytes: Int) throws {
        let dir = TempDir()
        let (repo, id, content) = try Self.chunkedFile(dir, size: 3_000_000, seed: 21)
        guard case .packed? = try repo.objects.locate(try Self.middleChunk(repo, id)) else {
            Issue.record("expected packed chunks"); return
        }
        let writer = CheckoutWriter(store: repo.objects, segmentBytes: segmentBytes)
        #expect(try Self.export(writer, id, dir, name: "out1") == content)
        // The writer is reused for the next file of a checkout.
        #expect(try Self.export(writer, id, dir, name: "out2") == content)
    }

    @Test("loose chunks are read and verified the same way", arguments: [8 << 20, 20_000, 4096])
    func looseRoundTrip(_ segmentBytes: Int) throws {
        let dir = TempDir()
        let (repo, id, content) = try Self.chunkedFile(dir, size: 150_000, seed: 22)
        guard case .loose? = try repo.objects.locate(try Self.middleChunk(repo, id)) else {
            Issue.record("expected loose chunks"); return
        }
        let writer = CheckoutWriter(store: repo.objects, segmentBytes: segmentBytes)
        #expect(try Self.export(writer, id, dir, name: "out") == content)

        let bad = try Self.middleChunk(repo, id)
        try Self.damage(repo, chunk: bad)
        let error = #expect(throws: MVCError.self) { _ = try Self.export(writer, id, dir, name: "bad") }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains(bad.hex) == true, "\(String(describing: error))")
    }

    @Test("a raw object over 1 MiB is written and verified as one piece, also when larger than a slot",
          arguments: [8 << 20, 65536])
    func largeRaw(_ segmentBytes: Int) throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        let content = noise(1_500_000, seed: 23)
        let batch = repo.newBatch()
        let id = try batch.putRaw(content)
        try batch.commit()
        let writer = CheckoutWriter(store: repo.objects, segmentBytes: segmentBytes)
        #expect(try Self.export(writer, id, dir, name: "out") == content)

        try Self.damage(repo, chunk: id, at: 1_400_000)
        let error = #expect(throws: MVCError.self) { _ = try Self.export(writer, id, dir, name: "bad") }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains(id.hex) == true, "\(String(describing: error))")
    }

    @Test("a damaged chunk in the middle of a packed file is caught, and the writer stays usable", arguments: [8 << 20, 40_000, 4096])
    func damagedPackedChunk(_ segmentBytes: Int) throws {
        let dir = TempDir()
        let (repo, id, _) = try Self.chunkedFile(dir, size: 3_000_000, seed: 24)
        let bad = try Self.middleChunk(repo, id)
        try Self.damage(repo, chunk: bad)
        let writer = CheckoutWriter(store: repo.objects, segmentBytes: segmentBytes)
        let error = #expect(throws: MVCError.self) { _ = try Self.export(writer, id, dir, name: "out") }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains(bad.hex) == true, "the error names the damaged chunk: \(String(describing: error))")
        // Every slot came back: the next file goes through.
        let other = noise(2_000_000, seed: 27)
        let batch = repo.newBatch()
        let otherID = try batch.putRaw(other)
        try batch.commit()
        #expect(try Self.export(writer, otherID, dir, name: "next") == other)
    }

    @Test("a pack cut short in the middle of a file's chunks is reported as truncated")
    func truncatedPack() throws {
        let dir = TempDir()
        let (repo, id, content) = try Self.chunkedFile(dir, size: 3_000_000, seed: 25)
        let middle = try Self.middleChunk(repo, id)
        guard case .packed(let pack, let e)? = try repo.objects.locate(middle) else { Issue.record("expected a packed chunk"); return }
        let cut = e.offset + 100
        // The chunk list is appended after the chunks: keep a loose copy (found first) readable.
        let listLocation = try #require(try repo.objects.locate(id))
        let list = try repo.objects.chunkList(id, at: listLocation)
        let listPath = repo.objects.loosePath(id, kind: .chunks)
        try FileIO.mkdirs(parentPath(listPath))
        try FileIO.writeFileAtomically(listPath, try repo.objects.readRecord(listLocation, id: id, limit: 1 << 20), sync: false)
        // The first chunk, in file order, that the cut reaches.
        var bad: ObjectID?
        for c in list.chunks {
            guard case .packed(_, let ce)? = try repo.objects.locate(c.id) else { continue }
            if ce.offset + ce.length > cut { bad = c.id; break }
        }
        let expected = try #require(bad)
        chmod(pack.packPath, 0o644)
        #expect(truncate(pack.packPath, off_t(cut)) == 0)
        let writer = CheckoutWriter(store: repo.objects)
        let error = #expect(throws: MVCError.self) { _ = try Self.export(writer, id, dir, name: "out") }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains("truncated") == true, "\(String(describing: error))")
        #expect(error?.message.contains(expected.hex) == true, "names the first chunk cut off: \(String(describing: error))")
        #expect(content.count > 0)
    }

    @Test("checkout of a file with a damaged chunk fails and leaves nothing behind, loose or packed",
          arguments: [3_000_000, 150_000])
    func checkoutLeavesNothing(_ size: Int) throws {
        let dir = TempDir()
        let (repo, id, content) = try Self.chunkedFile(dir, size: size, seed: 26)
        let out = dir.path + "/out"
        _ = try repo.checkout("m@v1", into: out)
        #expect(dir.read("out/model.bin") == content)
        try FileManager.default.removeItem(atPath: out)

        let bad = try Self.middleChunk(repo, id)
        try Self.damage(repo, chunk: bad)
        let error = #expect(throws: MVCError.self) { _ = try repo.checkout("m@v1", into: out) }
        #expect(error?.code == .corruptObject)
        #expect(error?.message.contains(bad.hex) == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty, "no file and no temp file left")

        // In the work tree, with the file deleted: the same, and the work tree is untouched.
        try FileManager.default.removeItem(atPath: dir.path + "/repo/model.bin")
        let again = #expect(throws: MVCError.self) { _ = try repo.checkout("m@v1") }
        #expect(again?.code == .corruptObject)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/repo")
        #expect(!left.contains("model.bin") && !left.contains { $0.hasPrefix(".mvc-tmp") }, "\(left)")
        #expect(try !repo.fsck().ok)
    }
}
