// Large files stream: committing and checking out 300 MiB takes bounded memory, and a new version
// that rewrites 10% of the file stores little more than what changed (content-defined chunks).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// splitmix64: a fixed, seedable stream of pseudo-random bytes (no dedup is possible within it).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Writes `blocks` MiB of pseudo-random bytes at `offsets` (in MiB) of an existing file, or
/// creates the file when `create`; one 1 MiB buffer, never the whole file in memory.
private func writeRandomBlocks(_ path: String, atMiB offsets: [Int], seed: UInt64, create: Bool) throws {
    let fd = open(path, create ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_WRONLY | O_CLOEXEC), 0o644)
    guard fd >= 0 else { throw E2EError("cannot open '\(path)': errno \(errno)") }
    defer { close(fd) }
    let words = (1 << 20) / 8
    let buffer = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: words)
    defer { buffer.deallocate() }
    var rng = SplitMix64(seed: seed)
    for block in offsets {
        for i in 0..<words { buffer[i] = rng.next() }
        let raw = UnsafeRawBufferPointer(buffer)
        var done = 0
        while done < raw.count {
            let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(block) << 20 + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw E2EError("cannot write '\(path)': errno \(errno)")
            }
            done += n
        }
    }
}

@Suite("Streaming large files")
struct StreamingTests {
    static let fileMiB = 300
    static let memoryLimitKiB = 100 * 1024

    @Test("300 MiB: commit and checkout in under 100 MiB of memory; a 10% rewrite stores well under 30%")
    func largeFile() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        let fileBytes = UInt64(Self.fileMiB) << 20
        let big = sb.path("weights/big.bin")
        try FileManager.default.createDirectory(atPath: sb.path("weights"), withIntermediateDirectories: true)
        try writeRandomBlocks(big, atMiB: Array(0..<Self.fileMiB), seed: 0x6D76_632D_6532_6521, create: true)
        let v1Hash = try sb.sha256(ofFile: big)

        // Commit v1.
        let storeEmpty = sb.totalSize(under: sb.path(".mvc"))
        let c1 = try sb.mvc(["commit", "weights/big.bin", "--name", "big", "--kind", "model"])
        try #require(c1.status == 0, "\(c1)")
        let v1 = try #require(CommitLine(c1.stdout), "\(c1)")
        #expect(c1.maxRSSKiB < Self.memoryLimitKiB,
                "commit of \(Self.fileMiB) MiB peaked at \(c1.maxRSSKiB) KiB (the test process had \(c1.parentRSSKiB) KiB at spawn)")
        let storeV1 = sb.totalSize(under: sb.path(".mvc"))
        #expect(storeV1 - storeEmpty < fileBytes + fileBytes / 50, "stored once: \(storeV1 - storeEmpty) bytes for \(fileBytes)")
        let ls = try sb.json([LsEntryJSON].self, ["ls", "big"])
        #expect(ls == [LsEntryJSON(path: "weights/big.bin", kind: "file", size: fileBytes, id: v1Hash)],
                "a chunked file's blob id is still the SHA-256 of all its bytes")

        // Check v1 out elsewhere.
        let out = sb.scratch + "/out"
        let co = try sb.mvc(["checkout", "big@v1", "-o", out])
        try #require(co.status == 0, "\(co)")
        #expect(co.maxRSSKiB < Self.memoryLimitKiB,
                "checkout of \(Self.fileMiB) MiB peaked at \(co.maxRSSKiB) KiB (the test process had \(co.parentRSSKiB) KiB at spawn)")
        #expect(try sb.sha256(ofFile: out + "/weights/big.bin") == v1Hash)
        try FileManager.default.removeItem(atPath: out)

        // Rewrite 10% in place: ten 3 MiB regions spread over the file, then commit v2.
        let regions = (0..<10).flatMap { k in (0..<3).map { k * 30 + 7 + $0 } }
        #expect(regions.count * 10 == Self.fileMiB)
        try writeRandomBlocks(big, atMiB: regions, seed: 0x6D76_632D_7632_0002, create: false)
        let v2Hash = try sb.sha256(ofFile: big)
        #expect(v2Hash != v1Hash)
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.map(\.change) == ["modified"])

        let c2 = try sb.mvc(["commit", "weights/big.bin", "--name", "big"])
        try #require(c2.status == 0, "\(c2)")
        let v2 = try #require(CommitLine(c2.stdout), "\(c2)")
        #expect(v2.version == 2 && v2.id != v1.id)
        #expect(c2.maxRSSKiB < Self.memoryLimitKiB, "second commit peaked at \(c2.maxRSSKiB) KiB")
        let storeV2 = sb.totalSize(under: sb.path(".mvc"))
        let growth = storeV2 - storeV1
        let rewritten = UInt64(regions.count) << 20
        #expect(growth < fileBytes * 3 / 10,
                "dedup: the store grew by \(growth) bytes (\(growth * 100 / fileBytes)% of the file) for a 10% rewrite")
        #expect(growth >= rewritten, "the rewritten bytes themselves must be stored: grew \(growth) < \(rewritten)")

        // Both versions come back exactly.
        let co2 = try sb.mvc(["checkout", "big@v2", "-o", out])
        try #require(co2.status == 0, "\(co2)")
        #expect(try sb.sha256(ofFile: out + "/weights/big.bin") == v2Hash)
        try FileManager.default.removeItem(atPath: out)
        let back = try sb.json(CheckoutJSON.self, ["checkout", "big@v1"])
        #expect(back.written == ["weights/big.bin"], "v2's bytes are stored, so no --force is needed")
        #expect(try sb.sha256(ofFile: big) == v1Hash)
        #expect(try sb.mvc("fsck").status == 0)
    }

    @Test("files at chunk-size boundaries, empty files and unusual names round-trip exactly")
    func boundarySizes() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        // Sizes around the chunker's limits (64 KiB min, 256 KiB average, 1 MiB max) and the
        // 1 MiB read buffer.
        let sizes = [0, 1, 65_535, 65_536, 65_537, 262_144, 1_048_575, 1_048_576, 1_048_577, 2_097_152, 3_000_001]
        var rng = SplitMix64(seed: 42)
        var expected: [LsEntryJSON] = []
        for size in sizes {
            var bytes = Data(count: size)
            bytes.withUnsafeMutableBytes { raw in
                for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            let rel = "set/sizes/\(size).bin"
            try sb.write(rel, bytes)
            expected.append(LsEntryJSON(path: rel, kind: "file", size: UInt64(size), id: try sb.sha256(ofFile: sb.path(rel))))
        }
        // A file made of one repeated 1 MiB block: its chunks repeat, and are stored once.
        let block = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) })
        try sb.write("set/repeated.bin", block + block + block + block)
        expected.append(LsEntryJSON(path: "set/repeated.bin", kind: "file", size: 4 << 20, id: try sb.sha256(ofFile: sb.path("set/repeated.bin"))))
        for name in ["näme with spaces.txt", "-dash", "#hash", "tab\there", "ünïcødé/ファイル.txt"] {
            try sb.write("set/names/" + name, name + "\n")
            expected.append(LsEntryJSON(path: "set/names/" + name, kind: "file", size: UInt64(name.utf8.count + 1),
                                        id: try sb.sha256(ofFile: sb.path("set/names/" + name))))
        }
        let j = try sb.json(CommitJSON.self, ["commit", "set", "--name", "set"])
        #expect(j.files == expected.count)
        let listed = try sb.json([LsEntryJSON].self, ["ls", "set"])
        #expect(listed.sorted { $0.path < $1.path } == expected.sorted { $0.path < $1.path })

        let out = sb.scratch + "/out"
        try sb.mvcOK("checkout", "set", "-o", out)
        #expect(sb.files(under: out + "/set") == sb.files(under: sb.path("set")))
        for e in expected {
            #expect(try sb.sha256(ofFile: out + "/" + e.path) == e.id, "\(e.path)")
        }
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        #expect(try sb.mvc("fsck").status == 0)
    }
}
