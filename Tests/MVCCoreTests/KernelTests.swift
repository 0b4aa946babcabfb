import Foundation
import Testing
@testable import MVCCore

/// The C loops behind commits (`CMVCKernels`) against plain references: OpenSSL's SHA-256 and the
/// one-byte-at-a-time gear rule of docs/FORMAT.md section 4.
@Suite("Hashing and cut-point kernels", .serialized)
struct KernelTests {
    static func noise(_ count: Int, seed: UInt64) -> [UInt8] { ChunkerTests.noise(count, seed: seed) }

    /// Both implementations, so that each is checked on every machine that has it; the interleaved
    /// one is forced on even in debug builds, where it is not used by default.
    static let implementations: [SHAStream.Implementation] = [.openSSL, .interleaved]

    /// Whether this CPU has the x86 SHA extensions (Linux: the `sha_ni` flag).
    static var cpuHasSHA: Bool {
        ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" sha_ni")
    }

    @Test("SHA-256 streams equal OpenSSL for every length and split", arguments: implementations)
    func streams(_ implementation: SHAStream.Implementation) {
        SHAStream.use(implementation)
        defer { SHAStream.use(.automatic) }
        // The suite is serialized, so the implementation chosen is the one running.
        #expect(SHAStream.accelerated == (implementation == .interleaved && Self.cpuHasSHA))
        let data = Self.noise(300_000, seed: 7)
        var rng = SplitMix(seed: 11)
        data.withUnsafeBytes { all in
            for length in Array(0...130) + [255, 256, 4095, 65_536, 299_999] {
                let whole = UnsafeRawBufferPointer(rebasing: all[0..<length])
                let s = SHAStream()
                var p = 0
                while p < length {
                    let k = min(Int(rng.next() % 150), length - p)
                    s.update(UnsafeRawBufferPointer(rebasing: whole[p..<(p + k)]))
                    p += k
                }
                #expect(s.finalize() == ObjectID.hash(whole), "length \(length)")
            }
        }
    }

    @Test("two streams fed together equal separate hashes of their bytes", arguments: implementations)
    func pairs(_ implementation: SHAStream.Implementation) {
        SHAStream.use(implementation)
        defer { SHAStream.use(.automatic) }
        let data = Self.noise(600_000, seed: 8)
        var rng = SplitMix(seed: 12)
        data.withUnsafeBytes { all in
            for _ in 0..<60 {
                // A "whole file" stream that has already seen `lead` bytes, and a "chunk" stream
                // that starts where the pair does: their blocks are out of step.
                let lead = Int(rng.next() % 5_000), length = Int(rng.next() % 500_000)
                let whole = SHAStream(), chunk = SHAStream()
                whole.update(UnsafeRawBufferPointer(rebasing: all[0..<lead]))
                var p = lead
                while p < lead + length {
                    let k = min(Int(rng.next() % 70_000), lead + length - p)
                    SHAStream.update(whole, chunk, UnsafeRawBufferPointer(rebasing: all[p..<(p + k)]))
                    p += k
                }
                #expect(whole.finalize() == ObjectID.hash(UnsafeRawBufferPointer(rebasing: all[0..<(lead + length)])))
                #expect(chunk.finalize() == ObjectID.hash(UnsafeRawBufferPointer(rebasing: all[lead..<(lead + length)])))
            }
        }
    }

    @Test("many messages hashed side by side equal one by one", arguments: implementations)
    func many(_ implementation: SHAStream.Implementation) {
        SHAStream.use(implementation)
        defer { SHAStream.use(.automatic) }
        let data = Self.noise(400_000, seed: 9)
        var rng = SplitMix(seed: 13)
        data.withUnsafeBytes { all in
            for count in [0, 1, 2, 3, 4, 5, 9, 64, 65, 150] {
                let buffers = (0..<count).map { i -> UnsafeRawBufferPointer in
                    let length = i % 4 == 0 ? Int(rng.next() % 130) : Int(rng.next() % 300_000)
                    let start = Int(rng.next() % UInt64(all.count - length + 1))
                    return UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                }
                #expect(ObjectID.hashMany(buffers) == buffers.map { ObjectID.hash($0) }, "\(count) messages")
            }
        }
    }

    /// The normative rule, one byte at a time.
    static func referenceCut(_ b: [UInt8], _ params: ChunkerParameters) -> Int {
        let n = b.count
        if n <= params.min { return n }
        let end = min(n, params.max), barrier = min(end, params.avg)
        var h: UInt64 = 0
        var i = params.min
        while i < end {
            h = (h << 1) &+ MVCCore.gearTable[Int(b[i])]
            if h & (i < barrier ? params.maskS : params.maskL) == 0 { return i + 1 }
            i += 1
        }
        return end
    }

    @Test("the unrolled cut-point search cuts where the one-byte rule does")
    func gearMatchesReference() {
        let sets = [
            ChunkerParameters(min: 64, avg: 128, max: 512),
            ChunkerParameters(min: 100, avg: 256, max: 1_000),
            ChunkerParameters(min: 1024, avg: 4096, max: 16384),
            ChunkerParameters.standard,
        ]
        // Random bytes, and runs of one byte value (whose hashes repeat) with random bytes mixed in.
        for params in sets {
            let chunker = Chunker(params)
            let random = Self.noise(max(256 << 10, 4 * params.max), seed: 21)
            var runs = [UInt8](repeating: 0x41, count: random.count)
            for i in stride(from: 0, to: runs.count, by: 997) { runs[i] = random[i] }
            for data in [random, runs] {
                var pos = 0
                var cuts = 0
                while pos < data.count {
                    // Inputs that end at every offset near the decision points, then the rest.
                    let remaining = data.count - pos
                    let lengths = [params.min + 1, params.min + 3, params.avg - 1, params.avg + 2, params.max - 1, remaining]
                    for length in lengths where length <= remaining && length > 0 {
                        let slice = Array(data[pos..<(pos + length)])
                        let got = slice.withUnsafeBytes { chunker.nextCut($0, atEnd: true) }
                        #expect(got == Self.referenceCut(slice, params), "params \(params), offset \(pos), length \(length)")
                    }
                    let cut = Self.referenceCut(Array(data[pos..<min(data.count, pos + params.max)]), params)
                    pos += cut
                    cuts += 1
                }
                #expect(cuts > 1)
            }
        }
    }
}

/// splitmix64, for reproducible test inputs.
struct SplitMix {
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
