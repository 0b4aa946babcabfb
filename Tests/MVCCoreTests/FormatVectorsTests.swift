import Foundation
import Testing
@testable import MVCCore

/// Recomputes every value of `Fixtures/vectors/format-vectors.json` (the ids and bytes quoted in
/// docs/FORMAT.md) with MVCCore, and checks that decoding rejects what is not canonical.
/// `Fixtures/vectors/reference_chunker.py` checks the same file with an independent implementation.
@Suite("Format vectors (docs/FORMAT.md)")
struct FormatVectorsTests {
    // MARK: - The vector file

    struct Vectors: Decodable {
        struct Gear: Decodable { var seed: String; var first: [String]; var last: String }
        struct Blob: Decodable { var name: String; var content: String; var id: String }
        struct TreeVector: Decodable { var name: String; var entries: [TreeEntry]; var bytes: String; var id: String }
        struct CommitFields: Decodable {
            var tree: ObjectID
            var parents: [ObjectID]
            var artifact: String
            var kind: ArtifactKind
            var version: Int
            var paths: [String]
            var inputs: [InputEdge]
            var code: CodeRef?
            var params: [String: String]
            var metrics: [String: Double]
            var environment: [String: String]
            var author: Signature
            var message: String
        }
        struct CommitVector: Decodable { var name: String; var fields: CommitFields; var bytes: String; var id: String }
        struct Number: Decodable { var value: String; var text: String }
        struct ChunkerVector: Decodable {
            struct Input: Decodable { var generator: String; var seed: UInt64?; var length: Int }
            struct ChunkListVector: Decodable { var length: Int; var checksum: String; var firstChunkId: String; var blobId: String }
            var name: String
            var input: Input
            var parameters: ChunkerParameters
            var lengths: [Int]
            var chunkList: ChunkListVector?
        }
        var formatVersion: Int
        var gear: Gear
        var blobs: [Blob]
        var trees: [TreeVector]
        var commits: [CommitVector]
        var numbers: [Number]
        var chunker: [ChunkerVector]
        struct PackVector: Decodable {
            struct Object: Decodable { var storage: String; var content: String }
            var name: String
            var objects: [Object]
            var packLength: Int
            var indexLength: Int
            var packName: String
        }
        var packs: [PackVector]
        struct MoveFields: Decodable {
            var artifact: String
            var stage: String
            var sequence: Int
            var previous: ObjectID?
            var commit: ObjectID?
            var weight: Int?
            var action: MoveAction
            var actor: Signature
            var command: String?
            var reason: String
        }
        struct MoveVector: Decodable { var name: String; var fields: MoveFields; var bytes: String; var id: String }
        var moves: [MoveVector]
        struct AnnotationFields: Decodable {
            var target: ObjectID
            var artifact: String
            var previous: ObjectID?
            var metrics: [String: Double]
            var retired: Bool
            var actor: Signature
            var message: String
        }
        struct AnnotationVector: Decodable { var name: String; var fields: AnnotationFields; var bytes: String; var id: String }
        var annotations: [AnnotationVector]
        struct Routing: Decodable {
            struct Key: Decodable { var key: String; var bucket: Int }
            var artifact: String
            var keys: [Key]
        }
        var routing: Routing
    }

    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/vectors/format-vectors.json")

    static let vectors: Vectors = {
        do {
            return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot read \(url.path): \(error)")
        }
    }()

    static func makeCommit(_ f: Vectors.CommitFields) -> Commit {
        Commit(tree: f.tree, parents: f.parents, artifact: f.artifact, kind: f.kind, version: f.version, paths: f.paths,
               inputs: f.inputs, code: f.code, params: f.params, metrics: f.metrics, environment: f.environment,
               author: f.author, message: f.message)
    }

    static func makeMove(_ f: Vectors.MoveFields) -> StageMove {
        StageMove(artifact: f.artifact, stage: f.stage, sequence: f.sequence, previous: f.previous, commit: f.commit,
                  weight: f.weight, action: f.action, actor: f.actor, command: f.command, reason: f.reason)
    }

    static func makeAnnotation(_ f: Vectors.AnnotationFields) -> Annotation {
        Annotation(target: f.target, artifact: f.artifact, previous: f.previous, metrics: f.metrics, retired: f.retired,
                   actor: f.actor, message: f.message)
    }

    /// Framed bytes with `body` as the body of `kind` (for building non-canonical variants).
    static func frame(_ kind: String, _ body: String) -> [UInt8] {
        Array("\(kind) \(body.utf8.count)\0\(body)".utf8)
    }

    /// The body of framed bytes given as a string.
    static func body(_ framed: String) -> String {
        String(framed[framed.index(after: framed.firstIndex(of: "\0")!)...])
    }

    /// Runs `body` and checks that it throws an `MVCError` with `code`.
    static func expectError(_ code: MVCError.Code, _ what: String, _ body: () throws(MVCError) -> Void,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        do throws(MVCError) {
            try body()
            Issue.record("\(what): accepted, expected a '\(code)' error", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(what): \(error.message)", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Generators of the chunker inputs

    /// xorshift64*, one byte (the top byte of the product) per step; the same generator as
    /// `ChunkerTests.noise` in HashingAndChunkingTests.swift.
    static func xorshift64star(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        return (0..<count).map { _ in
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27
            return UInt8(truncatingIfNeeded: (x &* 0x2545F4914F6CDD1D) >> 56)
        }
    }

    /// SHA-256 of the 8-byte big-endian counters 0, 1, 2, ... concatenated, cut to `count`.
    static func sha256Counter(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 32)
        var i: UInt64 = 0
        while out.count < count {
            out.append(contentsOf: ObjectID.hash((0..<8).map { UInt8(truncatingIfNeeded: i >> UInt64(56 - 8 * $0)) }).bytes)
            i += 1
        }
        return Array(out.prefix(count))
    }

    static func input(_ i: Vectors.ChunkerVector.Input) -> [UInt8] {
        switch i.generator {
        case "xorshift64*": return xorshift64star(i.length, seed: i.seed ?? 0)
        case "sha256-counter": return sha256Counter(i.length)
        default: fatalError("unknown generator \(i.generator)")
        }
    }

    // MARK: - Tests

    @Test("the file describes format version 1")
    func version() {
        #expect(Self.vectors.formatVersion == StoreConfig.currentFormatVersion)
    }

    @Test("gear table: splitmix64 from the documented seed")
    func gear() {
        let g = Self.vectors.gear
        #expect(g.seed == "0x6d76632d67656172")
        #expect(Array(gearTable.prefix(g.first.count)) == g.first.map { UInt64($0.dropFirst(2), radix: 16)! })
        #expect(gearTable[255] == UInt64(g.last.dropFirst(2), radix: 16)!)
    }

    @Test("blob ids are SHA-256 of the bytes, unframed")
    func blobs() {
        for b in Self.vectors.blobs {
            #expect(ObjectID.hash(Array(b.content.utf8)).hex == b.id, "\(b.name)")
        }
    }

    @Test("trees: canonical bytes and id from the entries, and back")
    func trees() throws {
        #expect(Self.vectors.trees.count >= 2)
        for v in Self.vectors.trees {
            let tree = try Tree(entries: v.entries)
            #expect(tree.encoded() == Array(v.bytes.utf8), "\(v.name)")
            #expect(tree.id.hex == v.id, "\(v.name)")
            let decoded = try Tree.decode(Array(v.bytes.utf8), id: tree.id)
            #expect(decoded == tree, "\(v.name)")
            #expect(decoded.encoded() == Array(v.bytes.utf8), "\(v.name)")
        }
    }

    @Test("commits: canonical bytes and id from the fields, and back")
    func commits() throws {
        #expect(Self.vectors.commits.count >= 2)
        for v in Self.vectors.commits {
            let commit = Self.makeCommit(v.fields)
            try commit.validate()
            #expect(String(decoding: commit.encoded(), as: UTF8.self) == v.bytes, "\(v.name)")
            #expect(commit.encoded() == Array(v.bytes.utf8), "\(v.name)")
            #expect(commit.id.hex == v.id, "\(v.name)")
            let decoded = try Commit.decode(Array(v.bytes.utf8), id: commit.id)
            #expect(decoded == commit, "\(v.name)")
        }
    }

    @Test("metric numbers: integers below 1e15, else the shortest round-trip decimal")
    func numbers() {
        for n in Self.vectors.numbers {
            #expect(Commit.formatNumber(Double(n.value)!) == n.text, "\(n.value)")
        }
    }

    @Test("chunker: lengths of the documented inputs")
    func chunker() throws {
        for v in Self.vectors.chunker {
            try v.parameters.validate()
            let data = Self.input(v.input)
            let lengths = Chunker(v.parameters).cuts(data)
            #expect(lengths == v.lengths, "\(v.name)")
            guard let expected = v.chunkList else { continue }
            var chunks: [ChunkList.Chunk] = []
            var pos = 0
            for n in lengths {
                chunks.append(.init(id: ObjectID.hash(Array(data[pos..<(pos + n)])), size: UInt32(n)))
                pos += n
            }
            let record = ChunkList(chunks: chunks).encoded()
            #expect(record.count == expected.length)
            #expect(ObjectID(bytes: record.suffix(32)).hex == expected.checksum)
            #expect(chunks.first?.id.hex == expected.firstChunkId)
            let blobID = ObjectID.hash(data)
            #expect(blobID.hex == expected.blobId)
            #expect(try ChunkList.decode(record, id: blobID) == ChunkList(chunks: chunks))
            var flipped = record
            flipped[30] ^= 1
            Self.expectError(.corruptObject, "chunk list with a flipped bit") { () throws(MVCError) in
                _ = try ChunkList.decode(flipped, id: blobID)
            }
        }
    }

    @Test("a blob is one raw object when the chunker yields one chunk, else a chunk list")
    func storage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mvc-vectors-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let big = Self.vectors.chunker.first(where: { $0.chunkList != nil }), let expected = big.chunkList else {
            Issue.record("no chunk list vector"); return
        }
        let repo = try Repository.initialize(at: dir, chunking: big.parameters)
        #expect(big.parameters == repo.config.chunking)
        try Data(Self.input(big.input)).write(to: URL(fileURLWithPath: dir + "/big.bin"))
        try Data("hello, mvc\n".utf8).write(to: URL(fileURLWithPath: dir + "/small.txt"))
        _ = try repo.commit(CommitRequest(paths: ["big.bin", "small.txt"], name: "vectors", baseDirectory: dir))
        let files = try repo.files(ofTree: try repo.resolveCommit("vectors").commit.tree)
        #expect(files.map(\.id.hex) == [expected.blobId, Self.vectors.blobs[0].id])

        let bigID = ObjectID(hex: expected.blobId)!
        let loc = try #require(try repo.objects.locate(bigID))
        #expect(loc.kind == .chunks)
        let record = try repo.objects.readRecord(loc, id: bigID, limit: 1 << 20)
        #expect(ObjectID(bytes: record.suffix(32)).hex == expected.checksum)
        #expect(try ChunkList.decode(record, id: bigID).chunks.map { Int($0.size) } == big.lengths)
        #expect(try repo.objects.size(of: bigID) == UInt64(big.input.length))

        let smallID = ObjectID(hex: Self.vectors.blobs[0].id)!
        #expect(try repo.objects.locate(smallID)?.kind == .raw)
        #expect(try repo.objects.read(smallID) == Array("hello, mvc\n".utf8))
    }

    @Test("packs: the index names the pack; objects read back by id")
    func packs() throws {
        for v in Self.vectors.packs {
            let objects = FileManager.default.temporaryDirectory.appendingPathComponent("mvc-pack-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: objects) }
            let writer = try PackWriter(directory: objects + "/pack")
            var ids: [ObjectID] = []
            for o in v.objects {
                let bytes = Array(o.content.utf8)
                let id = ObjectID.hash(bytes)
                ids.append(id)
                try bytes.withUnsafeBytes { b in try writer.append(id, kind: o.storage == "chunks" ? .chunks : .raw, b) }
            }
            let name = try #require(try writer.finish())
            #expect(name == v.packName, "\(v.name)")
            func size(_ ext: String) throws -> Int? {
                try FileManager.default.attributesOfItem(atPath: "\(objects)/pack/pack-\(name).\(ext)")[.size] as? Int
            }
            #expect(try size("pack") == v.packLength)
            #expect(try size("idx") == v.indexLength)
            let store = ObjectStore(directory: objects)
            for (id, o) in zip(ids, v.objects) {
                #expect(try store.read(id) == Array(o.content.utf8))
            }
        }
    }

    // MARK: - Non-canonical variants are corrupt

    @Test("trees that are not canonical are rejected")
    func nonCanonicalTrees() throws {
        let v = try #require(Self.vectors.trees.first { $0.entries.count >= 2 })
        let body = Self.body(v.bytes)
        var lines = body.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        let id = ObjectID(hex: v.id)!
        #expect(throws: Never.self) { try Tree.decode(Self.frame("tree", body), id: id) }

        lines.swapAt(0, 1)
        let unsorted = lines.joined(separator: "\n") + "\n"
        Self.expectError(.corruptObject, "unsorted entries") { () throws(MVCError) in _ = try Tree.decode(Self.frame("tree", unsorted), id: id) }

        let entry = v.entries[0]
        for bad in ["..", ".", "", "a/b"] {
            let text = "\(entry.kind.rawValue) \(entry.size) \(entry.id.hex) \(bad)\n"
            Self.expectError(.corruptObject, "entry named '\(bad)'") { () throws(MVCError) in _ = try Tree.decode(Self.frame("tree", text), id: id) }
            Self.expectError(.invalidName, "building an entry named '\(bad)'") { () throws(MVCError) in
                _ = try Tree(entries: [TreeEntry(name: bad, kind: .file, size: 0, id: entry.id)])
            }
        }
        let twice = "\(entry.kind.rawValue) \(entry.size) \(entry.id.hex) x\n\(entry.kind.rawValue) \(entry.size) \(entry.id.hex) x\n"
        let variants: [(String, [UInt8])] = [
            ("a duplicate name", Self.frame("tree", twice)),
            ("an upper-case id", Self.frame("tree", "\(entry.kind.rawValue) \(entry.size) \(entry.id.hex.uppercased()) x\n")),
            ("a size with a leading zero", Self.frame("tree", "\(entry.kind.rawValue) 0\(entry.size) \(entry.id.hex) x\n")),
            ("an unknown kind", Self.frame("tree", "link \(entry.size) \(entry.id.hex) x\n")),
            ("no final newline", Self.frame("tree", String(body.dropLast()))),
            ("a wrong length in the header", Array("tree \(body.utf8.count + 1)\0\(body)".utf8)),
            ("a length with a leading zero", Array("tree 0\(body.utf8.count)\0\(body)".utf8)),
        ]
        for (what, bytes) in variants {
            Self.expectError(.corruptObject, what) { () throws(MVCError) in _ = try Tree.decode(bytes, id: id) }
        }
        Self.expectError(.invalidArgument, "a commit read as a tree") { () throws(MVCError) in
            _ = try Tree.decode(Array(Self.vectors.commits[0].bytes.utf8), id: id)
        }
    }

    @Test("commits that are not canonical are rejected")
    func nonCanonicalCommits() throws {
        let v = Self.vectors.commits[0]
        let id = ObjectID(hex: v.id)!
        let body = Self.body(v.bytes)
        let parts = body.components(separatedBy: "\n\n")
        let headers = parts[0].split(separator: "\n").map(String.init)
        let message = parts.dropFirst().joined(separator: "\n\n")
        func commit(_ h: [String], _ m: String = message) -> [UInt8] { Self.frame("commit", h.joined(separator: "\n") + "\n\n" + m) }
        #expect(throws: Never.self) { try Commit.decode(commit(headers), id: id) }

        func index(_ key: String) -> Int { headers.firstIndex { $0.hasPrefix(key + " ") }! }
        var reordered = headers
        reordered.swapAt(index("artifact"), index("kind"))
        var inputsSwapped = headers
        let firstInput = index("input")
        inputsSwapped.swapAt(firstInput, firstInput + 1)
        var number = headers
        number[index("metric")] += "0"
        var upper = headers
        upper[index("tree")] = "tree " + Self.vectors.commits[0].fields.tree.hex.uppercased()
        var unknown = headers
        unknown.insert("stage production", at: index("author"))
        var noAuthor = headers
        noAuthor.remove(at: index("author"))
        var twice = headers
        twice.insert(headers[index("param")], at: index("param"))
        var tz = headers
        tz[index("author")] = tz[index("author")].replacingOccurrences(of: "+0000", with: "-0000")

        let variants: [(String, [UInt8])] = [
            ("reordered headers (kind before artifact)", commit(reordered)),
            ("inputs out of order", commit(inputsSwapped)),
            ("a metric with a trailing zero", commit(number)),
            ("an upper-case tree id", commit(upper)),
            ("an unknown header", commit(unknown)),
            ("no author", commit(noAuthor)),
            ("a repeated param line", commit(twice)),
            ("time zone -0000", commit(tz)),
            ("a message with trailing spaces", commit(headers, message.dropLast() + "  \n")),
            ("a message without its final newline", commit(headers, String(message.dropLast()))),
            ("no blank line before the message", Self.frame("commit", headers.joined(separator: "\n") + "\n")),
        ]
        for (what, bytes) in variants {
            Self.expectError(.corruptObject, what) { () throws(MVCError) in _ = try Commit.decode(bytes, id: id) }
        }
        Self.expectError(.invalidArgument, "a tree read as a commit") { () throws(MVCError) in
            _ = try Commit.decode(Array(Self.vectors.trees[0].bytes.utf8), id: id)
        }
    }

    // MARK: - Stage moves, annotations, routing (docs/FORMAT.md 3.7, 3.8, 11.2)

    @Test("stage moves: canonical bytes and id from the fields, and back")
    func moves() throws {
        #expect(Self.vectors.moves.count >= 2)
        for v in Self.vectors.moves {
            let move = Self.makeMove(v.fields)
            try move.validate()
            #expect(String(decoding: move.encoded(), as: UTF8.self) == v.bytes, "\(v.name)")
            #expect(move.encoded() == Array(v.bytes.utf8), "\(v.name)")
            let id = ObjectID.hash(move.encoded())
            #expect(id.hex == v.id, "\(v.name)")
            let decoded = try StageMove.decode(Array(v.bytes.utf8), id: id)
            #expect(decoded == move, "\(v.name)")
            #expect(decoded.encoded() == Array(v.bytes.utf8), "\(v.name)")
        }
    }

    @Test("stage moves chain: each previous is the move before, one sequence number lower")
    func moveChains() throws {
        let byID = Dictionary(uniqueKeysWithValues: Self.vectors.moves.map { ($0.id, $0.fields) })
        var linked = 0
        for v in Self.vectors.moves {
            guard let previous = v.fields.previous, let p = byID[previous.hex] else { continue }
            #expect(p.artifact == v.fields.artifact && p.stage == v.fields.stage, "\(v.name)")
            #expect(p.sequence == v.fields.sequence - 1, "\(v.name)")
            linked += 1
        }
        #expect(linked >= 4)
        // The whole chain of iris-mlp@production, from what its ref names back to the first move.
        var cursor: String? = "a403a95b9ef9a36626aed9a53037842338d93edd84842822ed95129a75ea704d"
        var versions: [String] = []
        while let id = cursor {
            let f = try #require(byID[id], "move \(id) is not a vector")
            versions.append(String(f.commit!.hex.prefix(8)))
            cursor = f.previous?.hex
        }
        #expect(versions == ["cdc96034", "76a158a0", "cdc96034", "76a158a0", "cdc96034"])
    }

    @Test("annotations: canonical bytes and id from the fields, and back")
    func annotations() throws {
        #expect(Self.vectors.annotations.count >= 2)
        for v in Self.vectors.annotations {
            let annotation = Self.makeAnnotation(v.fields)
            try annotation.validate()
            #expect(String(decoding: annotation.encoded(), as: UTF8.self) == v.bytes, "\(v.name)")
            let id = ObjectID.hash(annotation.encoded())
            #expect(id.hex == v.id, "\(v.name)")
            let decoded = try Annotation.decode(Array(v.bytes.utf8), id: id)
            #expect(decoded == annotation, "\(v.name)")
            #expect(decoded.encoded() == Array(v.bytes.utf8), "\(v.name)")
        }
    }

    @Test("routing buckets: SHA-256 of 'mvc-route' NUL name NUL key, first 8 bytes big-endian, mod 10000")
    func routingBuckets() {
        let r = Self.vectors.routing
        #expect(r.keys.count >= 5)
        for k in r.keys {
            #expect(Repository.routingBucket(artifact: r.artifact, key: k.key) == k.bucket, "key '\(k.key)'")
        }
    }

    @Test("routing: a stage at 10% serves buckets 0-999, production the rest")
    func routingBoundary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mvc-route-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = try Repository.initialize(at: dir)
        try Data("stages: [canary]\n".utf8).write(to: URL(fileURLWithPath: dir + "/mvc.yaml"))
        let name = Self.vectors.routing.artifact
        for content in ["v1", "v2"] {
            try Data(content.utf8).write(to: URL(fileURLWithPath: dir + "/m.bin"))
            _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: name, kind: .model, baseDirectory: dir))
        }
        _ = try repo.promote(PromoteRequest(revision: "\(name)@v1", stage: "production"))
        _ = try repo.promote(PromoteRequest(revision: "\(name)@v2", stage: "canary", weight: 10))
        for k in Self.vectors.routing.keys {
            let d = try repo.route(name, key: k.key)
            #expect(d.bucket == k.bucket)
            #expect(d.serve.stage == (k.bucket < 1000 ? "canary" : "production"), "key '\(k.key)' bucket \(k.bucket)")
        }
    }

    /// Header lines and message of a framed move or annotation.
    static func split(_ framed: String) -> (headers: [String], message: String) {
        let body = Self.body(framed)
        let r = body.range(of: "\n\n")!
        return (body[..<r.lowerBound].split(separator: "\n").map(String.init), String(body[r.upperBound...]))
    }

    @Test("stage moves that are not canonical are rejected")
    func nonCanonicalMoves() throws {
        // The synthetic vector has every optional line.
        let v = try #require(Self.vectors.moves.first { $0.fields.previous != nil && $0.fields.weight != nil && $0.fields.command != nil })
        let id = ObjectID(hex: v.id)!
        let (headers, message) = Self.split(v.bytes)
        func move(_ h: [String], _ m: String = message) -> [UInt8] { Self.frame("move", h.joined(separator: "\n") + "\n\n" + m) }
        func index(_ key: String) -> Int { headers.firstIndex { $0.hasPrefix(key + " ") }! }
        func replacing(_ key: String, with line: String) -> [String] { var h = headers; h[index(key)] = line; return h }
        #expect(throws: Never.self) { try StageMove.decode(move(headers), id: id) }

        var reordered = headers
        reordered.swapAt(index("artifact"), index("stage"))
        var commitFirst = headers
        commitFirst.swapAt(index("previous"), index("commit"))
        var noPrevious = headers
        noPrevious.remove(at: index("previous"))
        var noActor = headers
        noActor.remove(at: index("actor"))
        var twice = headers
        twice.insert(headers[index("commit")], at: index("commit"))
        var unknown = headers
        unknown.insert("note hello", at: index("action"))
        var flag = headers
        flag.insert("retired", at: index("action"))
        let previous = v.fields.previous!.hex, commit = v.fields.commit!.hex

        let variants: [(String, [UInt8])] = [
            ("reordered headers (stage before artifact)", move(reordered)),
            ("commit before previous", move(commitFirst)),
            ("a weight of 101", move(replacing("weight", with: "weight 101"))),
            ("a negative weight", move(replacing("weight", with: "weight -1"))),
            ("a weight with a leading zero", move(replacing("weight", with: "weight 010"))),
            ("sequence 1 with a previous", move(replacing("sequence", with: "sequence 1"))),
            ("a sequence above 1 without a previous", move(noPrevious)),
            ("sequence 0", move(replacing("sequence", with: "sequence 0"))),
            ("a sequence with a leading zero", move(replacing("sequence", with: "sequence 0\(v.fields.sequence)"))),
            ("a sequence with a plus sign", move(replacing("sequence", with: "sequence +\(v.fields.sequence)"))),
            ("an upper-case previous id", move(replacing("previous", with: "previous " + previous.uppercased()))),
            ("an upper-case commit id", move(replacing("commit", with: "commit " + commit.uppercased()))),
            ("a short commit id", move(replacing("commit", with: "commit " + String(commit.prefix(12))))),
            ("an unknown action", move(replacing("action", with: "action promoted"))),
            ("an invalid stage name (upper case)", move(replacing("stage", with: "stage Production"))),
            ("a stage named like a version", move(replacing("stage", with: "stage v2"))),
            ("a stage named latest", move(replacing("stage", with: "stage latest"))),
            ("an invalid artifact name", move(replacing("artifact", with: "artifact ../x"))),
            ("an unknown header", move(unknown)),
            ("an unknown flag line", move(flag)),
            ("a repeated commit line", move(twice)),
            ("no actor", move(noActor)),
            ("time zone -0000", move(replacing("actor", with: headers[index("actor")].replacingOccurrences(of: "-0130", with: "-0000")))),
            ("a reason with trailing spaces", move(headers, message.dropLast() + "  \n")),
            ("a reason without its final newline", move(headers, String(message.dropLast()))),
            ("no blank line before the reason", Self.frame("move", headers.joined(separator: "\n") + "\n")),
            ("a wrong length in the header", Array("move \(Self.body(v.bytes).utf8.count + 1)\0\(Self.body(v.bytes))".utf8)),
        ]
        for (what, bytes) in variants {
            Self.expectError(.corruptObject, what) { () throws(MVCError) in _ = try StageMove.decode(bytes, id: id) }
        }
        Self.expectError(.invalidArgument, "a commit read as a move") { () throws(MVCError) in
            _ = try StageMove.decode(Array(Self.vectors.commits[0].bytes.utf8), id: id)
        }
        Self.expectError(.invalidArgument, "a move read as a commit") { () throws(MVCError) in
            _ = try Commit.decode(Array(v.bytes.utf8), id: id)
        }
        Self.expectError(.invalidArgument, "an annotation read as a move") { () throws(MVCError) in
            _ = try StageMove.decode(Array(Self.vectors.annotations[0].bytes.utf8), id: id)
        }
        // The writer refuses the same values before anything is stored.
        var f = v.fields
        f.weight = 101
        Self.expectError(.invalidArgument, "building a move with a weight of 101") { () throws(MVCError) in try Self.makeMove(f).validate() }
        f = v.fields
        f.sequence = 1
        Self.expectError(.invalidArgument, "building a first move with a previous") { () throws(MVCError) in try Self.makeMove(f).validate() }
    }

    @Test("annotations that are not canonical are rejected")
    func nonCanonicalAnnotations() throws {
        let v = try #require(Self.vectors.annotations.first { $0.fields.metrics.count >= 2 && $0.fields.retired && $0.fields.previous != nil })
        let id = ObjectID(hex: v.id)!
        let (headers, message) = Self.split(v.bytes)
        func annotation(_ h: [String], _ m: String = message) -> [UInt8] { Self.frame("annotation", h.joined(separator: "\n") + "\n\n" + m) }
        func index(_ key: String) -> Int { headers.firstIndex { $0 == key || $0.hasPrefix(key + " ") }! }
        #expect(throws: Never.self) { try Annotation.decode(annotation(headers), id: id) }

        var reordered = headers
        reordered.swapAt(index("target"), index("artifact"))
        var metricsSwapped = headers
        metricsSwapped.swapAt(index("metric"), index("metric") + 1)
        var trailingZero = headers
        trailingZero[index("metric")] += "0"
        var duplicate = headers
        duplicate.insert(headers[index("metric")], at: index("metric"))
        var retiredFirst = headers
        let retired = retiredFirst.remove(at: index("retired"))
        retiredFirst.insert(retired, at: index("metric"))
        var retiredValue = headers
        retiredValue[index("retired")] = "retired yes"
        var unknownFlag = headers
        unknownFlag[index("retired")] = "obsolete"
        var upper = headers
        upper[index("target")] = "target " + v.fields.target.hex.uppercased()
        var noTarget = headers
        noTarget.remove(at: index("target"))
        var badKey = headers
        badKey[index("metric")] = "metric bad=key 1"

        let variants: [(String, [UInt8])] = [
            ("reordered headers (artifact before target)", annotation(reordered)),
            ("metrics out of order", annotation(metricsSwapped)),
            ("a metric with a trailing zero", annotation(trailingZero)),
            ("a repeated metric", annotation(duplicate)),
            ("retired before the metrics", annotation(retiredFirst)),
            ("'retired' with a value", annotation(retiredValue)),
            ("an unknown flag line", annotation(unknownFlag)),
            ("an upper-case target", annotation(upper)),
            ("no target", annotation(noTarget)),
            ("an invalid metric key", annotation(badKey)),
            ("a message with trailing spaces", annotation(headers, message + "x  \n")),
            ("no blank line before the message", Self.frame("annotation", headers.joined(separator: "\n") + "\n")),
        ]
        for (what, bytes) in variants {
            Self.expectError(.corruptObject, what) { () throws(MVCError) in _ = try Annotation.decode(bytes, id: id) }
        }
        Self.expectError(.invalidArgument, "a move read as an annotation") { () throws(MVCError) in
            _ = try Annotation.decode(Array(Self.vectors.moves[0].bytes.utf8), id: id)
        }
    }
}
