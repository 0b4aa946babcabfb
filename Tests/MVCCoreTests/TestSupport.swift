import Foundation
@testable import MVCCore

/// A fresh temporary directory, removed when the value is released.
final class TempDir {
    let path: String

    init() {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/mvc-unit-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ rel: String, _ bytes: [UInt8]) {
        let full = path + "/" + rel
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(bytes))
    }

    func write(_ rel: String, _ text: String) { write(rel, Array(text.utf8)) }

    func read(_ rel: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path + "/" + rel).map { [UInt8]($0) }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
func noise(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27
        return UInt8(truncatingIfNeeded: (x &* 0x2545F4914F6CDD1D) >> 56)
    }
}

let testActor = Signature(name: "Test", email: "test@example.com", time: 1_767_225_600, tzOffsetMinutes: 0)

/// Small chunks so that tests exercise chunk lists with little data.
let smallChunks = ChunkerParameters(min: 1024, avg: 4096, max: 16384)
