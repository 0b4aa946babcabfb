internal import Yams

/// A comparison in a metric rule: `accuracy >= 0.92`.
public struct MetricRule: Sendable, Equatable, Codable {
    public enum Op: String, Sendable, Codable, CaseIterable {
        case ge = ">=", le = "<=", gt = ">", lt = "<", eq = "==", ne = "!="
        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .ge: return a >= b
            case .le: return a <= b
            case .gt: return a > b
            case .lt: return a < b
            case .eq: return a == b
            case .ne: return a != b
            }
        }
    }
    public var metric: String
    public var op: Op
    public var value: Double
    public var text: String { "\(metric) \(op.rawValue) \(Commit.formatNumber(value))" }
}

/// The rules a version must meet to enter one stage.
public struct StageRules: Sendable, Equatable, Codable {
    /// The version must currently be in one of these stages (e.g. production only from staging).
    public var from: [String]?
    /// The artifact must be of one of these kinds.
    public var kinds: [ArtifactKind]?
    public var metrics: [MetricRule] = []
    /// Input roles the version must have (e.g. `dataset`).
    public var requiredInputs: [String] = []
    /// The version must record a code commit that was clean.
    public var requireCleanCode = false
}

/// The promotion policy: `mvc.yaml` at the work-tree root (committed with the code), or
/// `.mvc/mvc.yaml`. See docs/STAGES.md for the format.
///
/// ```yaml
/// stages: [canary, shadow]        # stages besides staging, production, archived
/// archive_replaced: true          # promoting to production archives the replaced version
/// rules:
///   production:
///     from: [staging, canary]
///     kinds: [model]
///     metrics:
///       - accuracy >= 0.92
///       - latency_p95_ms <= 40
///     require:
///       inputs: [dataset]
///       clean_code: true
/// ```
public struct Policy: Sendable, Equatable {
    public var extraStages: [String] = []
    public var archiveReplaced = true
    public var rules: [String: StageRules] = [:]
    /// Where it was read from; nil for the default (no file).
    public var path: String?

    public init() {}

    public var stages: [String] { Stages.builtIn + extraStages }

    static let fileNames = ["mvc.yaml", ".mvc/mvc.yaml"]

    /// Reads the policy of a work tree; the default policy when there is no file.
    static func load(workTree: String) throws(MVCError) -> Policy {
        for name in fileNames {
            let path = joinPath(workTree, name)
            if let bytes = try FileIO.readSmallFile(path, limit: 1 << 20) {
                return try parse(String(decoding: bytes, as: UTF8.self), path: name)
            }
        }
        return Policy()
    }

    /// Parses policy YAML. Every error names the file, line and column.
    public static func parse(_ yaml: String, path: String = "mvc.yaml") throws(MVCError) -> Policy {
        func fail(_ what: String, _ mark: Mark?) -> MVCError {
            let at = mark.map { ":\($0.line):\($0.column)" } ?? ""
            return MVCError(.badConfig, "invalid policy '\(path)\(at)': \(what)", hint: "fix the file; see docs/STAGES.md for its format")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            switch e {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
                // An unclosed bracket or quote is found at the end; the context says where it opened.
                if let context { throw fail("\(problem) (\(context.text) at \(path):\(context.mark.line):\(context.mark.column))", mark) }
                throw fail(problem, mark)
            case .duplicatedKeysInMapping(let duplicates, let context):
                throw fail("duplicate key '\(duplicates.joined(separator: "', '"))'", context.mark)
            default:
                throw fail("\(e)", nil)
            }
        } catch {
            throw fail("\(error)", nil)
        }
        var policy = Policy()
        policy.path = path
        guard let root else { return policy }   // an empty file: the default policy
        guard let top = root.mapping else { throw fail("expected a mapping at the top level", root.mark) }

        func string(_ n: Node, _ what: String) throws(MVCError) -> String {
            guard let s = n.scalar?.string else { throw fail("\(what) must be a string", n.mark) }
            return s
        }
        func strings(_ n: Node, _ what: String) throws(MVCError) -> [String] {
            if let seq = n.sequence {
                var out: [String] = []
                for item in seq { out.append(try string(item, what)) }
                return out
            }
            return [try string(n, what)]
        }
        func bool(_ n: Node, _ what: String) throws(MVCError) -> Bool {
            switch n.scalar?.string {
            case "true"?, "yes"?: return true
            case "false"?, "no"?: return false
            default: throw fail("\(what) must be true or false", n.mark)
            }
        }
        func stageName(_ s: String, _ n: Node) throws(MVCError) -> String {
            do throws(MVCError) { try Stages.validate(s) } catch { throw fail(error.message, n.mark) }
            return s
        }

        var declared: [(String, Node)] = []
        for (keyNode, value) in top {
            let key = try string(keyNode, "a key")
            switch key {
            case "stages":
                for s in try strings(value, "a stage name") {
                    if Stages.builtIn.contains(s) { continue }
                    policy.extraStages.append(try stageName(s, value))
                }
            case "archive_replaced":
                policy.archiveReplaced = try bool(value, "archive_replaced")
            case "rules":
                guard let rules = value.mapping else { throw fail("rules must map stage names to rules", value.mark) }
                for (stageNode, body) in rules {
                    let stage = try stageName(try string(stageNode, "a stage name"), stageNode)
                    declared.append((stage, stageNode))
                    policy.rules[stage] = try parseRules(body, stage: stage)
                }
            default:
                throw fail("unknown key '\(key)' (known: stages, archive_replaced, rules)", keyNode.mark)
            }
        }
        for (stage, node) in declared where !policy.stages.contains(stage) {
            throw fail("rules for unknown stage '\(stage)'; declare it under 'stages'", node.mark)
        }
        for (stage, r) in policy.rules {
            for s in r.from ?? [] where !policy.stages.contains(s) {
                throw fail("'from' of '\(stage)' names unknown stage '\(s)'", nil)
            }
        }
        return policy

        func parseRules(_ body: Node, stage: String) throws(MVCError) -> StageRules {
            var r = StageRules()
            if body.scalar?.string == "" || body.scalar?.string == "null" { return r }
            guard let m = body.mapping else { throw fail("rules for '\(stage)' must be a mapping", body.mark) }
            for (keyNode, value) in m {
                let key = try string(keyNode, "a key")
                switch key {
                case "from":
                    var from: [String] = []
                    for s in try strings(value, "a stage name") { from.append(try stageName(s, value)) }
                    r.from = from
                case "kinds":
                    var kinds: [ArtifactKind] = []
                    for s in try strings(value, "a kind") {
                        guard let k = ArtifactKind(rawValue: s) else { throw fail("unknown kind '\(s)' (model, dataset, config, other)", value.mark) }
                        kinds.append(k)
                    }
                    r.kinds = kinds
                case "metrics":
                    for item in value.sequence.map(Array.init) ?? [value] {
                        r.metrics.append(try parseMetricRule(try string(item, "a metric rule"), item))
                    }
                case "require":
                    guard let req = value.mapping else { throw fail("require must be a mapping (inputs, clean_code)", value.mark) }
                    for (rk, rv) in req {
                        switch try string(rk, "a key") {
                        case "inputs": r.requiredInputs = try strings(rv, "an input role")
                        case "clean_code": r.requireCleanCode = try bool(rv, "clean_code")
                        case let other: throw fail("unknown requirement '\(other)' (known: inputs, clean_code)", rk.mark)
                        }
                    }
                default:
                    throw fail("unknown key '\(key)' in rules for '\(stage)' (known: from, kinds, metrics, require)", keyNode.mark)
                }
            }
            return r
        }

        func parseMetricRule(_ text: String, _ node: Node) throws(MVCError) -> MetricRule {
            let parts = text.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 3, let op = MetricRule.Op(rawValue: String(parts[1])), let v = Double(parts[2]), v.isFinite else {
                throw fail("metric rule '\(text)' is not 'NAME OP NUMBER' (OP one of >= <= > < == !=)", node.mark)
            }
            do throws(MVCError) { try Names.validateKey(String(parts[0]), what: "metric") } catch { throw fail(error.message, node.mark) }
            return MetricRule(metric: String(parts[0]), op: op, value: v)
        }
    }
}

/// The outcome of one rule for one version.
public struct RuleOutcome: Sendable, Equatable, Codable {
    public var rule: String
    public var passed: Bool
    public var detail: String
}

public struct PolicyEvaluation: Sendable, Equatable, Codable {
    public var revision: String
    public var stage: String
    public var outcomes: [RuleOutcome]
    public var passed: Bool { outcomes.allSatisfy(\.passed) }
    public var failures: [RuleOutcome] { outcomes.filter { !$0.passed } }
}
