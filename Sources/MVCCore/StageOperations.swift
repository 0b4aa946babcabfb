/// The current state of one stage of one artifact.
public struct StageState: Sendable, Equatable, Codable {
    public var artifact: String
    public var stage: String
    /// The latest move (what the stage ref points at).
    public var move: ObjectID
    /// The commit the stage holds; nil when the stage was cleared.
    public var commit: ObjectID?
    public var version: Int?
    public var weight: Int?
    public var sequence: Int
    public var since: Signature
}

/// One entry of a stage's history, for people and scripts.
public struct StageHistoryEntry: Sendable, Equatable, Codable {
    public var artifact: String
    public var stage: String
    public var sequence: Int
    public var move: ObjectID
    public var action: MoveAction
    /// What the stage held before and after this move (nil: empty).
    public var from: ObjectID?
    public var to: ObjectID?
    public var fromVersion: Int?
    public var toVersion: Int?
    public var weight: Int?
    public var actor: Signature
    public var command: String?
    public var reason: String
}

/// Options of a promotion.
public struct PromoteRequest: Sendable {
    public var revision: String
    public var stage: String
    public var reason: String
    /// Traffic weight in percent for a rollout stage (`canary`), nil for none.
    public var weight: Int?
    /// Promote a retired version, and skip failed policy rules.
    public var force: Bool
    /// Evaluate the policy and report, but move nothing.
    public var dryRun: Bool
    /// The command line, recorded in the move.
    public var command: String?

    public init(revision: String, stage: String, reason: String = "", weight: Int? = nil, force: Bool = false,
                dryRun: Bool = false, command: String? = nil) {
        self.revision = revision; self.stage = stage; self.reason = reason; self.weight = weight
        self.force = force; self.dryRun = dryRun; self.command = command
    }
}

public struct MoveResult: Sendable, Equatable, Codable {
    /// The moves made, in order (a production promotion may also archive and complete a rollout).
    public var moves: [StageHistoryEntry]
    public var evaluation: PolicyEvaluation?
    /// True when nothing moved (dry run, or the stage already held the version).
    public var unchanged: Bool
    /// Things worth saying about moves that did happen.
    public var warnings: [String] = []
}

extension Repository {
    static func stageRef(_ name: String, _ stage: String) -> String { "refs/stages/\(name)/\(stage)" }
    static func annotationRef(_ name: String, _ commit: ObjectID) -> String { "refs/annotations/\(name)/\(commit.hex)" }

    /// The policy in force: `mvc.yaml` of the work tree, or the default.
    public func policy() throws(MVCError) -> Policy { try Policy.load(workTree: workTree) }

    func checkStage(_ stage: String, _ policy: Policy) throws(MVCError) {
        try Stages.validate(stage)
        guard policy.stages.contains(stage) else {
            throw MVCError(.invalidArgument, "unknown stage '\(stage)'",
                           hint: "stages are \(policy.stages.joined(separator: ", ")); declare others under 'stages' in mvc.yaml")
        }
    }

    /// The state of a stage, nil when it never moved.
    public func stageState(_ name: String, _ stage: String) throws(MVCError) -> StageState? {
        guard let moveID = try refs.read(Repository.stageRef(name, stage)) else { return nil }
        let m = try objects.readMove(moveID)
        guard m.artifact == name, m.stage == stage else {
            throw MVCError(.corruptObject, "stage ref '\(Repository.stageRef(name, stage))' points at a move of \(m.artifact)@\(m.stage)", hint: "run 'mvc fsck'")
        }
        let version = try m.commit.map { (c) throws(MVCError) in try objects.readCommit(c).version }
        return StageState(artifact: name, stage: stage, move: moveID, commit: m.commit, version: version, weight: m.weight,
                          sequence: m.sequence, since: m.actor)
    }

    /// Every stage of an artifact that has moved, sorted by stage name.
    public func stageStates(_ name: String) throws(MVCError) -> [StageState] {
        var out: [StageState] = []
        for stage in try refs.list("refs/stages/\(name)") where !stage.contains("/") {
            if let s = try stageState(name, stage) { out.append(s) }
        }
        return out
    }

    /// The commit a stage holds `back` moves ago (`NAME@production~1`): O(back), not O(history).
    func stageCommit(_ name: String, _ stage: String, back: Int) throws(MVCError) -> ObjectID {
        guard var moveID = try refs.read(Repository.stageRef(name, stage)) else {
            throw MVCError(.unknownRevision, "stage '\(stage)' of '\(name)' has never been set", hint: "see 'mvc stages \(name)'")
        }
        var move = try objects.readMove(moveID)
        for step in 0..<back {
            guard let previous = move.previous else {
                throw MVCError(.unknownRevision, "stage '\(stage)' of '\(name)' has only \(step) earlier value\(step == 1 ? "" : "s")", hint: "see 'mvc history \(name) --stage \(stage)'")
            }
            moveID = previous
            move = try objects.readMove(moveID)
        }
        guard let commit = move.commit else {
            throw MVCError(.unknownRevision, "stage '\(stage)' of '\(name)' was empty then", hint: "see 'mvc history \(name) --stage \(stage)'")
        }
        return commit
    }

    /// Effective metrics of a commit: its own, overlaid by later annotations (newest wins).
    public func metrics(of id: ObjectID) throws(MVCError) -> [String: Double] {
        let c = try objects.readCommit(id)
        var out = c.metrics
        for a in try annotations(of: id, artifact: c.artifact).reversed() {
            for (k, v) in a.annotation.metrics { out[k] = v }
        }
        return out
    }

    /// The annotations of a commit, newest first.
    public func annotations(of id: ObjectID, artifact: String) throws(MVCError) -> [(id: ObjectID, annotation: Annotation)] {
        var out: [(ObjectID, Annotation)] = []
        var cursor = try refs.read(Repository.annotationRef(artifact, id))
        while let a = cursor {
            let ann = try objects.readAnnotation(a)
            out.append((a, ann))
            cursor = ann.previous
        }
        return out
    }

    public func isRetired(_ id: ObjectID, artifact: String) throws(MVCError) -> Bool {
        try annotations(of: id, artifact: artifact).contains { $0.annotation.retired }
    }

    /// Adds metrics to a version without changing its id (`mvc metric`).
    @discardableResult
    public func annotate(_ revision: String, metrics: [String: Double], retired: Bool = false, message: String = "") throws(MVCError) -> ObjectID {
        let (id, c) = try resolveCommit(revision)
        let ref = Repository.annotationRef(c.artifact, id)
        let previous = try refs.read(ref)
        let actor = identity()
        let a = Annotation(target: id, artifact: c.artifact, previous: previous, metrics: metrics, retired: retired, actor: actor, message: message)
        try a.validate()
        let batch = newBatch()
        let aid = try batch.put(a)
        try batch.commit()
        let what = metrics.keys.sorted().map { "\($0)=\(Commit.formatNumber(metrics[$0]!))" }.joined(separator: " ")
        try refs.update(ref, from: previous, to: aid, actor: actor,
                        message: "\(retired ? "retire" : "metric"): \(c.artifact)@v\(c.version)\(what.isEmpty ? "" : " " + what)")
        return aid
    }

    /// Evaluates the policy's rules for `stage` against a version (`mvc check`, and every promotion).
    public func evaluate(_ revision: String, for stage: String) throws(MVCError) -> PolicyEvaluation {
        let policy = try self.policy()
        try checkStage(stage, policy)
        let (id, c) = try resolveCommit(revision)
        return try evaluate(id, c, for: stage, policy: policy)
    }

    func evaluate(_ id: ObjectID, _ c: Commit, for stage: String, policy: Policy) throws(MVCError) -> PolicyEvaluation {
        var outcomes: [RuleOutcome] = []
        let label = "\(c.artifact)@v\(c.version)"
        guard let rules = policy.rules[stage] else {
            return PolicyEvaluation(revision: label, stage: stage, outcomes: [])
        }
        if let from = rules.from {
            var holders: [String] = []
            for s in from where try stageState(c.artifact, s)?.commit == id { holders.append(s) }
            outcomes.append(RuleOutcome(rule: "from: \(from.joined(separator: ", "))", passed: !holders.isEmpty,
                                        detail: holders.isEmpty ? "\(label) is not in \(from.joined(separator: " or "))" : "\(label) is in \(holders.joined(separator: ", "))"))
        }
        if let kinds = rules.kinds {
            outcomes.append(RuleOutcome(rule: "kinds: \(kinds.map(\.rawValue).joined(separator: ", "))", passed: kinds.contains(c.kind),
                                        detail: "\(label) is a \(c.kind.rawValue)"))
        }
        if !rules.metrics.isEmpty {
            let metrics = try self.metrics(of: id)
            for m in rules.metrics {
                if let v = metrics[m.metric] {
                    outcomes.append(RuleOutcome(rule: m.text, passed: m.op.holds(v, m.value), detail: "\(m.metric) is \(Commit.formatNumber(v))"))
                } else {
                    outcomes.append(RuleOutcome(rule: m.text, passed: false,
                                                detail: "\(label) has no metric '\(m.metric)' (attach one with 'mvc metric \(label) \(m.metric)=VALUE')"))
                }
            }
        }
        for role in rules.requiredInputs {
            let has = c.inputs.contains { $0.role == role }
            outcomes.append(RuleOutcome(rule: "requires input: \(role)", passed: has, detail: has ? "has a \(role) input" : "\(label) has no input with role '\(role)'"))
        }
        if rules.requireCleanCode {
            let ok = c.code.map { !$0.dirty } ?? false
            let detail = c.code.map { $0.dirty ? "code \(String($0.commit.prefix(12))) was dirty" : "code \(String($0.commit.prefix(12))) was clean" } ?? "no code commit recorded"
            outcomes.append(RuleOutcome(rule: "requires clean code", passed: ok, detail: detail))
        }
        return PolicyEvaluation(revision: label, stage: stage, outcomes: outcomes)
    }

    /// A stage move to make: what the stage should hold, and the state it was read in.
    struct PlannedMove {
        var name: String, stage: String, commit: ObjectID?, weight: Int?, action: MoveAction, reason: String
        var current: StageState?
    }

    /// Makes moves together: their objects are written durably in one batch, then every stage ref
    /// moves in one ref transaction (all locks and expected values checked first), so either all
    /// of them happen or none does.
    private func apply(_ planned: [PlannedMove], command: String?) throws(MVCError) -> [StageHistoryEntry] {
        let actor = identity()
        let batch = newBatch()
        var entries: [StageHistoryEntry] = [], updates: [RefStore.Update] = []
        for p in planned {
            let move = StageMove(artifact: p.name, stage: p.stage, sequence: (p.current?.sequence ?? 0) + 1, previous: p.current?.move,
                                 commit: p.commit, weight: p.weight, action: p.action, actor: actor, command: command, reason: p.reason)
            try move.validate()
            let id = try batch.put(move)
            let toVersion = try p.commit.map { (c) throws(MVCError) in try objects.readCommit(c).version }
            let fromLabel = p.current?.version.map { "v\($0)" } ?? "(empty)", toLabel = toVersion.map { "v\($0)" } ?? "(empty)"
            let line = p.reason.split(separator: "\n").first.map { ": " + $0 } ?? ""
            updates.append(RefStore.Update(ref: Repository.stageRef(p.name, p.stage), expected: p.current?.move, new: id,
                                           message: "\(p.action.rawValue): \(p.name)@\(p.stage) \(fromLabel) -> \(toLabel)\(p.weight.map { " (\($0)%)" } ?? "")\(line)"))
            entries.append(StageHistoryEntry(artifact: p.name, stage: p.stage, sequence: move.sequence, move: id, action: p.action,
                                             from: p.current?.commit, to: p.commit, fromVersion: p.current?.version, toVersion: toVersion,
                                             weight: p.weight, actor: actor, command: command, reason: move.reason))
        }
        try batch.commit()   // moves durable before any ref names them
        do throws(MVCError) {
            try refs.update(updates, actor: actor)
        } catch where error.code == .refMoved {
            let stage = planned.first { error.message.contains("'\(Repository.stageRef($0.name, $0.stage))'") }?.stage ?? planned[0].stage
            throw MVCError(.refMoved, "stage '\(stage)' of '\(planned[0].name)' moved since it was read",
                           hint: "another promotion won; run 'mvc stages \(planned[0].name)' and decide again; nothing was moved")
        }
        return entries
    }

    private func move(_ name: String, _ stage: String, to commit: ObjectID?, weight: Int?, action: MoveAction,
                      reason: String, command: String?, expected current: StageState?) throws(MVCError) -> StageHistoryEntry {
        try apply([PlannedMove(name: name, stage: stage, commit: commit, weight: weight, action: action, reason: reason, current: current)], command: command)[0]
    }

    /// `mvc promote NAME@REV --to STAGE`: evaluates the policy, then moves the stage. Promoting to
    /// production archives the version it replaces (policy `archive_replaced`), and completes a
    /// rollout: a weighted stage (canary) that held the promoted version is cleared.
    public func promote(_ request: PromoteRequest) throws(MVCError) -> MoveResult {
        let policy = try self.policy()
        try checkStage(request.stage, policy)
        let (id, c) = try resolveCommit(request.revision)
        let label = "\(c.artifact)@v\(c.version)"
        if let w = request.weight, !(0...100).contains(w) {
            throw MVCError(.invalidArgument, "weight \(w) is not a percentage", hint: "give --weight 0 to 100")
        }
        if let w = request.weight, w > 0 {
            if Stages.builtIn.contains(request.stage) || request.stage == "shadow" {
                throw MVCError(.invalidArgument, "\(request.stage) cannot take a traffic weight", hint: "production takes what weighted stages leave; give --weight to a rollout stage such as canary")
            }
            let others = try stageStates(c.artifact).filter { $0.stage != request.stage && $0.commit != nil }.reduce(0) { $0 + ($1.weight ?? 0) }
            if others + w > 100 {
                throw MVCError(.invalidArgument, "weights would add up to \(others + w)%", hint: "other rollout stages of '\(c.artifact)' already take \(others)%")
            }
        }
        if try isRetired(id, artifact: c.artifact), !request.force, request.stage != Stages.archived {
            throw MVCError(.invalidArgument, "\(label) is retired", hint: "promote another version, or pass --force")
        }
        let evaluation = try evaluate(id, c, for: request.stage, policy: policy)
        if request.dryRun { return MoveResult(moves: [], evaluation: evaluation, unchanged: true) }
        if !evaluation.passed && !request.force {
            let list = evaluation.failures.map { "\($0.rule) (\($0.detail))" }.joined(separator: "; ")
            throw MVCError(.invalidArgument, "\(label) does not meet the rules for \(request.stage): \(list)",
                           hint: "see 'mvc check \(label) --for \(request.stage)'; --force overrides")
        }
        let current = try stageState(c.artifact, request.stage)
        if current?.commit == id && current?.weight == request.weight {
            return MoveResult(moves: [], evaluation: evaluation, unchanged: true)
        }
        // Weighted stages holding this version before the move: a rollout that this completes.
        var rollouts: [StageState] = []
        if request.stage == Stages.production {
            for s in try stageStates(c.artifact) where s.stage != Stages.production && s.commit == id && (s.weight ?? 0) > 0 {
                rollouts.append(s)
            }
        }
        // The promotion, archiving the replaced version, and completing a rollout: one transaction.
        var planned = [PlannedMove(name: c.artifact, stage: request.stage, commit: id, weight: request.weight, action: .promote,
                                   reason: request.reason, current: current)]
        if request.stage == Stages.production, policy.archiveReplaced, let replaced = current?.commit, replaced != id {
            let archived = try stageState(c.artifact, Stages.archived)
            if archived?.commit != replaced {
                planned.append(PlannedMove(name: c.artifact, stage: Stages.archived, commit: replaced, weight: nil, action: .archive,
                                           reason: "replaced in production by v\(c.version)", current: archived))
            }
        }
        for r in rollouts {
            planned.append(PlannedMove(name: c.artifact, stage: r.stage, commit: nil, weight: nil, action: .complete,
                                       reason: "rollout of v\(c.version) completed", current: r))
        }
        let result = MoveResult(moves: try apply(planned, command: request.command), evaluation: evaluation, unchanged: false)
        return result
    }

    /// `mvc rollback NAME --stage STAGE [--to REV]`: back to the value before the last move (with
    /// its weight), or to REV; itself recorded as a move. Gates are not evaluated: a rollback
    /// restores a known state in an emergency.
    public func rollback(_ name: String, stage: String, to revision: String? = nil, reason: String = "", force: Bool = false,
                         command: String? = nil) throws(MVCError) -> MoveResult {
        let policy = try self.policy()
        try checkStage(stage, policy)
        try Names.validateArtifact(name)
        guard try head(of: name) != nil else { throw MVCError(.unknownRevision, "no artifact named '\(name)'") }
        guard let current = try stageState(name, stage) else {
            throw MVCError(.invalidArgument, "stage '\(stage)' of '\(name)' has no history to roll back", hint: "see 'mvc stages \(name)'")
        }
        var target: ObjectID?, weight: Int?
        if let revision {
            let (id, c) = try resolveCommit(revision)
            guard c.artifact == name else { throw MVCError(.invalidArgument, "'\(revision)' is a version of '\(c.artifact)', not of '\(name)'") }
            target = id
            weight = current.weight
        } else {
            // Before the stage's first move it was empty: rolling that back clears it (aborts a first canary).
            if let previousID = try objects.readMove(current.move).previous {
                let previous = try objects.readMove(previousID)
                target = previous.commit
                weight = previous.weight
            }
        }
        if target == current.commit && weight == current.weight {
            return MoveResult(moves: [], evaluation: nil, unchanged: true)
        }
        if let target, stage != Stages.archived, !force, try isRetired(target, artifact: name) {
            throw MVCError(.invalidArgument, "rolling back would put retired \(label(target)) into \(stage)", hint: "pick another version with --to, or pass --force")
        }
        let entry = try move(name, stage, to: target, weight: weight, action: .rollback, reason: reason, command: command, expected: current)
        return MoveResult(moves: [entry], evaluation: nil, unchanged: false)
    }

    /// `mvc demote NAME --stage STAGE`: clears the stage.
    public func demote(_ name: String, stage: String, reason: String = "", command: String? = nil) throws(MVCError) -> MoveResult {
        let policy = try self.policy()
        try checkStage(stage, policy)
        try Names.validateArtifact(name)
        guard let current = try stageState(name, stage), current.commit != nil else {
            throw MVCError(.invalidArgument, "stage '\(stage)' of '\(name)' is already empty", hint: "see 'mvc stages \(name)'")
        }
        let entry = try move(name, stage, to: nil, weight: nil, action: .demote, reason: reason, command: command, expected: current)
        return MoveResult(moves: [entry], evaluation: nil, unchanged: false)
    }

    /// `mvc retire NAME@REV`: marks the version retired (an annotation: its bytes and lineage stay)
    /// and moves it to `archived`. A version still in another stage is refused unless `force`.
    public func retire(_ revision: String, reason: String = "", force: Bool = false, command: String? = nil) throws(MVCError) -> MoveResult {
        let (id, c) = try resolveCommit(revision)
        let label = "\(c.artifact)@v\(c.version)"
        let holding = try stageStates(c.artifact).filter { $0.commit == id && $0.stage != Stages.archived }
        if !holding.isEmpty && !force {
            throw MVCError(.invalidArgument, "\(label) is still in \(holding.map(\.stage).joined(separator: ", "))",
                           hint: "promote another version there or demote it first; --force retires it anyway")
        }
        if try !isRetired(id, artifact: c.artifact) {
            try annotate(revision, metrics: [:], retired: true, message: reason)
        }
        let archived = try stageState(c.artifact, Stages.archived)
        if archived?.commit == id { return MoveResult(moves: [], evaluation: nil, unchanged: false) }
        let entry = try move(c.artifact, Stages.archived, to: id, weight: nil, action: .retire, reason: reason, command: command, expected: archived)
        return MoveResult(moves: [entry], evaluation: nil, unchanged: false)
    }

    /// A stage's moves, newest first, or every stage's merged by time (`mvc history`).
    public func history(_ name: String, stage: String? = nil, limit: Int? = nil) throws(MVCError) -> [StageHistoryEntry] {
        try Names.validateArtifact(name)
        guard try head(of: name) != nil else { throw MVCError(.unknownRevision, "no artifact named '\(name)'", hint: "see 'mvc artifacts'") }
        var stages: [String]
        if let stage {
            try checkStage(stage, try policy())
            stages = [stage]
        } else {
            stages = try refs.list("refs/stages/\(name)").filter { !$0.contains("/") }
        }
        var out: [StageHistoryEntry] = []
        var versions: [ObjectID: Int] = [:]
        func version(_ id: ObjectID?) throws(MVCError) -> Int? {
            guard let id else { return nil }
            if let v = versions[id] { return v }
            let v = try objects.readCommit(id).version
            versions[id] = v
            return v
        }
        for s in stages {
            var cursor = try refs.read(Repository.stageRef(name, s))
            var entries: [(ObjectID, StageMove)] = []
            while let id = cursor, limit.map({ entries.count < $0 }) ?? true {
                let m = try objects.readMove(id)
                entries.append((id, m))
                cursor = m.previous
            }
            // `from` of each move is the commit of the move before it.
            var previousCommit: [ObjectID: ObjectID?] = [:]
            for (i, e) in entries.enumerated() {
                if i + 1 < entries.count { previousCommit[e.0] = entries[i + 1].1.commit }
                else if let p = e.1.previous { previousCommit[e.0] = try objects.readMove(p).commit }
                else { previousCommit[e.0] = .some(nil) }
            }
            for (id, m) in entries {
                let from = previousCommit[id] ?? nil
                out.append(StageHistoryEntry(artifact: name, stage: s, sequence: m.sequence, move: id, action: m.action,
                                             from: from, to: m.commit, fromVersion: try version(from), toVersion: try version(m.commit),
                                             weight: m.weight, actor: m.actor, command: m.command, reason: m.reason))
            }
        }
        out.sort { ($0.actor.time, $0.stage, $0.sequence) > ($1.actor.time, $1.stage, $1.sequence) }
        if let limit { out = Array(out.prefix(limit)) }
        return out
    }

    /// What a stage held at a moment (`mvc history NAME --stage S --at TIME`): the last move at or
    /// before `time`, or nil when the stage had not been set yet.
    public func stageAt(_ name: String, stage: String, time: Int64) throws(MVCError) -> StageHistoryEntry? {
        try checkStage(stage, try policy())
        var cursor = try refs.read(Repository.stageRef(name, stage))
        while let id = cursor {
            let m = try objects.readMove(id)
            if m.actor.time <= time {
                let from = try m.previous.map { (p) throws(MVCError) in try objects.readMove(p).commit } ?? nil
                return StageHistoryEntry(artifact: name, stage: stage, sequence: m.sequence, move: id, action: m.action,
                                         from: from, to: m.commit, fromVersion: try from.map { (f) throws(MVCError) in try objects.readCommit(f).version },
                                         toVersion: try m.commit.map { (c) throws(MVCError) in try objects.readCommit(c).version },
                                         weight: m.weight, actor: m.actor, command: m.command, reason: m.reason)
            }
            cursor = m.previous
        }
        return nil
    }
}
