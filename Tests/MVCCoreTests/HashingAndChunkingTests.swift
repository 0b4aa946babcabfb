import Testing
@testable import MVCCore

@Suite("SHA-256 and object ids")
struct HashingTests {
    @Test("blob ids equal sha256sum of the bytes (FIPS 180-2 vectors)")
    func knownVectors() {
        #expect(ObjectID.hash([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(ObjectID.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(ObjectID.hash(million).hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("incremental updates give the same id as one update")
    func incremental() {
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let h = SHA256()
        for start in stride(from: 0, to: bytes.count, by: 7_777) {
            h.update(Array(bytes[start..<min(start + 7_777, bytes.count)]))
        }
        #expect(h.finalize() == ObjectID.hash(bytes))
    }

    @Test("hex round trip, ordering and rejection of bad hex")
    func hex() {
        let id = ObjectID.hash(Array("mvc".utf8))
        #expect(ObjectID(hex: id.hex) == id)
        #expect(ObjectID(hex: id.hex.uppercased()) == id)
        #expect(ObjectID(bytes: id.bytes) == id)
        #expect(ObjectID(hex: String(id.hex.dropLast())) == nil)
        #expect(ObjectID(hex: String(id.hex.dropLast()) + "g") == nil)
        let a = ObjectID(hex: String(repeating: "0", count: 63) + "1")!
        let b = ObjectID(hex: "1" + String(repeating: "0", count: 63))!
        #expect(a < b)
    }
}

@Suite("Content-defined chunking")
struct ChunkerTests {
    static let small = ChunkerParameters(min: 1024, avg: 4096, max: 16384)

    /// Deterministic pseudo-random bytes (xorshift64*).
    static func noise(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        return (0..<count).map { _ in
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27
            return UInt8(truncatingIfNeeded: (x &* 0x2545F4914F6CDD1D) >> 56)
        }
    }

    @Test("the gear table is splitmix64 from the documented seed")
    func gearTable() {
        #expect(MVCCore.gearTable.count == 256)
        #expect(Set(MVCCore.gearTable).count == 256)
        // The first values, computed independently (Python) and printed in docs/FORMAT.md.
        #expect(Array(MVCCore.gearTable.prefix(3)) == [0xaede085edb2dcf88, 0xf6021af17bcfb92e, 0xbbb026c412f4cd4a])
    }

    @Test("chunks respect min and max and cover the input exactly")
    func bounds() {
        let data = Self.noise(300_000, seed: 7)
        let cuts = Chunker(Self.small).cuts(data)
        #expect(cuts.reduce(0, +) == data.count)
        for c in cuts.dropLast() {
            #expect(c >= Self.small.min && c <= Self.small.max)
        }
        let mean = Double(data.count) / Double(cuts.count)
        #expect(mean > 2000 && mean < 10000, "mean chunk \(mean) far from avg 4096")
    }

    @Test("inputs at or below min are one chunk; empty input has none")
    func tiny() {
        let c = Chunker(Self.small)
        #expect(c.cuts([]) == [])
        #expect(c.cuts(Self.noise(1024, seed: 1)) == [1024])
        #expect(c.cuts(Self.noise(10, seed: 1)) == [10])
    }

    @Test("an insertion near the start changes only the chunks around it")
    func insertionResynchronises() {
        let c = Chunker(Self.small)
        let original = Self.noise(400_000, seed: 42)
        var edited = original
        edited.insert(contentsOf: Self.noise(3000, seed: 99), at: 5000)
        func chunkIDs(_ data: [UInt8]) -> [ObjectID] {
            var pos = 0
            return c.cuts(data).map { len in
                defer { pos += len }
                return ObjectID.hash(Array(data[pos..<(pos + len)]))
            }
        }
        let a = chunkIDs(original), b = Set(chunkIDs(edited))
        let shared = a.filter { b.contains($0) }.count
        #expect(Double(shared) / Double(a.count) > 0.9, "only \(shared) of \(a.count) chunks shared after an insertion")
    }

    @Test("parameters are validated")
    func validation() {
        #expect(throws: MVCError.self) { try ChunkerParameters(min: 4096, avg: 3000, max: 16384).validate() }
        #expect(throws: MVCError.self) { try ChunkerParameters(min: 1024, avg: 4096, max: 4096).validate() }
        #expect(throws: Never.self) { try ChunkerParameters.standard.validate() }
    }

    @Test("MIN/AVG/MAX sizes parse with K and M suffixes and are validated")
    func parseSizes() throws {
        #expect(try ChunkerParameters.parse("32K/128K/512K") == .standard)
        #expect(try ChunkerParameters.parse("64k/256K/1M") == ChunkerParameters(min: 65536, avg: 262144, max: 1 << 20))
        #expect(try ChunkerParameters.parse("1024/4096/16384") == ChunkerParameters(min: 1024, avg: 4096, max: 16384))
        for bad in ["", "32K/128K", "32K/128K/512K/1M", "32K/100K/512K", "a/b/c", "32K/128K/65M", "-1/4096/16384", "٣٢K/128K/512K"] {
            #expect(throws: MVCError.self, "\(bad)") { try ChunkerParameters.parse(bad) }
        }
    }
}
