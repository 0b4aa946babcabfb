/// The kinds of framed objects. Blobs are not framed: a blob's id is SHA-256 of the file's bytes.
public enum ObjectKind: String, Sendable, Codable, CaseIterable {
    case tree, commit, move, annotation
}

/// Framing: `<kind> <decimal body length>\0<body>`. The id of a framed object is SHA-256 of the
/// whole framed byte string, so no tree can be read as a commit or vice versa.
enum Framing {
    static func frame(_ kind: ObjectKind, _ body: [UInt8]) -> [UInt8] {
        var out = Array("\(kind.rawValue) \(body.count)".utf8)
        out.append(0)
        out.append(contentsOf: body)
        return out
    }

    /// Splits a framed object into its kind and body, checking the header exactly.
    static func unframe(_ bytes: [UInt8], id: ObjectID, expecting kind: ObjectKind) throws(MVCError) -> ArraySlice<UInt8> {
        guard let nul = bytes.prefix(32).firstIndex(of: 0) else {
            throw .corrupt(id, "no object header (is it a \(kind.rawValue)?)")
        }
        let header = String(decoding: bytes[..<nul], as: UTF8.self)
        let parts = header.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let len = Int(parts[1]), String(len) == parts[1] else {
            throw .corrupt(id, "malformed object header '\(header)'")
        }
        guard parts[0] == kind.rawValue else {
            throw MVCError(.invalidArgument, "object \(id.short) is a \(parts[0]), not a \(kind.rawValue)")
        }
        guard len == bytes.count - nul - 1 else {
            throw .corrupt(id, "header says \(len) bytes, object has \(bytes.count - nul - 1)")
        }
        return bytes[(nul + 1)...]
    }

    /// The kind named by a framed object's header, or nil when the bytes are not framed.
    static func peekKind(_ bytes: some Collection<UInt8>) -> ObjectKind? {
        guard let nul = bytes.prefix(32).firstIndex(of: 0) else { return nil }
        let header = String(decoding: bytes[..<nul], as: UTF8.self)
        guard let space = header.firstIndex(of: " ") else { return nil }
        return ObjectKind(rawValue: String(header[..<space]))
    }
}

// MARK: - Trees

public struct TreeEntry: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// A regular file.
        case file
        /// A regular file with the executable bit.
        case exec
        /// A directory: `id` names another tree.
        case tree
    }

    public var name: String
    public var kind: Kind
    /// File size in bytes; for a tree, the sum of the sizes of all files below it.
    public var size: UInt64
    public var id: ObjectID

    public init(name: String, kind: Kind, size: UInt64, id: ObjectID) {
        self.name = name; self.kind = kind; self.size = size; self.id = id
    }
}

/// A directory listing. Canonical body: one line per entry, sorted by the bytes of the name:
/// `<kind> <size> <64-hex id> <name>\n`.
public struct Tree: Sendable, Equatable {
    public private(set) var entries: [TreeEntry]

    /// Sorts the entries; rejects invalid or duplicate names.
    public init(entries: [TreeEntry]) throws(MVCError) {
        let sorted = entries.sorted { utf8Less($0.name, $1.name) }
        for (i, e) in sorted.enumerated() {
            guard Names.isValidEntryName(e.name) else {
                throw MVCError(.invalidName, "invalid file name '\(e.name)'", hint: "names may not be empty, '.', '..', or contain '/', NUL or newline")
            }
            if i > 0 && sorted[i - 1].name.utf8.elementsEqual(e.name.utf8) {
                throw MVCError(.invalidName, "duplicate entry '\(e.name)' in a tree")
            }
        }
        self.entries = sorted
    }

    public var totalSize: UInt64 { entries.reduce(0) { $0 + $1.size } }

    public func entry(named name: String) -> TreeEntry? { entries.first { $0.name.utf8.elementsEqual(name.utf8) } }

    func body() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(entries.count * 100)
        for e in entries {
            out.append(contentsOf: e.kind.rawValue.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: String(e.size).utf8)
            out.append(UInt8(ascii: " "))
            e.id.appendHex(to: &out)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: e.name.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// The framed bytes whose SHA-256 is the tree's id.
    public func encoded() -> [UInt8] { Framing.frame(.tree, body()) }

    public var id: ObjectID { ObjectID.hash(encoded()) }

    /// Parses a framed tree, rejecting anything that is not in canonical form.
    static func decode(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> Tree {
        let body = try Framing.unframe(bytes, id: id, expecting: .tree)
        var entries: [TreeEntry] = []
        // Parsed as bytes (trees are read on every status); the canonical check below re-encodes.
        let sp = UInt8(ascii: " "), nl = UInt8(ascii: "\n")
        var p = body.startIndex
        while p < body.endIndex {
            guard let end = body[p...].firstIndex(of: nl) else { break }
            let line = body[p..<end]
            func bad() -> MVCError { .corrupt(id, "malformed tree entry '\(String(decoding: line.prefix(80), as: UTF8.self))'") }
            guard let s1 = line.firstIndex(of: sp), let s2 = line[(s1 + 1)...].firstIndex(of: sp),
                  s2 + 65 < end, line[s2 + 65] == sp,
                  let kind = TreeEntry.Kind(rawValue: String(decoding: line[p..<s1], as: UTF8.self)),
                  let size = UInt64(String(decoding: line[(s1 + 1)..<s2], as: UTF8.self)),
                  let eid = ObjectID(hex: String(decoding: line[(s2 + 1)..<(s2 + 65)], as: UTF8.self)) else { throw bad() }
            let name = String(decoding: line[(s2 + 66)...], as: UTF8.self)
            guard Names.isValidEntryName(name) else {
                throw .corrupt(id, "tree holds an unsafe file name '\(name)'")
            }
            entries.append(TreeEntry(name: name, kind: kind, size: size, id: eid))
            p = end + 1
        }
        guard body.last == UInt8(ascii: "\n") || body.isEmpty else { throw .corrupt(id, "tree does not end with a newline") }
        let tree: Tree
        do throws(MVCError) { tree = try Tree(entries: entries) } catch { throw .corrupt(id, error.message) }
        // Byte-for-byte: catches unsorted entries, invalid UTF-8 in names, any other variant.
        guard tree.encoded() == bytes else { throw .corrupt(id, "tree is not in canonical form") }
        return tree
    }
}

// MARK: - Commits

public enum ArtifactKind: String, Sendable, Codable, CaseIterable {
    case model, dataset, config, other
}

/// A typed provenance edge: this commit was made from `commit`, in the role `role`.
public struct InputEdge: Sendable, Equatable, Hashable, Codable {
    public var commit: ObjectID
    /// e.g. `dataset`, `config`, `base-model`; validated like a key.
    public var role: String
    public init(commit: ObjectID, role: String) { self.commit = commit; self.role = role }
}

/// The git commit of the code that produced an artifact.
public struct CodeRef: Sendable, Equatable, Codable {
    /// Hex object name of the git commit (40 digits for SHA-1, 64 for SHA-256 repositories).
    public var commit: String
    /// True when tracked files differed from that commit.
    public var dirty: Bool
    public init(commit: String, dirty: Bool) { self.commit = commit; self.dirty = dirty }
}

public struct Signature: Sendable, Equatable, Codable {
    public var name: String
    public var email: String
    /// Seconds since the Unix epoch.
    public var time: Int64
    /// Offset from UTC in minutes (e.g. +60 for CET).
    public var tzOffsetMinutes: Int

    public init(name: String, email: String, time: Int64, tzOffsetMinutes: Int) {
        self.name = name; self.email = email; self.time = time; self.tzOffsetMinutes = tzOffsetMinutes
    }

    var tzString: String {
        let sign = tzOffsetMinutes < 0 ? "-" : "+"
        let m = abs(tzOffsetMinutes)
        let hh = m / 60, mm = m % 60
        return sign + (hh < 10 ? "0" : "") + String(hh) + (mm < 10 ? "0" : "") + String(mm)
    }

    static func parseTZ(_ s: Substring) -> Int? {
        guard s.count == 5, let sign = s.first, sign == "+" || sign == "-",
              let hh = Int(s.dropFirst().prefix(2)), let mm = Int(s.suffix(2)), mm < 60 else { return nil }
        return (sign == "-" ? -1 : 1) * (hh * 60 + mm)
    }
}

/// One version of an artifact, with its provenance. Canonical body (one header per line, in this
/// order, then a blank line and the message; see docs/FORMAT.md):
/// ```
/// tree <id>
/// parent <id>                 (zero or more, in order)
/// artifact <name>
/// kind <model|dataset|config|other>
/// version <n>
/// path <relative path>        (one or more, sorted)
/// input <id> <role>           (zero or more, sorted by role then id)
/// code <hex> <clean|dirty>    (optional)
/// param <key> <value>         (sorted by key)
/// metric <key> <number>       (sorted by key)
/// env <key> <value>           (sorted by key)
/// author <name> <<email>> <seconds> <+hhmm>
/// ```
public struct Commit: Sendable, Equatable {
    public var tree: ObjectID
    public var parents: [ObjectID]
    public var artifact: String
    public var kind: ArtifactKind
    /// 1 for the artifact's first commit, parent's + 1 after.
    public var version: Int
    /// The work-tree paths (relative, `/`-separated) that were committed; the tree holds them.
    public var paths: [String]
    public var inputs: [InputEdge]
    public var code: CodeRef?
    public var params: [String: String]
    public var metrics: [String: Double]
    public var environment: [String: String]
    public var author: Signature
    public var message: String

    public init(tree: ObjectID, parents: [ObjectID], artifact: String, kind: ArtifactKind, version: Int,
                paths: [String], inputs: [InputEdge], code: CodeRef?, params: [String: String],
                metrics: [String: Double], environment: [String: String], author: Signature, message: String) {
        self.tree = tree; self.parents = parents; self.artifact = artifact; self.kind = kind
        self.version = version; self.paths = paths.sorted(by: utf8Less); self.inputs = Commit.sortInputs(inputs)
        self.code = code; self.params = params; self.metrics = metrics; self.environment = environment
        self.author = author; self.message = Commit.normalizeMessage(message)
    }

    static func sortInputs(_ inputs: [InputEdge]) -> [InputEdge] {
        Array(Set(inputs)).sorted { ($0.role, $0.commit) < ($1.role, $1.commit) }
    }

    /// Trailing whitespace removed; a non-empty message ends with exactly one newline.
    static func normalizeMessage(_ m: String) -> String {
        var s = Substring(m)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return s.isEmpty ? "" : String(s) + "\n"
    }

    /// Numbers print in Swift's shortest round-tripping form, so `0.90` and `0.9` are one value.
    public static func formatNumber(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    /// Checks every field against the rules of docs/FORMAT.md before encoding.
    public func validate() throws(MVCError) {
        try Names.validateArtifact(artifact)
        guard version >= 1 else { throw MVCError(.invalidArgument, "version must be at least 1") }
        guard !paths.isEmpty else { throw MVCError(.invalidArgument, "a commit needs at least one path") }
        for p in paths { try validateRelativePath(p) }
        for i in inputs { try Names.validateKey(i.role, what: "input role") }
        if let code {
            guard code.commit.count == 40 || code.commit.count == 64, isHexString(code.commit), code.commit == code.commit.lowercased() else {
                throw MVCError(.invalidArgument, "invalid code commit '\(code.commit)'")
            }
        }
        for (k, v) in params { try Names.validateKey(k, what: "parameter"); try Names.validateValue(v, what: "parameter value") }
        for (k, v) in metrics {
            try Names.validateKey(k, what: "metric")
            guard v.isFinite else { throw MVCError(.invalidArgument, "metric '\(k)' is not a finite number") }
        }
        for (k, v) in environment { try Names.validateKey(k, what: "environment"); try Names.validateValue(v, what: "environment value") }
        for s in [author.name, author.email] {
            try Names.validateValue(s, what: "author")
            if s.contains("<") || s.contains(">") { throw MVCError(.invalidArgument, "author '\(s)' may not contain '<' or '>'") }
        }
        if author.name.isEmpty { throw MVCError(.invalidArgument, "author name is empty", hint: "set MVC_AUTHOR_NAME or git's user.name") }
        if message.contains("\0") { throw MVCError(.invalidArgument, "the message contains a NUL byte") }
    }

    func body() -> [UInt8] {
        var s = "tree \(tree.hex)\n"
        for p in parents { s += "parent \(p.hex)\n" }
        s += "artifact \(artifact)\nkind \(kind.rawValue)\nversion \(version)\n"
        for p in paths { s += "path \(p)\n" }
        for i in inputs { s += "input \(i.commit.hex) \(i.role)\n" }
        if let code { s += "code \(code.commit) \(code.dirty ? "dirty" : "clean")\n" }
        for k in params.keys.sorted(by: utf8Less) { s += "param \(k) \(params[k]!)\n" }
        for k in metrics.keys.sorted(by: utf8Less) { s += "metric \(k) \(Commit.formatNumber(metrics[k]!))\n" }
        for k in environment.keys.sorted(by: utf8Less) { s += "env \(k) \(environment[k]!)\n" }
        s += "author \(author.name) <\(author.email)> \(author.time) \(author.tzString)\n\n"
        s += message
        return Array(s.utf8)
    }

    public func encoded() -> [UInt8] { Framing.frame(.commit, body()) }
    public var id: ObjectID { ObjectID.hash(encoded()) }

    /// Parses a framed commit; anything not in canonical form is reported as corruption.
    static func decode(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> Commit {
        let body = try Framing.unframe(bytes, id: id, expecting: .commit)
        let nl = UInt8(ascii: "\n")
        guard let blank = body.indices.dropLast().first(where: { body[$0] == nl && body[$0 + 1] == nl }) else {
            throw .corrupt(id, "commit has no blank line before the message")
        }
        let headerText = String(decoding: body[..<blank], as: UTF8.self)
        let headerLines = headerText.split(separator: "\n", omittingEmptySubsequences: false)
        let message = String(decoding: body[(blank + 2)...], as: UTF8.self)

        var tree: ObjectID?, parents: [ObjectID] = [], artifact: String?, kind: ArtifactKind?, version: Int?
        var paths: [String] = [], inputs: [InputEdge] = [], code: CodeRef?, author: Signature?
        var params: [String: String] = [:], metrics: [String: Double] = [:], env: [String: String] = [:]
        func bad(_ line: Substring) -> MVCError { .corrupt(id, "malformed commit line '\(line.prefix(80))'") }
        for line in headerLines {
            guard let sp = line.firstIndex(of: " ") else { throw bad(line) }
            let key = line[..<sp], rest = line[line.index(after: sp)...]
            switch key {
            case "tree": guard let v = ObjectID(hex: rest) else { throw bad(line) }; tree = v
            case "parent": guard let v = ObjectID(hex: rest) else { throw bad(line) }; parents.append(v)
            case "artifact": artifact = String(rest)
            case "kind": guard let v = ArtifactKind(rawValue: String(rest)) else { throw bad(line) }; kind = v
            case "version": guard let v = Int(rest) else { throw bad(line) }; version = v
            case "path": paths.append(String(rest))
            case "input":
                let f = rest.split(separator: " ", omittingEmptySubsequences: false)
                guard f.count == 2, let c = ObjectID(hex: f[0]) else { throw bad(line) }
                inputs.append(InputEdge(commit: c, role: String(f[1])))
            case "code":
                let f = rest.split(separator: " ", omittingEmptySubsequences: false)
                guard f.count == 2, f[1] == "clean" || f[1] == "dirty" else { throw bad(line) }
                code = CodeRef(commit: String(f[0]), dirty: f[1] == "dirty")
            case "param", "metric", "env":
                guard let sp2 = rest.firstIndex(of: " ") else { throw bad(line) }
                let k = String(rest[..<sp2]), v = String(rest[rest.index(after: sp2)...])
                if key == "param" { params[k] = v } else if key == "env" { env[k] = v } else {
                    guard let d = Double(v) else { throw bad(line) }
                    metrics[k] = d
                }
            case "author":
                guard let lt = rest.firstIndex(of: "<"), let gt = rest.lastIndex(of: ">"), lt < gt, lt > rest.startIndex else { throw bad(line) }
                let name = String(rest[..<rest.index(before: lt)])
                let email = String(rest[rest.index(after: lt)..<gt])
                let tail = rest[rest.index(after: gt)...].split(separator: " ")
                guard tail.count == 2, let t = Int64(tail[0]), let tz = Signature.parseTZ(tail[1]) else { throw bad(line) }
                author = Signature(name: name, email: email, time: t, tzOffsetMinutes: tz)
            default:
                throw .corrupt(id, "unknown commit header '\(key)'")
            }
        }
        guard let tree, let artifact, let kind, let version, let author else {
            throw .corrupt(id, "commit lacks a required header (tree, artifact, kind, version, author)")
        }
        let commit = Commit(tree: tree, parents: parents, artifact: artifact, kind: kind, version: version, paths: paths,
                            inputs: inputs, code: code, params: params, metrics: metrics, environment: env,
                            author: author, message: message)
        do throws(MVCError) { try commit.validate() } catch { throw .corrupt(id, error.message) }
        guard commit.encoded() == bytes else { throw .corrupt(id, "commit is not in canonical form") }
        return commit
    }
}

/// Byte order of UTF-8 (what every canonical sort in the format uses), without copying.
func utf8Less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

/// A path relative to the work tree: `/`-separated valid entry names, no leading `/`.
func validateRelativePath(_ p: String) throws(MVCError) {
    let parts = p.split(separator: "/", omittingEmptySubsequences: false)
    guard !p.isEmpty, parts.allSatisfy({ Names.isValidEntryName($0) }) else {
        throw MVCError(.unsafePath, "unsafe path '\(p)'", hint: "paths are relative, without '.', '..' or empty components")
    }
}
