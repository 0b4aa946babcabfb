// Support for the stage tests: Decodable mirrors of the `--json` outputs of `mvc stages`,
// `history`, `promote`, `check`, `resolve` and `card`, and small helpers to set up and observe
// stages the way a user would.

import Foundation
import Testing

// MARK: - JSON mirrors

struct SignatureJSON: Decodable, Equatable {
    var name: String, email: String, time: Int64, tzOffsetMinutes: Int
}

/// One element of `mvc stages --json`.
struct StageStateJSON: Decodable, Equatable {
    var artifact: String, stage: String, move: String
    var commit: String?, version: Int?, weight: Int?
    var sequence: Int
    var since: SignatureJSON
}

/// One element of `mvc history --json`, of a move in `mvc promote --json`, or `history --at --json`.
struct StageMoveJSON: Decodable, Equatable {
    var artifact: String, stage: String, sequence: Int, move: String, action: String
    var from: String?, to: String?, fromVersion: Int?, toVersion: Int?, weight: Int?
    var actor: SignatureJSON
    var command: String?
    var reason: String
}

struct EvaluationJSON: Decodable, Equatable {
    struct Outcome: Decodable, Equatable { var rule: String, passed: Bool, detail: String }
    var revision: String, stage: String, outcomes: [Outcome]
    var passed: Bool { outcomes.allSatisfy(\.passed) }
}

struct MoveResultJSON: Decodable {
    var moves: [StageMoveJSON]
    var evaluation: EvaluationJSON?
    var unchanged: Bool
}

struct RouteJSON: Decodable, Equatable { var stage: String, artifact: String, version: Int, id: String }

/// `mvc resolve NAME --key K --json`.
struct RouteDecisionJSON: Decodable, Equatable {
    var artifact: String, key: String?, bucket: Int?
    var serve: RouteJSON
    var shadow: RouteJSON?
    var weights: [String: Int]
}

/// `mvc card REV --json` (the fields the tests look at).
struct CardJSON: Decodable {
    struct Input: Decodable, Equatable { var role: String, artifact: String, version: Int, id: String }
    struct Metric: Decodable, Equatable { var value: Double, source: String }
    struct File: Decodable, Equatable { var path: String, kind: String, size: UInt64, id: String }
    var artifact: String, version: Int, id: String, kind: String
    var inputs: [Input]
    var params: [String: String]
    var metrics: [String: Metric]
    var files: [File]
    var totalBytes: UInt64
    var stages: [String]
    var stageHistory: [StageMoveJSON]
    var retired: Bool
}

// MARK: - Helpers

/// What a stage command may change: the stages, their whole history, and the store's files.
struct StageSnapshot: Equatable {
    var stages: String
    var history: String
    var store: [String]
}

extension Sandbox {
    /// Writes the promotion policy at the work-tree root.
    func writePolicy(_ yaml: String) throws { try write("mvc.yaml", yaml) }

    /// `mvc stages NAME --json`.
    func stageStates(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [StageStateJSON] {
        try json([StageStateJSON].self, ["stages", name], sourceLocation: sourceLocation)
    }

    /// One stage's state, nil when it never moved.
    func stageState(_ name: String, _ stage: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> StageStateJSON? {
        try stageStates(name, sourceLocation: sourceLocation).first { $0.stage == stage }
    }

    /// `mvc history NAME [--stage S] --json`, newest first.
    func stageHistory(_ name: String, stage: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [StageMoveJSON] {
        try json([StageMoveJSON].self, ["history", name] + (stage.map { ["--stage", $0] } ?? []), sourceLocation: sourceLocation)
    }

    /// The stages and history of `name` as mvc prints them, and every file of the store.
    func stageSnapshot(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> StageSnapshot {
        StageSnapshot(stages: try mvcOK(["stages", "--json"], sourceLocation: sourceLocation).stdout,
                      history: try mvcOK(["history", name, "--json"], sourceLocation: sourceLocation).stdout,
                      store: files(under: path(".mvc")))
    }

    /// `mvc show REV --json`.
    func show(_ revision: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ShowJSON {
        try json(ShowJSON.self, ["show", revision], sourceLocation: sourceLocation)
    }

    /// The environment that makes mvc record `name` as the actor at Unix time `time`.
    static func actor(_ name: String, at time: Int64) -> [String: String] {
        ["MVC_AUTHOR_NAME": name, "MVC_AUTHOR_EMAIL": name.lowercased() + "@example.com", "MVC_AUTHOR_DATE": "\(time) +0000"]
    }
}

extension IrisProject {
    /// Commits `iris-mlp@v2` from the second model fixture, made from both inputs.
    @discardableResult
    func commitModelV2(_ extra: String...) throws -> CommitLine {
        try sandbox.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        let r = try sandbox.mvcOK(["commit", "model/model.safetensors", "--name", "iris-mlp",
                                   "--input", "iris@v1", "--input", "train-config@v1"] + extra)
        return try #require(CommitLine(r.stdout), "unexpected commit output: \(r)")
    }
}

/// Checks that `text` is laid out in aligned columns: row `i` holds the cells `rows[i]` in order,
/// and every column starts at the same offset in every row where it is not empty.
func expectAlignedColumns(_ text: String, rows: [[String]], sourceLocation: SourceLocation = #_sourceLocation) {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    guard lines.count == rows.count else {
        Issue.record("expected \(rows.count) rows, got \(lines.count):\n\(text)", sourceLocation: sourceLocation)
        return
    }
    var starts: [Int: Set<Int>] = [:]
    for (line, cells) in zip(lines, rows) {
        var from = line.startIndex
        for (column, cell) in cells.enumerated() where !cell.isEmpty {
            guard let range = line.range(of: cell, range: from..<line.endIndex) else {
                Issue.record("'\(cell)' is missing from the row '\(line)'", sourceLocation: sourceLocation)
                return
            }
            if column > 0 {
                #expect(line[from..<range.lowerBound].count >= 2 && line[from..<range.lowerBound].allSatisfy { $0 == " " },
                        "cells are separated by at least two spaces: '\(line)'", sourceLocation: sourceLocation)
            }
            starts[column, default: []].insert(line.distance(from: line.startIndex, to: range.lowerBound))
            from = range.upperBound
        }
        #expect(from == line.endIndex, "nothing after the last cell: '\(line)'", sourceLocation: sourceLocation)
    }
    for (column, offsets) in starts.sorted(by: { $0.key < $1.key }) {
        #expect(offsets.count == 1, "column \(column) starts at offsets \(offsets.sorted()):\n\(text)", sourceLocation: sourceLocation)
    }
}
