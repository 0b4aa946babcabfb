/// The built-in stages, and the rules for stage names.
public enum Stages {
    public static let staging = "staging"
    public static let production = "production"
    public static let archived = "archived"
    public static let builtIn = [staging, production, archived]

    /// Stage names: 1-64 of `a-z 0-9 - _`, starting with a letter; not `latest` and not of the
    /// version form `v<digits>`, which revisions use.
    public static func validate(_ stage: String) throws(MVCError) {
        let ok = !stage.isEmpty && stage.utf8.count <= 64 && stage.first!.isLetter && stage.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "_"
        }
        let versionLike = stage.first == "v" && stage.count > 1 && stage.dropFirst().allSatisfy(\.isASCIIDigitChar)
        if !ok || versionLike || stage == "latest" {
            throw MVCError(.invalidName, "invalid stage name '\(stage)'", hint: "use lowercase letters, digits, '-' and '_', starting with a letter (not 'latest' or 'v<N>')")
        }
    }
}

/// What a stage move did.
public enum MoveAction: String, Sendable, Codable, CaseIterable {
    /// `mvc promote`: the stage now holds the commit.
    case promote
    /// `mvc rollback`: the stage went back to an earlier value.
    case rollback
    /// `mvc demote`: the stage was cleared.
    case demote
    /// The version replaced in production went to `archived`.
    case archive
    /// `mvc retire`: the version was archived and marked retired.
    case retire
    /// A rollout finished: the weighted stage whose version went to production was cleared.
    case complete
}

/// One move of one stage of one artifact: a framed `move` object. Each move names the move before
/// it, so a stage's history is a hash chain, append-only and tamper-evident; the stage ref points
/// at the latest move. Canonical body (see docs/FORMAT.md, "Stage moves"):
/// ```
/// artifact <name>
/// stage <stage>
/// sequence <n>                 1 for the stage's first move, previous + 1 after
/// previous <move id>           absent for the first move
/// commit <id>                  absent when the move clears the stage
/// weight <0-100>               absent when the stage carries no traffic weight
/// action <promote|rollback|demote|archive|retire|complete>
/// actor <name> <<email>> <seconds> <+hhmm>
/// command <text>               absent when not recorded
///
/// <reason>
/// ```
public struct StageMove: Sendable, Equatable {
    public var artifact: String
    public var stage: String
    public var sequence: Int
    public var previous: ObjectID?
    public var commit: ObjectID?
    public var weight: Int?
    public var action: MoveAction
    public var actor: Signature
    public var command: String?
    public var reason: String

    public init(artifact: String, stage: String, sequence: Int, previous: ObjectID?, commit: ObjectID?, weight: Int?,
                action: MoveAction, actor: Signature, command: String?, reason: String) {
        self.artifact = artifact; self.stage = stage; self.sequence = sequence; self.previous = previous
        self.commit = commit; self.weight = weight; self.action = action; self.actor = actor
        self.command = command; self.reason = Commit.normalizeMessage(reason)
    }

    func validate() throws(MVCError) {
        try Names.validateArtifact(artifact)
        try Stages.validate(stage)
        guard sequence >= 1, (sequence == 1) == (previous == nil) else { throw MVCError(.invalidArgument, "move sequence \(sequence) does not match its previous move") }
        if let weight, !(0...100).contains(weight) { throw MVCError(.invalidArgument, "weight \(weight) is not a percentage (0-100)") }
        if let command { try Names.validateValue(command, what: "command") }
        if actor.name.isEmpty { throw MVCError(.invalidArgument, "the actor's name is empty", hint: "set MVC_AUTHOR_NAME or git's user.name") }
        for s in [actor.name, actor.email] {
            try Names.validateValue(s, what: "actor")
            if s.contains("<") || s.contains(">") { throw MVCError(.invalidArgument, "actor '\(s)' may not contain '<' or '>'") }
        }
        if reason.contains("\0") { throw MVCError(.invalidArgument, "the reason contains a NUL byte") }
    }

    func encoded() -> [UInt8] {
        var s = "artifact \(artifact)\nstage \(stage)\nsequence \(sequence)\n"
        if let previous { s += "previous \(previous.hex)\n" }
        if let commit { s += "commit \(commit.hex)\n" }
        if let weight { s += "weight \(weight)\n" }
        s += "action \(action.rawValue)\n"
        s += "actor \(actor.name) <\(actor.email)> \(actor.time) \(actor.tzString)\n"
        if let command { s += "command \(command)\n" }
        s += "\n" + reason
        return Framing.frame(.move, Array(s.utf8))
    }

    static func decode(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> StageMove {
        let fields = try HeaderFields.parse(try Framing.unframe(bytes, id: id, expecting: .move), id: id)
        func bad(_ why: String) -> MVCError { .corrupt(id, "stage move: \(why)") }
        guard let artifact = fields.one("artifact"), let stage = fields.one("stage"),
              let seq = fields.one("sequence").flatMap({ Int($0) }), let actionText = fields.one("action"),
              let action = MoveAction(rawValue: actionText), let actorText = fields.one("actor"),
              let actor = Signature.parse(Substring(actorText)) else { throw bad("missing or malformed header") }
        let previous = try fields.id("previous", in: id), commit = try fields.id("commit", in: id)
        let weight = try fields.one("weight").map { (w) throws(MVCError) -> Int in
            guard let v = Int(w) else { throw bad("weight '\(w)' is not a number") }
            return v
        }
        let move = StageMove(artifact: artifact, stage: stage, sequence: seq, previous: previous, commit: commit, weight: weight,
                             action: action, actor: actor, command: fields.one("command"), reason: fields.message)
        do throws(MVCError) { try move.validate() } catch { throw bad(error.message) }
        guard move.encoded() == bytes else { throw bad("not in canonical form") }
        return move
    }
}

/// Facts attached to a commit after it was made, without changing its id: a framed `annotation`
/// object. Each names the annotation before it for the same commit. Canonical body:
/// ```
/// target <commit id>
/// artifact <name>
/// previous <annotation id>     absent for the first
/// metric <key> <number>        sorted by key
/// retired                      present when this annotation retires the version
/// actor <name> <<email>> <seconds> <+hhmm>
///
/// <message>
/// ```
public struct Annotation: Sendable, Equatable {
    public var target: ObjectID
    public var artifact: String
    public var previous: ObjectID?
    public var metrics: [String: Double]
    public var retired: Bool
    public var actor: Signature
    public var message: String

    public init(target: ObjectID, artifact: String, previous: ObjectID?, metrics: [String: Double], retired: Bool,
                actor: Signature, message: String) {
        self.target = target; self.artifact = artifact; self.previous = previous; self.metrics = metrics
        self.retired = retired; self.actor = actor; self.message = Commit.normalizeMessage(message)
    }

    func validate() throws(MVCError) {
        try Names.validateArtifact(artifact)
        for (k, v) in metrics {
            try Names.validateKey(k, what: "metric")
            guard v.isFinite else { throw MVCError(.invalidArgument, "metric '\(k)' is not a finite number") }
        }
        for s in [actor.name, actor.email] {
            try Names.validateValue(s, what: "actor")
            if s.contains("<") || s.contains(">") { throw MVCError(.invalidArgument, "actor '\(s)' may not contain '<' or '>'") }
        }
        if message.contains("\0") { throw MVCError(.invalidArgument, "the message contains a NUL byte") }
    }

    func encoded() -> [UInt8] {
        var s = "target \(target.hex)\nartifact \(artifact)\n"
        if let previous { s += "previous \(previous.hex)\n" }
        for k in metrics.keys.sorted(by: utf8Less) { s += "metric \(k) \(Commit.formatNumber(metrics[k]!))\n" }
        if retired { s += "retired\n" }
        s += "actor \(actor.name) <\(actor.email)> \(actor.time) \(actor.tzString)\n\n" + message
        return Framing.frame(.annotation, Array(s.utf8))
    }

    static func decode(_ bytes: [UInt8], id: ObjectID) throws(MVCError) -> Annotation {
        let fields = try HeaderFields.parse(try Framing.unframe(bytes, id: id, expecting: .annotation), id: id)
        func bad(_ why: String) -> MVCError { .corrupt(id, "annotation: \(why)") }
        guard let target = try fields.id("target", in: id), let artifact = fields.one("artifact"),
              let actor = fields.one("actor").flatMap({ Signature.parse(Substring($0)) }) else { throw bad("missing or malformed header") }
        var metrics: [String: Double] = [:]
        for m in fields.all("metric") {
            guard let sp = m.firstIndex(of: " "), let v = Double(m[m.index(after: sp)...]) else { throw bad("malformed metric '\(m)'") }
            metrics[String(m[..<sp])] = v
        }
        let a = Annotation(target: target, artifact: artifact, previous: try fields.id("previous", in: id), metrics: metrics,
                           retired: fields.flags.contains("retired"), actor: actor, message: fields.message)
        do throws(MVCError) { try a.validate() } catch { throw bad(error.message) }
        guard a.encoded() == bytes else { throw bad("not in canonical form") }
        return a
    }
}

/// `key value` header lines, a blank line, then a message: the shape of moves and annotations.
/// Only parsing is shared; canonical form is checked by re-encoding.
struct HeaderFields {
    var values: [(key: String, value: String)] = []
    var flags: Set<String> = []
    var message = ""

    static func parse(_ body: ArraySlice<UInt8>, id: ObjectID) throws(MVCError) -> HeaderFields {
        let nl = UInt8(ascii: "\n")
        guard let blank = body.indices.dropLast().first(where: { body[$0] == nl && body[$0 + 1] == nl }) else {
            throw .corrupt(id, "no blank line before the message")
        }
        var out = HeaderFields()
        for line in String(decoding: body[..<blank], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if let sp = line.firstIndex(of: " ") {
                out.values.append((String(line[..<sp]), String(line[line.index(after: sp)...])))
            } else {
                out.flags.insert(String(line))
            }
        }
        out.message = String(decoding: body[(blank + 2)...], as: UTF8.self)
        return out
    }

    func one(_ key: String) -> String? { values.first { $0.key == key }?.value }
    func all(_ key: String) -> [String] { values.filter { $0.key == key }.map(\.value) }
    func id(_ key: String, in object: ObjectID) throws(MVCError) -> ObjectID? {
        guard let v = one(key) else { return nil }
        guard let id = ObjectID(hex: v) else { throw .corrupt(object, "malformed id in '\(key)'") }
        return id
    }
}

extension Signature {
    /// Parses `<name> <<email>> <seconds> <+hhmm>`.
    static func parse(_ rest: Substring) -> Signature? {
        guard let lt = rest.firstIndex(of: "<"), let gt = rest.lastIndex(of: ">"), lt < gt, lt > rest.startIndex else { return nil }
        let name = String(rest[..<rest.index(before: lt)])
        let email = String(rest[rest.index(after: lt)..<gt])
        let tail = rest[rest.index(after: gt)...].split(separator: " ")
        guard tail.count == 2, let t = Int64(tail[0]), let tz = Signature.parseTZ(tail[1]) else { return nil }
        return Signature(name: name, email: email, time: t, tzOffsetMinutes: tz)
    }
}

extension ObjectStore {
    public func readMove(_ id: ObjectID) throws(MVCError) -> StageMove { try StageMove.decode(try read(id), id: id) }
    public func readAnnotation(_ id: ObjectID) throws(MVCError) -> Annotation { try Annotation.decode(try read(id), id: id) }
}

extension ObjectBatch {
    func put(_ move: StageMove) throws(MVCError) -> ObjectID { try putRaw(move.encoded()) }
    func put(_ annotation: Annotation) throws(MVCError) -> ObjectID { try putRaw(annotation.encoded()) }
}
