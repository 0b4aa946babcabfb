import Foundation
import Synchronization
import Testing
@testable import MVCCore

/// The RemoteStorage implementations that must behave alike.
enum StorageBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case directory
    /// S3Storage against moto_server (see S3StorageTests.swift).
    case s3

    var testDescription: String { rawValue }

    /// A fresh, empty storage, and a scratch directory for the files to upload.
    func make() throws -> StorageUnderTest {
        let scratch = TempDir()
        switch self {
        case .directory:
            let remote = TempDir()
            return StorageUnderTest(storage: try DirectoryStorage(path: remote.path, location: remote.path), scratch: scratch, keepAlive: remote)
        case .s3:
            // A prefix, so that the prefix handling is part of every test.
            return StorageUnderTest(storage: try MotoServer.freshStorage(prefix: "teams/ml"), scratch: scratch, keepAlive: nil)
        }
    }
}

struct StorageUnderTest {
    let storage: any RemoteStorage
    let scratch: TempDir
    let keepAlive: AnyObject?

    /// Uploads `bytes` under `key` (through a scratch file, as pushes do).
    func put(_ key: String, _ bytes: [UInt8]) throws {
        let name = "up-" + UUID().uuidString
        scratch.write(name, bytes)
        try storage.upload(key, from: scratch.path + "/" + name)
    }

    func put(_ key: String, _ text: String) throws { try put(key, Array(text.utf8)) }
}

@Suite("RemoteStorageConformance", .motoServer)
struct RemoteStorageConformance {
    @Test("upload, read, list sorted with directory prefixes, missing keys read as nil", arguments: StorageBackend.allCases)
    func uploadReadList(_ backend: StorageBackend) throws {
        let sut = try backend.make()
        let s = sut.storage
        #expect(try s.list(prefix: "") == [])
        #expect(try s.list(prefix: "packs/") == [])
        let files = ["packs/b.pack": "bee", "packs/a.pack": "a", "packs/idx/a.idx": "index", "refs/heads/main": "ref",
                     "packsX/z": "not under packs/", "top": "t", "sp ace/ü+%.bin": "odd"]
        for (k, v) in files { try sut.put(k, v) }
        #expect(try s.list(prefix: "") == files.keys.sorted())
        #expect(try s.list(prefix: "packs/") == ["packs/a.pack", "packs/b.pack", "packs/idx/a.idx"])
        #expect(try s.list(prefix: "packs") == ["packs/a.pack", "packs/b.pack", "packs/idx/a.idx"])
        #expect(try s.list(prefix: "packs/idx") == ["packs/idx/a.idx"])
        #expect(try s.list(prefix: "pack") == [])
        #expect(try s.list(prefix: "nothing/") == [])
        for (k, v) in files { #expect(try s.read(k) == Array(v.utf8), "\(k)") }
        #expect(try s.read("packs/c.pack") == nil)
        #expect(try s.read("nothing/at/all") == nil)
    }

    @Test("empty files, overwrite replaces, delete removes (and deleting nothing is fine)", arguments: StorageBackend.allCases)
    func overwriteAndDelete(_ backend: StorageBackend) throws {
        let sut = try backend.make()
        let s = sut.storage
        try sut.put("empty", [])
        #expect(try s.read("empty") == [])
        try sut.put("k/v", "first version, longer")
        try sut.put("k/v", "second")
        #expect(try s.read("k/v") == Array("second".utf8))
        #expect(try s.list(prefix: "k") == ["k/v"])
        try s.delete("k/v")
        #expect(try s.read("k/v") == nil)
        #expect(try s.list(prefix: "") == ["empty"])
        try s.delete("k/v")
        try s.delete("never/was")
    }

    @Test("ranged reads: inside, to the end, zero length; past the end is corrupt; missing key throws", arguments: StorageBackend.allCases)
    func rangedReads(_ backend: StorageBackend) throws {
        let sut = try backend.make()
        let s = sut.storage
        let bytes = noise(10_000, seed: 42)
        try sut.put("packs/p.pack", bytes)
        #expect(try s.read("packs/p.pack", offset: 0, length: 10) == Array(bytes[0..<10]))
        #expect(try s.read("packs/p.pack", offset: 4_321, length: 1_000) == Array(bytes[4_321..<5_321]))
        #expect(try s.read("packs/p.pack", offset: 9_999, length: 1) == [bytes[9_999]])
        #expect(try s.read("packs/p.pack", offset: 0, length: 10_000) == bytes)
        #expect(try s.read("packs/p.pack", offset: 5, length: 0) == [])
        let past = #expect(throws: MVCError.self) { try s.read("packs/p.pack", offset: 9_990, length: 20) }
        #expect(past?.code == .corruptObject)
        let beyond = #expect(throws: MVCError.self) { try s.read("packs/p.pack", offset: 20_000, length: 5) }
        #expect(beyond?.code == .corruptObject)
        let missing = #expect(throws: MVCError.self) { try s.read("packs/none.pack", offset: 0, length: 5) }
        #expect(missing?.code == .io)
    }

    @Test("keys that could escape the remote are refused", arguments: StorageBackend.allCases)
    func unsafeKeys(_ backend: StorageBackend) throws {
        let sut = try backend.make()
        sut.scratch.write("f", "x")
        for key in ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "trailing/"] {
            let e = #expect(throws: MVCError.self, "\(key)") { try sut.storage.upload(key, from: sut.scratch.path + "/f") }
            #expect(e?.code == .unsafePath)
            #expect(throws: MVCError.self, "\(key)") { _ = try sut.storage.read(key) }
            #expect(throws: MVCError.self, "\(key)") { try sut.storage.swap(key, expected: nil, new: [1]) }
        }
    }

    @Test("swap: create, replace, stale expected, delete, 'must not exist'", arguments: StorageBackend.allCases)
    func swapSemantics(_ backend: StorageBackend) throws {
        let s = try backend.make().storage
        let key = "refs/heads/main"
        let a = Array("a1b2\n".utf8), b = Array("c3d4\n".utf8), c = Array("e5f6\n".utf8)

        try s.swap(key, expected: nil, new: a)                                   // create
        #expect(try s.read(key) == a)
        try expectMoved { try s.swap(key, expected: nil, new: b) }               // exists already
        try s.swap(key, expected: a, new: b)                                     // replace
        #expect(try s.read(key) == b)
        try expectMoved { try s.swap(key, expected: a, new: c) }                 // stale expected
        #expect(try s.read(key) == b)
        try expectMoved { try s.swap(key, expected: a, new: nil) }               // stale delete
        try expectMoved { try s.swap(key, expected: nil, new: nil) }             // "must not exist", but it does
        #expect(try s.read(key) == b)
        try s.swap(key, expected: b, new: nil)                                   // delete
        #expect(try s.read(key) == nil)
        try expectMoved { try s.swap(key, expected: b, new: c) }                 // expected a value, none there
        try expectMoved { try s.swap(key, expected: b, new: nil) }
        try s.swap(key, expected: nil, new: nil)                                 // absent and stays absent
        #expect(try s.read(key) == nil)
        try s.swap(key, expected: nil, new: c)                                   // create again after delete
        try s.swap(key, expected: c, new: c)                                     // same value: still a swap
        #expect(try s.read(key) == c)
        try s.swap("refs/tags/nested/deep/v1", expected: nil, new: [])           // nested, empty value
        #expect(try s.read("refs/tags/nested/deep/v1") == [])
        #expect(try s.list(prefix: "refs") == ["refs/heads/main", "refs/tags/nested/deep/v1"])
    }

    @Test("ten threads swap one key from the same expected value: exactly one wins", arguments: StorageBackend.allCases)
    func concurrentSwaps(_ backend: StorageBackend) throws {
        let s = try backend.make().storage
        for round in 0..<3 {
            let key = "refs/heads/race\(round)"
            let base = Array("base\n".utf8)
            // Round 0 races to create (expected nil), the others to replace.
            let expected: [UInt8]? = round == 0 ? nil : base
            if expected != nil { try s.swap(key, expected: nil, new: base) }
            let (winners, losers) = race(threads: 10) { (i) throws(MVCError) in
                try s.swap(key, expected: expected, new: Array("value \(i)\n".utf8))
            }
            #expect(winners.count >= 1, "round \(round): nobody won")
            #expect(losers.allSatisfy { $0 == .refMoved || $0 == .lockHeld }, "round \(round): \(losers)")
            #expect(winners.count + losers.count == 10)
            if let w = winners.first, winners.count == 1 {
                #expect(try s.read(key) == Array("value \(w)\n".utf8))
            }
            if backend == .s3 {
                // moto 5.2.1 checks If-Match / If-None-Match and then stores the object without holding a
                // lock across the two (moto/s3/responses.py put_object), so under a thread switch between
                // them two conditional PUTs can both succeed. Measured: about 1 race in 1,200. AWS S3 makes
                // the check and the write atomic; the client does what S3 requires.
                withKnownIssue("moto's conditional PUT is check-then-write without a lock", isIntermittent: true) {
                    #expect(winners.count == 1, "round \(round): winners \(winners)")
                }
            } else {
                #expect(winners.count == 1, "round \(round): winners \(winners)")
            }
        }
    }

    @Test("a 70 MiB upload (multipart on S3), checked by ranged reads", arguments: StorageBackend.allCases)
    func largeUpload(_ backend: StorageBackend) throws {
        let sut = try backend.make()
        let s = sut.storage
        let block = 1 << 20, blocks = 70
        let path = sut.scratch.path + "/big.pack"
        let fileHash = try writeBlocks(path, blocks: blocks, blockSize: block)
        try s.upload("packs/big.pack", from: path)
        #expect(try s.list(prefix: "packs") == ["packs/big.pack"])

        // All of it, 8 MiB at a time (memory stays low), hashed.
        let hasher = SHA256()
        var offset: UInt64 = 0
        let total = UInt64(blocks * block)
        while offset < total {
            let n = min(8 << 20, total - offset)
            let bytes = try s.read("packs/big.pack", offset: offset, length: n)
            #expect(bytes.count == Int(n))
            hasher.update(bytes)
            offset += n
        }
        #expect(hasher.finalize() == fileHash)
        // Across the first part boundary (16 MiB) and at the very end.
        let boundary = UInt64(16 << 20)
        #expect(try s.read("packs/big.pack", offset: boundary - 5, length: 10) == expectedBytes(at: boundary - 5, count: 10, blockSize: block))
        #expect(try s.read("packs/big.pack", offset: total - 7, length: 7) == expectedBytes(at: total - 7, count: 7, blockSize: block))
        #expect(throws: MVCError.self) { try s.read("packs/big.pack", offset: total - 7, length: 8) }
    }
}

/// Expects `.refMoved`.
private func expectMoved(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) throws {
    do {
        try body()
        Issue.record("expected refMoved, the swap succeeded", sourceLocation: sourceLocation)
    } catch let error as MVCError {
        #expect(error.code == .refMoved, "\(error)", sourceLocation: sourceLocation)
    }
}

/// Runs `body` on `threads` threads released at once; the indexes that succeeded and the error codes.
private func race(threads: Int, _ body: @escaping @Sendable (Int) throws(MVCError) -> Void) -> (winners: [Int], losers: [MVCError.Code]) {
    let outcomes = Mutex<(winners: [Int], losers: [MVCError.Code])>(([], []))
    let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    for i in 0..<threads {
        group.enter()
        Thread.detachNewThread {
            ready.signal()
            go.wait()
            do throws(MVCError) {
                try body(i)
                outcomes.withLock { $0.winners.append(i) }
            } catch {
                outcomes.withLock { $0.losers.append(error.code) }
            }
            group.leave()
        }
    }
    for _ in 0..<threads { ready.wait() }
    for _ in 0..<threads { go.signal() }
    group.wait()
    return outcomes.withLock { $0 }
}

/// Block `i` of the big test file: a fixed pseudo-random block with `i` stamped over its first 8 bytes.
private let baseBlock = noise(1 << 20, seed: 99)

private func block(_ i: Int, blockSize: Int) -> [UInt8] {
    var b = Array(baseBlock[0..<blockSize])
    withUnsafeBytes(of: UInt64(i).littleEndian) { for (j, x) in $0.enumerated() { b[j] = x } }
    return b
}

/// Writes the file one block at a time; returns its SHA-256.
private func writeBlocks(_ path: String, blocks: Int, blockSize: Int) throws -> ObjectID {
    #expect(FileManager.default.createFile(atPath: path, contents: nil))
    let handle = try #require(FileHandle(forWritingAtPath: path))
    defer { try? handle.close() }
    let hasher = SHA256()
    for i in 0..<blocks {
        let b = block(i, blockSize: blockSize)
        hasher.update(b)
        try handle.write(contentsOf: b)
    }
    return hasher.finalize()
}

private func expectedBytes(at offset: UInt64, count: Int, blockSize: Int) -> [UInt8] {
    (0..<count).map { k in
        let pos = Int(offset) + k
        return block(pos / blockSize, blockSize: blockSize)[pos % blockSize]
    }
}
