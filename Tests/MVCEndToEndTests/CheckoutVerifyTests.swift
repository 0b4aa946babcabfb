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
        let dir = sb.path(".mvc/objects/pack")
        let needle = data[(10 << 20)..<((10 << 20) + 64)]
        var damaged = false
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".pack") {
            var bytes = try sb.readAbsolute(dir + "/" + name)
            guard let r = bytes.range(of: needle) else { continue }
            bytes[r.lowerBound + 10] ^= 0x08
            chmod(dir + "/" + name, 0o644)
            try bytes.write(to: URL(fileURLWithPath: dir + "/" + name))
            damaged = true
        }
        try #require(damaged, "no pack holds the file's bytes")

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
}
