// The README's main flow, end to end: init, commit a dataset, a config and a model made from them,
// then inspect (show, log, ls, lineage, status, fsck, cat-object) and check out.

import Foundation
import Testing

@Suite("Flow: init, commit, inspect, check out")
struct FlowTests {
    @Test("init and commit print what the README promises")
    func commitOutput() throws {
        let sb = try Sandbox()
        try sb.copyFixture("data/iris.csv")
        let initOut = try sb.mvcOK("init")
        #expect(initOut.stdout == "Initialized empty mvc store in \(sb.work)/.mvc\n")
        #expect(sb.exists(".mvc/config"))

        let raw = try sb.mvcOK("commit", "data/", "--name", "iris", "--kind", "dataset", "--version", "1.0.0")
        let line = try #require(CommitLine(raw.stdout), "\(raw)")
        #expect(line.name == "iris" && line.version == 1 && line.semver == "1.0.0" && !line.unchanged)
        #expect(raw.stdout == "iris@v1 \(line.id) (1.0.0)\n")
        #expect(raw.stderr.isEmpty, "no progress noise when stderr is not a terminal: \(raw)")

        // Without --version: no tag in the line.
        try sb.copyFixture("config/train.yaml")
        let plain = try sb.mvcOK("commit", "config/train.yaml", "--name", "train-config", "--kind", "config")
        let pline = try #require(CommitLine(plain.stdout))
        #expect(plain.stdout == "train-config@v1 \(pline.id)\n")

        // --json gives the same facts.
        try sb.copyFixture("model/model.safetensors")
        let j = try sb.json(CommitJSON.self, ["commit", "model/model.safetensors", "--name", "iris-mlp", "--kind", "model"])
        #expect(j.name == "iris-mlp" && j.version == 1 && !j.unchanged && j.semver == nil)
        let modelSize = UInt64(try Fixtures.data("model/model.safetensors").count)
        #expect(j.files == 1 && j.bytes == modelSize)
        #expect(j.newBytes > 0)

        let artifacts = try sb.json([ArtifactJSON].self, ["artifacts"])
        #expect(artifacts == [
            ArtifactJSON(name: "iris", kind: "dataset", version: 1, id: line.id),
            ArtifactJSON(name: "iris-mlp", kind: "model", version: 1, id: j.id),
            ArtifactJSON(name: "train-config", kind: "config", version: 1, id: pline.id),
        ])
    }

    @Test("show records inputs with roles, the code commit, params, metrics and environment")
    func showProvenance() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let show = try sb.json(ShowJSON.self, ["show", "iris-mlp"])
        #expect(show.id == p.model.id)
        #expect(show.artifact == "iris-mlp" && show.version == 1 && show.kind == "model")
        #expect(show.paths == ["model/model.safetensors"])
        #expect(show.parents.isEmpty)
        #expect(show.files == 1)
        let modelSize = UInt64(try Fixtures.data("model/model.safetensors").count)
        #expect(show.bytes == modelSize)

        let inputs = show.inputs.sorted { $0.role < $1.role }
        #expect(inputs.map(\.role) == ["config", "dataset"])
        #expect(inputs.map(\.artifact) == ["train-config", "iris"])
        #expect(inputs.map(\.id) == [p.config.id, p.iris.id])
        #expect(inputs.map(\.version) == [1, 1])

        let code = try #require(show.code, "a commit made in a git work tree records the code commit")
        #expect(code.commit == p.codeCommit)
        #expect(code.dirty == false)

        #expect(show.params == ["lr": "0.01"])
        #expect(show.metrics == ["accuracy": 0.93])
        #expect(Set(show.environment.keys).isSuperset(of: ["os", "arch", "mvc"]))
        #expect(show.environment["os"] == "linux")

        #expect(show.author == Sandbox.authorName && show.email == Sandbox.authorEmail)
        #expect(show.time == Sandbox.authorTime && show.timezone == "+0000")

        let dataset = try sb.json(ShowJSON.self, ["show", "iris@v1"])
        #expect(dataset.message == "150 rows\n")
        #expect(dataset.kind == "dataset" && dataset.paths == ["data"] && dataset.files == 2)
        #expect(dataset.inputs.isEmpty && dataset.params.isEmpty && dataset.metrics.isEmpty)

        // The human form names the same things.
        let text = try sb.mvcOK("show", "iris-mlp@v1").stdout
        for needle in ["commit", p.model.id, "iris-mlp@v1 (model)", "iris@v1 as dataset", "train-config@v1 as config",
                       "lr = 0.01", "accuracy = 0.93", "\(Sandbox.authorName) <\(Sandbox.authorEmail)>",
                       "2026-01-01 00:00:00 +0000", p.codeCommit ?? "?"] {
            #expect(text.contains(needle), "show should print '\(needle)':\n\(text)")
        }
        #expect(!text.contains("(dirty)"))
    }

    @Test("a modified git-tracked file marks the code dirty; outside git no code is recorded")
    func dirtyCode() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.write("train.py", "print('training, edited')\n")
        try sb.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        let v2 = try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--input", "iris@v1")
        #expect(v2.version == 2)
        let show = try sb.json(ShowJSON.self, ["show", "iris-mlp@v2"])
        #expect(show.code?.commit == p.codeCommit)
        #expect(show.code?.dirty == true)
        #expect(try sb.mvcOK("show", "iris-mlp@v2").stdout.contains("(dirty)"))
        // An untracked file does not make the code dirty: v1 was committed with untracked data around.
        #expect(try sb.json(ShowJSON.self, ["show", "iris-mlp@v1"]).code?.dirty == false)

        let nogit = try IrisProject.make(git: false)
        #expect(try nogit.sandbox.json(ShowJSON.self, ["show", "iris-mlp"]).code == nil)
    }

    @Test("log lists versions newest first with their tags")
    func log() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        let v2 = try sb.commit("model/model.safetensors", "--name", "iris-mlp", "-m", "fine-tuned\n\nmore detail",
                               "--input", "iris-mlp@v1", "--metric", "accuracy=0.95", "--version", "2.0.0")
        #expect(v2.version == 2 && v2.semver == "2.0.0")

        let log = try sb.json([LogEntryJSON].self, ["log", "iris-mlp"])
        #expect(log.map(\.version) == [2, 1])
        #expect(log.map(\.id) == [v2.id, p.model.id])
        #expect(log.map(\.semver) == [["2.0.0"], []])
        #expect(log[0].message == "fine-tuned\n\nmore detail\n")
        #expect(log.allSatisfy { $0.author == Sandbox.authorName && $0.email == Sandbox.authorEmail && $0.time == Sandbox.authorTime })

        let text = try sb.mvcOK("log", "iris-mlp").stdoutLines
        #expect(text.count == 2)
        #expect(text.first?.hasPrefix("v2  \(v2.id.prefix(12))") == true, "\(text)")
        #expect(text.first?.hasSuffix("fine-tuned (2.0.0)") == true, "only the subject line, then the tag: \(text)")
        #expect(text.last?.hasPrefix("v1  \(p.model.id.prefix(12))") == true, "\(text)")

        let show = try sb.json(ShowJSON.self, ["show", "iris-mlp@v2"])
        #expect(show.parents == [p.model.id])
        #expect(show.inputs.map(\.role) == ["base-model"], "a model input defaults to the base-model role")

        let irisLog = try sb.json([LogEntryJSON].self, ["log", "iris"])
        #expect(irisLog.count == 1 && irisLog[0].semver == ["1.0.0"] && irisLog[0].message == "150 rows\n")
    }

    @Test("ls lists files with sizes and blob ids equal to sha256sum of the bytes")
    func ls() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let files = try sb.json([LsEntryJSON].self, ["ls", "iris@1.0.0"])
        var expected: [LsEntryJSON] = []
        for f in ["data/README.md", "data/iris.csv"] {
            let bytes = try Fixtures.data(f)
            expected.append(LsEntryJSON(path: f, kind: "file", size: UInt64(bytes.count), id: try sb.sha256(ofFile: Fixtures.path(f))))
        }
        #expect(files == expected)

        let text = try sb.mvcOK("ls", "iris@v1").stdoutLines
        #expect(text.count == 2)
        for (line, e) in zip(text, expected) {
            let cells = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            #expect(cells == [String(e.size), e.id, e.path], "\(line)")
        }

        let model = try sb.json([LsEntryJSON].self, ["ls", "iris-mlp"])
        #expect(model.map(\.path) == ["model/model.safetensors"])
        #expect(model.first?.id == (try sb.sha256(ofFile: Fixtures.path("model/model.safetensors"))))
    }

    @Test("lineage walks upstream and, with --down, downstream")
    func lineage() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        // A fine-tuned model made from v1 and the dataset again: a DAG, not a tree.
        try sb.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        let tuned = try sb.commit("model/model.safetensors", "--name", "iris-mlp-tuned", "--kind", "model",
                                  "--input", "iris-mlp@v1", "--input", "iris@1.0.0")

        let up = try sb.json([LineageNodeJSON].self, ["lineage", "iris-mlp"])
        #expect(up == [
            LineageNodeJSON(id: p.model.id, artifact: "iris-mlp", version: 1, kind: "model", role: nil, depth: 0, repeated: false),
            LineageNodeJSON(id: p.config.id, artifact: "train-config", version: 1, kind: "config", role: "config", depth: 1, repeated: false),
            LineageNodeJSON(id: p.iris.id, artifact: "iris", version: 1, kind: "dataset", role: "dataset", depth: 1, repeated: false),
        ])

        let tunedUp = try sb.json([LineageNodeJSON].self, ["lineage", "iris-mlp-tuned"])
        #expect(tunedUp.map { "\($0.depth) \($0.role ?? "-") \($0.artifact)\($0.repeated ? " (repeated)" : "")" } == [
            "0 - iris-mlp-tuned",
            "1 base-model iris-mlp",
            "2 config train-config",
            "2 dataset iris",
            "1 dataset iris (repeated)",
        ])

        // Downstream, users with the same role come in id order.
        let down = try sb.json([LineageNodeJSON].self, ["lineage", "iris@v1", "--down"])
        let expectedDown = p.model.id < tuned.id
            ? ["0 - iris@v1", "1 dataset iris-mlp@v1", "2 base-model iris-mlp-tuned@v1", "1 dataset iris-mlp-tuned@v1 (repeated)"]
            : ["0 - iris@v1", "1 dataset iris-mlp-tuned@v1", "1 dataset iris-mlp@v1", "2 base-model iris-mlp-tuned@v1 (repeated)"]
        #expect(down.map { "\($0.depth) \($0.role ?? "-") \($0.artifact)@v\($0.version)\($0.repeated ? " (repeated)" : "")" } == expectedDown)
        #expect(down.filter { $0.artifact == "iris-mlp-tuned" }.allSatisfy { $0.id == tuned.id })

        let text = try sb.mvcOK("lineage", "iris-mlp").stdoutLines
        #expect(text == [
            "iris-mlp@v1 (model) \(p.model.id.prefix(12))",
            "  config: train-config@v1 (config) \(p.config.id.prefix(12))",
            "  dataset: iris@v1 (dataset) \(p.iris.id.prefix(12))",
        ])
        let leaf = try sb.json([LineageNodeJSON].self, ["lineage", "train-config", "--down"])
        #expect(leaf.map(\.artifact) == ["train-config", "iris-mlp", "iris-mlp-tuned"])
    }

    @Test("checkout -o writes byte-exact copies")
    func checkoutToDirectory() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let out = sb.scratch + "/model-out"
        let r = try sb.mvcOK("checkout", "iris-mlp@v1", "-o", out)
        #expect(r.stdout.hasPrefix("iris-mlp@v1 -> \(out): 1 written"), "\(r)")
        #expect(try sb.readAbsolute(out + "/model/model.safetensors") == Fixtures.data("model/model.safetensors"))
        #expect(try sb.sha256(ofFile: out + "/model/model.safetensors") == sb.sha256(ofFile: Fixtures.path("model/model.safetensors")))

        // A relative -o is taken from the current directory; --json reports what was written.
        let j = try sb.json(CheckoutJSON.self, ["checkout", "iris@1.0.0", "-o", "../scratch/data-out"])
        #expect(j.revision == "iris@v1" && j.id == p.iris.id)
        #expect(j.directory == sb.scratch + "/data-out")
        #expect(j.written.sorted() == ["data/README.md", "data/iris.csv"])
        #expect(j.removed.isEmpty && j.kept.isEmpty && j.unchanged == 0)
        for f in ["data/README.md", "data/iris.csv"] {
            #expect(try sb.readAbsolute(sb.scratch + "/data-out/" + f) == Fixtures.data(f))
        }
        #expect(sb.files(under: sb.scratch + "/data-out") == ["data/README.md", "data/iris.csv"], "no temp files left behind")

        // Checking out again over identical files writes nothing.
        let again = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1", "-o", sb.scratch + "/data-out"])
        #expect(again.written.isEmpty && again.unchanged == 2 && again.bytesWritten == 0)

        // Into the work tree after the files were deleted.
        try sb.remove("data")
        let back = try sb.json(CheckoutJSON.self, ["checkout", "iris"])
        #expect(back.directory == sb.work && back.written.sorted() == ["data/README.md", "data/iris.csv"])
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))
    }

    @Test("status: clean, then modified, deleted and added paths")
    func status() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        #expect(try sb.mvcOK("status").stdout == "clean: 3 artifacts match their latest version\n")
        let clean = try sb.json(StatusJSON.self, ["status"])
        #expect(clean.changes.isEmpty && clean.clean == ["iris", "iris-mlp", "train-config"])

        // Same size, different bytes: found by hashing, not by size.
        var csv = try sb.read("data/iris.csv")
        csv[csv.count / 2] ^= 0x01
        try sb.write("data/iris.csv", csv)
        let modified = try sb.json(StatusJSON.self, ["status"])
        #expect(modified.changes == [.init(artifact: "iris", path: "data/iris.csv", change: "modified")])
        #expect(modified.clean == ["iris-mlp", "train-config"])

        try sb.remove("data/README.md")
        try sb.write("data/new.csv", "a,b\n1,2\n")
        try sb.remove("model/model.safetensors")
        let mixed = try sb.json(StatusJSON.self, ["status"])
        #expect(mixed.changes == [
            .init(artifact: "iris", path: "data/README.md", change: "deleted"),
            .init(artifact: "iris", path: "data/iris.csv", change: "modified"),
            .init(artifact: "iris", path: "data/new.csv", change: "added"),
            .init(artifact: "iris-mlp", path: "model/model.safetensors", change: "deleted"),
        ])
        #expect(mixed.clean == ["train-config"])
        let text = try sb.mvcOK("status").stdoutLines
        #expect(text.count == 4)
        #expect(text.first?.split(separator: " ", omittingEmptySubsequences: true) == ["deleted", "iris", "data/README.md"])

        // Status works from a subdirectory too (the store is found in a parent).
        #expect(try sb.json(StatusJSON.self, ["status"], cwd: sb.path("config")).changes.count == 4)
    }

    @Test("status still reports changes when a tracked directory holds a symlink")
    func statusWithSymlink() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.write("data/iris.csv", "edited\n")
        try FileManager.default.createSymbolicLink(atPath: sb.path("data/alias.csv"), withDestinationPath: "iris.csv")
        // The link cannot be committed, but it must not stop status from showing the rest.
        let r = try sb.mvc("status", "--json")
        try #require(r.status == 0, "\(r)")
        let status = try JSONDecoder().decode(StatusJSON.self, from: r.stdoutData)
        #expect(status.changes.contains(.init(artifact: "iris", path: "data/iris.csv", change: "modified")), "\(status.changes)")
        #expect(status.clean == ["iris-mlp", "train-config"])
    }

    @Test("every revision form names the same commit")
    func revisionForms() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let id = p.iris.id
        for rev in ["iris", "iris@v1", "iris@1.0.0", "iris@latest", "iris@", "iris@\(id.prefix(8))", "iris@\(id)",
                    String(id.prefix(12)), String(id.prefix(20)), id, id.uppercased()] {
            let show = try sb.json(ShowJSON.self, ["show", rev])
            #expect(show.id == id, "'\(rev)' should name \(id)")
        }
        // After a second version, the bare name moves and the old forms stay put.
        try sb.write("data/iris.csv", try Fixtures.data("data/iris.csv") + Data("7.0,3.0,5.0,1.5,versicolor\n".utf8))
        let v2 = try sb.commit("data", "--name", "iris")
        #expect(v2.version == 2 && v2.semver == nil)
        #expect(try sb.json(ShowJSON.self, ["show", "iris"]).id == v2.id)
        #expect(try sb.json(ShowJSON.self, ["show", "iris@v2"]).id == v2.id)
        #expect(try sb.json(ShowJSON.self, ["show", "iris@v1"]).id == id)
        #expect(try sb.json(ShowJSON.self, ["show", "iris@1.0.0"]).id == id)
        #expect(try sb.json(ShowJSON.self, ["show", "iris@\(v2.id.prefix(10))"]).version == 2)
        // An id prefix of another artifact's commit is refused under this name.
        try sb.mvcFails(["show", "iris@\(p.model.id.prefix(10))"], mentioning: "unknown revision")
    }

    @Test("re-committing unchanged files prints (unchanged) and makes no new version")
    func recommitUnchanged() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let r = try sb.mvcOK("commit", "data/", "--name", "iris")
        #expect(r.stdout == "iris@v1 \(p.iris.id) (unchanged)\n")
        let line = try #require(CommitLine(r.stdout))
        #expect(line.unchanged && line.version == 1 && line.semver == nil)
        // The path spelled differently is the same path.
        #expect(try sb.json(CommitJSON.self, ["commit", "./data", "--name", "iris"]).unchanged)
        #expect(try sb.json(CommitJSON.self, ["commit", "..//data/", "--name", "iris"], cwd: sb.path("config")).unchanged)
        #expect(try sb.json([LogEntryJSON].self, ["log", "iris"]).map(\.version) == [1])
        // A message is something new to say: a new version with the same tree.
        let withMessage = try sb.commit("data", "--name", "iris", "-m", "same rows, new note")
        #expect(!withMessage.unchanged && withMessage.version == 2)
        #expect(try sb.json(ShowJSON.self, ["show", "iris@v2"]).tree == sb.json(ShowJSON.self, ["show", "iris@v1"]).tree)

        // The model with no new metadata: unchanged, and nothing new in the store.
        let before = sb.files(under: sb.path(".mvc/objects"))
        let m = try sb.commit("model/model.safetensors", "--name", "iris-mlp")
        #expect(m.unchanged && m.id == p.model.id)
        #expect(sb.files(under: sb.path(".mvc/objects")) == before, "an unchanged commit adds nothing to the store")
        // New metadata on unchanged files is a new version.
        let tagged = try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--metric", "f1=0.9")
        #expect(!tagged.unchanged && tagged.version == 2)
    }

    @Test("fsck passes; cat-object prints canonical bytes whose SHA-256 is the id")
    func fsckAndCatObject() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let fsck = try sb.mvcOK("fsck")
        #expect(fsck.stdout.hasSuffix("no problems\n"), "\(fsck)")
        let report = try sb.json(FsckJSON.self, ["fsck"])
        #expect(report.problems.isEmpty && report.objectsChecked >= 9 && report.refsChecked >= 4)

        for c in [p.iris, p.config, p.model] {
            let r = try sb.mvcOK("cat-object", c.id)
            #expect(r.stdout.hasPrefix("commit "), "\(r)")
            #expect(try sb.sha256(of: r.stdoutData) == c.id)
        }
        let model = try sb.mvcOK("cat-object", "iris-mlp@v1").stdout
        #expect(model.contains("\nartifact iris-mlp\nkind model\nversion 1\npath model/model.safetensors\n"))
        #expect(model.contains("\ninput \(p.config.id) config\ninput \(p.iris.id) dataset\n"))
        #expect(model.contains("\ncode \(p.codeCommit ?? "?") clean\nparam lr 0.01\nmetric accuracy 0.93\n"))
        #expect(model.contains("\nauthor \(Sandbox.authorName) <\(Sandbox.authorEmail)> \(Sandbox.authorTime) +0000\n"))

        let show = try sb.json(ShowJSON.self, ["show", "iris"])
        let tree = try sb.mvcOK("cat-object", show.tree)
        #expect(tree.stdout.hasPrefix("tree "))
        #expect(try sb.sha256(of: tree.stdoutData) == show.tree)

        let blob = try #require(try sb.json([LsEntryJSON].self, ["ls", "iris"]).first { $0.path == "data/iris.csv" })
        #expect(try sb.mvcOK("cat-object", blob.id).stdoutData == Fixtures.data("data/iris.csv"))
        #expect(try sb.mvcOK("cat-object", String(blob.id.prefix(16))).stdoutData == Fixtures.data("data/iris.csv"))
    }

    @Test("commit and checkout work from a subdirectory with relative paths")
    func subdirectory() throws {
        let sb = try Sandbox()
        try sb.copyFixture("data/iris.csv")
        try sb.copyFixture("data/README.md")
        try sb.mvcOK("init")
        let c = try sb.mvcOK(["commit", "iris.csv", "--name", "iris-csv", "--kind", "dataset"], cwd: sb.path("data"))
        #expect(CommitLine(c.stdout)?.version == 1)
        let show = try sb.json(ShowJSON.self, ["show", "iris-csv"], cwd: sb.path("data"))
        #expect(show.paths == ["data/iris.csv"], "paths are stored relative to the work tree's root")
        let j = try sb.json(CheckoutJSON.self, ["checkout", "iris-csv", "-o", "out"], cwd: sb.path("data"))
        #expect(j.directory == sb.path("data/out"))
        #expect(try sb.read("data/out/data/iris.csv") == Fixtures.data("data/iris.csv"))
        // -C runs as if started there.
        #expect(try sb.json(StatusJSON.self, ["status", "-C", sb.work], cwd: sb.outside).clean == ["iris-csv"])
    }
}
