internal import CMVCKernels

/// Content-defined chunking with a gear rolling hash and FastCDC's normalised cut points.
///
/// Normative description in `docs/FORMAT.md` ("Chunking"). In short, for a chunk starting at the
/// current position, with `n` bytes available:
/// - if `n <= min`, the chunk is all `n` bytes;
/// - otherwise `h = 0`, and for `i` from `min` to `min(n, max) - 1`:
///   `h = (h << 1) &+ GEAR[byte[i]]` (64-bit wrapping); the chunk ends after byte `i` when
///   `h & mask == 0`, with `mask = maskS` while `i < avg` and `maskL` after;
/// - with no cut point found, the chunk is `min(n, max)` bytes.
/// `maskS` is the top `log2(avg) + 1` bits of a 64-bit word, `maskL` the top `log2(avg) - 1` bits.
public struct ChunkerParameters: Sendable, Equatable, Codable {
    public var min: Int
    public var avg: Int
    public var max: Int

    public static let algorithm = "fastcdc-gear-v1"

    /// 32 KiB / 128 KiB / 512 KiB, chosen by measurement (docs/PERFORMANCE.md, "Chunk sizes"): a
    /// fine-tune that rewrites 10% of a model's tensors adds 10.5% of the file to the store (11.1%
    /// with 64 KiB / 256 KiB / 1 MiB), and the per-chunk costs (an index entry, a lookup, ~8,000
    /// chunks per GiB) stay small next to hashing. Stores keep the sizes their config records.
    public static let standard = ChunkerParameters(min: 32 << 10, avg: 128 << 10, max: 512 << 10)

    /// Parses `MIN/AVG/MAX` with optional K/M suffixes (powers of 1024), e.g. `32K/128K/512K`.
    public static func parse(_ text: String) throws(MVCError) -> ChunkerParameters {
        func size(_ s: Substring) -> Int? {
            var digits = s, scale = 1
            switch s.last {
            case "K", "k": scale = 1 << 10; digits = s.dropLast()
            case "M", "m": scale = 1 << 20; digits = s.dropLast()
            default: break
            }
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let v = Int(digits), v > 0, v <= (64 << 20) / scale else { return nil }
            return v * scale
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, let lo = size(parts[0]), let avg = size(parts[1]), let hi = size(parts[2]) else {
            throw MVCError(.invalidArgument, "chunking '\(text)' is not MIN/AVG/MAX", hint: "e.g. 32K/128K/512K (K = 1024 bytes, M = 1024 K)")
        }
        let p = ChunkerParameters(min: lo, avg: avg, max: hi)
        try p.validate()
        return p
    }

    public init(min: Int, avg: Int, max: Int) {
        self.min = min; self.avg = avg; self.max = max
    }

    /// Checks the invariants the algorithm needs; used when reading the store's config.
    public func validate() throws(MVCError) {
        guard min >= 64, avg > min, max > avg, avg & (avg - 1) == 0, max <= 64 << 20 else {
            throw MVCError(.badConfig, "invalid chunking sizes min=\(min) avg=\(avg) max=\(max)",
                           hint: "need 64 <= min < avg < max <= 64 MiB with avg a power of two")
        }
    }

    var maskS: UInt64 { topBits(avgBits + 1) }
    var maskL: UInt64 { topBits(avgBits - 1) }
    private var avgBits: Int { avg.trailingZeroBitCount }
    private func topBits(_ n: Int) -> UInt64 { n <= 0 ? 0 : ~UInt64(0) << UInt64(64 - n) }
}

/// The 256 gear values: successive outputs of splitmix64 seeded with 0x6d76632d67656172
/// ("mvc-gear" in ASCII). FORMAT.md gives the first values; a test recomputes them.
let gearTable: [UInt64] = {
    var state: UInt64 = 0x6d76_632d_6765_6172
    var table = [UInt64]()
    table.reserveCapacity(256)
    for _ in 0..<256 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        table.append(z ^ (z >> 31))
    }
    return table
}()

public struct Chunker: Sendable {
    public let parameters: ChunkerParameters
    private let maskS: UInt64
    private let maskL: UInt64

    public init(_ parameters: ChunkerParameters) {
        self.parameters = parameters
        maskS = parameters.maskS
        maskL = parameters.maskL
    }

    /// Length of the chunk that starts at `buffer[0]`, or nil when more bytes are needed to decide
    /// (fewer than `max` available and not at end of input).
    public func nextCut(_ buffer: UnsafeRawBufferPointer, atEnd: Bool) -> Int? {
        let n = buffer.count
        if n < parameters.max && !atEnd { return nil }
        if n <= parameters.min { return n }
        let bytes = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        return gearTable.withUnsafeBufferPointer { gear in
            mvc_gear_cut(bytes, n, parameters.min, parameters.avg, parameters.max, maskS, maskL, gear.baseAddress!)
        }
    }

    /// All chunk lengths of an in-memory buffer (tests and small inputs).
    public func cuts(_ bytes: [UInt8]) -> [Int] {
        bytes.withUnsafeBytes { all in
            var out: [Int] = []
            var pos = 0
            while pos < all.count {
                let len = nextCut(UnsafeRawBufferPointer(rebasing: all[pos...]), atEnd: true)!
                out.append(len)
                pos += len
            }
            return out
        }
    }
}
