// Checkout verifies a chunked file chunk by chunk as it writes it (FORMAT.md V3): a damaged chunk
// in the middle of a large file fails the checkout before the file is published, in a directory of
// its own and in the work tree, and no temp file is left behind.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Checkout verification of chunked files")
struct CheckoutVerifyTests {
    /// `mib` MiB of pseudo-random bytes (no two chunks alike).
    static func randomData(mib: Int, seed: UInt64) -> Data {
        var rng = SplitMix64(seed: seed)
        var data = Data(count: mib << 20)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count { words[i] = rng.next() }
        }
        return data
    }

    /// Flips one bit 10 bytes into the first copy of `needle` in each of the store's packs; true if
    /// a pack held it.
    static func flipByte(near needle: Data, in sb: Sandbox) throws -> Bool {
        let dir = sb.path(".mvc/objects/pack")
        var damaged = false
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".pack") {
            var bytes = try sb.readAbsolute(dir + "/" + name)
            guard let r = bytes.range(of: needle) else { continue }
            bytes[r.lowerBound + 10] ^= 0x08
            chmod(dir + "/" + name, 0o644)
            try bytes.write(to: URL(fileURLWithPath: dir + "/" + name))
            damaged = true
        }
        return damaged
    }

    @Test("a damaged chunk in the middle of a 20 MiB file: checkout fails, publishes nothing, leaves no temp file")
    func damagedChunkInTheMiddle() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        let data = Self.randomData(mib: 20, seed: 0x6D76_632D_636B_0001)
        try sb.write("model/weights.bin", data)
        let hash = try sb.sha256(ofFile: sb.path("model/weights.bin"))
        try sb.mvcOK("commit", "model", "--name", "model", "--kind", "model")

        // Sound: byte-exact, in a new directory and back into the work tree.
        let ok = sb.scratch + "/ok"
        try sb.mvcOK("checkout", "model@v1", "-o", ok)
        #expect(try sb.sha256(ofFile: ok + "/model/weights.bin") == hash)
        try sb.remove("model/weights.bin")
        try sb.mvcOK("checkout", "model@v1")
        #expect(try sb.sha256(ofFile: sb.path("model/weights.bin")) == hash)

        // Flip one byte of the stored copy of the file's middle (a chunk's record in the pack).
        try #require(try Self.flipByte(near: data[(10 << 20)..<((10 << 20) + 64)], in: sb), "no pack holds the file's bytes")

        let out = sb.scratch + "/out"
        try sb.mvcFails(["checkout", "model@v1", "-o", out], mentioning: "corrupt")
        #expect(sb.files(under: out).isEmpty, "nothing published, no temp file: \(sb.files(under: out))")

        try sb.remove("model/weights.bin")
        try sb.mvcFails(["checkout", "model@v1"], mentioning: "corrupt")
        #expect(!sb.exists("model/weights.bin"))
        #expect(sb.files(under: sb.path("model")).isEmpty, "no temp file in the work tree: \(sb.files(under: sb.path("model")))")

        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0, "\(fsck)")
    }

    @Test("1,500 small files (two read-ahead groups): byte-exact, and a damaged one in the second group stops the checkout at it")
    func manySmallFiles() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        var rng = SplitMix64(seed: 0x6D76_632D_736D_0001)
        var contents: [String: Data] = [:]
        for i in 0..<1500 {
            let size = 1024 + Int(rng.next() % 15_000)
            var bytes = [UInt8](repeating: 0, count: size)
            for j in 0..<size { bytes[j] = UInt8(truncatingIfNeeded: rng.next()) }
            let d = Data(bytes)
            let path = String(format: "data/d%02d/f%04d.bin", i / 100, i)
            try sb.write(path, d)
            contents[path] = d
        }
        try sb.mvcOK("commit", "data", "--name", "many", "--kind", "dataset")

        let ok = sb.scratch + "/ok"
        try sb.mvcOK("checkout", "many@v1", "-o", ok)
        for (path, d) in contents { #expect(try sb.readAbsolute(ok + "/" + path) == d, "\(path)") }

        // Damage file 1200 (past the first group's 1,024 files) in the pack.
        let victim = String(format: "data/d%02d/f%04d.bin", 12, 1200)
        try #require(try Self.flipByte(near: contents[victim]!.prefix(64), in: sb), "no pack holds the file's bytes")
        let out = sb.scratch + "/out"
        let r = try sb.mvcFails(["checkout", "many@v1", "-o", out], mentioning: "corrupt")
        #expect(r.stderr.contains(try sb.sha256(of: contents[victim]!)), "names the damaged object: \(r)")
        let written = Set(sb.files(under: out))
        #expect(!written.contains(victim) && !written.contains { $0.contains(".mvc-tmp-") }, "nothing wrong, no temp file")
        #expect(written.contains(String(format: "data/d%02d/f%04d.bin", 11, 1199)), "the files before it were written")
        #expect(!written.contains(String(format: "data/d%02d/f%04d.bin", 14, 1499)), "none after it")
    }
}
