internal import Foundation

/// Everything the store knows about one version, for `mvc card`.
public struct ModelCard: Sendable, Codable, Equatable {
    public struct Input: Sendable, Codable, Equatable { public var role: String, artifact: String, version: Int, id: ObjectID }
    public struct MetricValue: Sendable, Codable, Equatable { public var value: Double, source: String }

    public var artifact: String
    public var version: Int
    public var id: ObjectID
    public var kind: ArtifactKind
    public var semver: [String]
    public var author: Signature
    public var message: String
    public var paths: [String]
    public var files: [FileEntry]
    public var totalBytes: UInt64
    public var inputs: [Input]
    public var code: CodeRef?
    public var params: [String: String]
    /// Effective metrics: the commit's, overlaid by later annotations; `source` says which.
    public var metrics: [String: MetricValue]
    public var environment: [String: String]
    /// Stages that hold this version now.
    public var stages: [String]
    /// Every stage move to or from this version, newest first.
    public var stageHistory: [StageHistoryEntry]
    public var retired: Bool
    /// Upstream lineage (what it was made from, recursively).
    public var lineage: [LineageNode]
    /// Versions made directly from this one.
    public var usedBy: [LineageNode]
}

extension Repository {
    public func card(_ revision: String) throws(MVCError) -> ModelCard {
        let (id, c) = try resolveCommit(revision)
        let files = try self.files(ofTree: c.tree)
        var inputs: [ModelCard.Input] = []
        for i in c.inputs {
            let ic = try objects.readCommit(i.commit)
            inputs.append(.init(role: i.role, artifact: ic.artifact, version: ic.version, id: i.commit))
        }
        var metrics: [String: ModelCard.MetricValue] = [:]
        for (k, v) in c.metrics { metrics[k] = .init(value: v, source: "commit") }
        let annotations = try self.annotations(of: id, artifact: c.artifact)
        for (aid, a) in annotations.reversed() {
            for (k, v) in a.metrics { metrics[k] = .init(value: v, source: "annotation \(aid.short) by \(a.actor.name)") }
        }
        let history = try self.history(c.artifact).filter { $0.to == id || $0.from == id }
        let holding = try stageStates(c.artifact).filter { $0.commit == id }.map(\.stage)
        let lineage = try self.lineage(id.hex)
        let usedBy = try self.lineage(id.hex, downstream: true).filter { $0.depth == 1 }
        return ModelCard(artifact: c.artifact, version: c.version, id: id, kind: c.kind,
                         semver: (try semverTags(c.artifact))[id]?.sorted() ?? [], author: c.author, message: c.message,
                         paths: c.paths, files: files, totalBytes: files.reduce(0) { $0 + $1.size }, inputs: inputs, code: c.code,
                         params: c.params, metrics: metrics, environment: c.environment, stages: holding, stageHistory: history,
                         retired: annotations.contains { $0.annotation.retired }, lineage: lineage, usedBy: usedBy)
    }
}

extension ModelCard {
    /// The card as Markdown.
    public var markdown: String {
        func date(_ s: Signature) -> String {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(secondsFromGMT: s.tzOffsetMinutes * 60)
            f.dateFormat = "yyyy-MM-dd HH:mm xx"
            return f.string(from: Date(timeIntervalSince1970: TimeInterval(s.time)))
        }
        func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
        var md = "# \(artifact) v\(version)\(semver.isEmpty ? "" : " (\(semver.joined(separator: ", ")))")\n\n"
        if retired { md += "> **Retired.** This version is kept with its lineage but may not be promoted.\n\n" }
        let summary = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if !summary.isEmpty { md += summary + "\n\n" }
        md += "| | |\n|---|---|\n"
        md += "| Kind | \(kind.rawValue) |\n| Id | `\(id.hex)` |\n| Author | \(cell(author.name)) <\(cell(author.email))> |\n"
        md += "| Date | \(date(author)) |\n| Stages | \(stages.isEmpty ? "none" : stages.joined(separator: ", ")) |\n"
        md += "| Size | \(totalBytes) bytes in \(files.count) file\(files.count == 1 ? "" : "s") |\n\n"
        md += "## Provenance\n\n"
        if inputs.isEmpty { md += "No recorded inputs.\n\n" } else {
            md += "| Role | Input | Id |\n|---|---|---|\n"
            for i in inputs { md += "| \(i.role) | \(i.artifact)@v\(i.version) | `\(i.id.short)` |\n" }
            md += "\n"
        }
        if let code { md += "Code: git commit `\(code.commit)`\(code.dirty ? " (with uncommitted changes)" : "").\n\n" } else { md += "Code: not recorded (not made inside a git work tree).\n\n" }
        if lineage.count > 1 {
            md += "Full lineage:\n\n"
            for n in lineage { md += String(repeating: "  ", count: n.depth) + "- \(n.role.map { "\($0): " } ?? "")\(n.artifact)@v\(n.version) (\(n.kind.rawValue))\(n.repeated ? " (see above)" : "")\n" }
            md += "\n"
        }
        if !usedBy.isEmpty { md += "Used by: \(usedBy.map { "\($0.artifact)@v\($0.version) (as \($0.role ?? "input"))" }.joined(separator: ", ")).\n\n" }
        md += "## Parameters\n\n"
        if params.isEmpty { md += "None recorded.\n\n" } else {
            md += "| Parameter | Value |\n|---|---|\n"
            for k in params.keys.sorted() { md += "| \(cell(k)) | \(cell(params[k]!)) |\n" }
            md += "\n"
        }
        md += "## Metrics\n\n"
        if metrics.isEmpty { md += "None recorded.\n\n" } else {
            md += "| Metric | Value | Source |\n|---|---|---|\n"
            for k in metrics.keys.sorted() { md += "| \(cell(k)) | \(Commit.formatNumber(metrics[k]!.value)) | \(cell(metrics[k]!.source)) |\n" }
            md += "\n"
        }
        md += "## Environment\n\n"
        for k in environment.keys.sorted() { md += "- \(k): \(environment[k]!)\n" }
        md += "\n## Stage history\n\n"
        if stageHistory.isEmpty { md += "Never promoted.\n\n" } else {
            md += "| When | Stage | Move | By | Reason |\n|---|---|---|---|---|\n"
            for h in stageHistory {
                let move = "\(h.action.rawValue): \(h.fromVersion.map { "v\($0)" } ?? "empty") → \(h.toVersion.map { "v\($0)" } ?? "empty")\(h.weight.map { " (\($0)%)" } ?? "")"
                md += "| \(date(h.actor)) | \(h.stage) | \(move) | \(cell(h.actor.name)) | \(cell(h.reason.trimmingCharacters(in: .whitespacesAndNewlines))) |\n"
            }
            md += "\n"
        }
        md += "## Files\n\n| Path | Bytes | SHA-256 |\n|---|---:|---|\n"
        for f in files { md += "| \(cell(f.path)) | \(f.size) | `\(f.id.hex)` |\n" }
        return md
    }
}
