internal import CMVCCrypto
internal import CMVCKernels

/// A SHA-256 object id: 32 bytes, written as 64 lowercase hex digits.
public struct ObjectID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    // Four big-endian words: comparison of the words is comparison of the bytes.
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let byteCount = 32

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// Builds an id from 32 raw bytes.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "an object id is 32 bytes")
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { words[i / 8] = (words[i / 8] << 8) | UInt64(b) }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// Parses exactly 64 hex digits (either case); nil otherwise.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 64 else { return nil }
        var w = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var i = 0
        for c in hex.utf8 {
            guard let v = hexValue(c) else { return nil }
            switch i >> 4 {
            case 0: w.0 = w.0 << 4 | UInt64(v)
            case 1: w.1 = w.1 << 4 | UInt64(v)
            case 2: w.2 = w.2 << 4 | UInt64(v)
            default: w.3 = w.3 << 4 | UInt64(v)
            }
            i += 1
        }
        self.init(w0: w.0, w1: w.1, w2: w.2, w3: w.3)
    }

    /// The 32 raw bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](); out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(s))) }
        }
        return out
    }

    public var hex: String {
        var out = [UInt8](); out.reserveCapacity(64)
        appendHex(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the 64 lowercase hex digits to a byte buffer (no intermediate String).
    func appendHex(to out: inout [UInt8]) {
        for w in [w0, w1, w2, w3] {
            for s in stride(from: 60, through: 0, by: -4) {
                let v = UInt8(truncatingIfNeeded: w >> UInt64(s)) & 15
                out.append(v < 10 ? v + 48 : v + 87)
            }
        }
    }

    /// The first 12 hex digits, for people.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }

    /// The first byte, used for fan-out tables and shard directories.
    var firstByte: UInt8 { UInt8(truncatingIfNeeded: w0 >> 56) }

    public static func < (a: ObjectID, b: ObjectID) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let id = ObjectID(hex: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an object id: \(s)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }

    /// SHA-256 of a byte buffer.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> ObjectID {
        let h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    public static func hash(_ bytes: [UInt8]) -> ObjectID {
        bytes.withUnsafeBytes { hash($0) }
    }
}

@inline(__always)
func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

func isHexString(_ s: some StringProtocol) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { hexValue($0) != nil }
}

/// Incremental SHA-256 over OpenSSL's EVP interface (uses the CPU's SHA extensions).
///
/// Not `Sendable`: one hasher belongs to one thread at a time.
public final class SHA256 {
    private let ctx: OpaquePointer

    public init() {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        self.ctx = ctx
        guard EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else { fatalError("EVP_DigestInit_ex(sha256) failed") }
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate cannot fail for an initialised SHA-256 context.
        _ = EVP_DigestUpdate(ctx, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// Finishes the digest; the hasher must not be used afterwards.
    public func finalize() -> ObjectID {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = out.withUnsafeMutableBytes { EVP_DigestFinal_ex(ctx, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &len) }
        return ObjectID(bytes: out)
    }
}

extension ObjectID {
    /// The id whose 32 bytes (a SHA-256 digest, big-endian words) start at `p`.
    init(digest p: UnsafeRawPointer) {
        func word(_ i: Int) -> UInt64 { UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        self.init(w0: word(0), w1: word(1), w2: word(2), w3: word(3))
    }

    /// SHA-256 of each buffer, several side by side (see `CMVCKernels`): the way to verify many
    /// chunks at once.
    static func hashMany(_ buffers: [UnsafeRawBufferPointer]) -> [ObjectID] {
        var out: [ObjectID] = []
        out.reserveCapacity(buffers.count)
        let batch = 64
        var digests = [UInt8](repeating: 0, count: 32 * batch)
        var start = 0
        while start < buffers.count {
            let group = buffers[start..<min(start + batch, buffers.count)]
            let pointers: [UnsafeRawPointer?] = group.map { $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1) }
            let lengths = group.map(\.count)
            digests.withUnsafeMutableBytes { d in
                mvc_sha256_many(group.count, pointers, lengths, d.baseAddress!.assumingMemoryBound(to: UInt8.self))
                for i in 0..<group.count { out.append(ObjectID(digest: d.baseAddress! + 32 * i)) }
            }
            start += group.count
        }
        return out
    }
}

/// A SHA-256 stream over `CMVCKernels`. Two streams can take the same bytes in one pass
/// (`update(_:_:_:)`), which on x86 costs little more than one: a file's blob id and the id of the
/// chunk being cut are computed together.
///
/// Not `Sendable`: one stream belongs to one thread at a time.
final class SHAStream {
    private var ctx = mvc_sha256()

    init() { mvc_sha256_init(&ctx) }

    func reset() { mvc_sha256_init(&ctx) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        mvc_sha256_update(&ctx, base, bytes.count)
    }

    /// Feeds `bytes` to both streams.
    static func update(_ a: SHAStream, _ b: SHAStream, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        mvc_sha256_update2(&a.ctx, &b.ctx, base, bytes.count)
    }

    /// The digest of what was fed; then the stream starts over, empty.
    func finalize() -> ObjectID {
        var digest = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let id = withUnsafeMutableBytes(of: &digest) { d -> ObjectID in
            mvc_sha256_final(&ctx, d.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return ObjectID(digest: d.baseAddress!)
        }
        mvc_sha256_init(&ctx)
        return id
    }

    /// Which SHA-256 code runs (tests compare them; process-wide).
    package enum Implementation: Int32 { case automatic = 0, openSSL = 1, interleaved = 2 }
    package static func use(_ implementation: Implementation) { mvc_sha256_set_mode(implementation.rawValue) }
    package static var accelerated: Bool { mvc_sha256_accelerated() != 0 }
}
