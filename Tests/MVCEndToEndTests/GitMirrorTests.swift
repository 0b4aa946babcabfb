// The git mirror, end to end on real git repositories: what `mvc commit`, tags, promotions and
// metrics leave under refs/mvc (refs, commit messages and trailers, reflogs, Git LFS pointers,
// file modes), that git finds it all well formed, mvc.lock and the managed .gitignore block, and
// `mvc mirror sync` repairing a mirror that fell behind or lost a ref.

import Foundation
import Testing

@Suite("Git mirror: refs/mvc, pointers, mvc.lock, sync")
struct GitMirrorTests {
    /// The project with v2, two promotions to production, one to staging, a rollback and a metric.
    static func projectWithHistory() throws -> (GitProject, CommitLine) {
        let p = try GitProject.make()
        let sb = p.sandbox
        let t = GitProject.t0
        let v2 = try p.commitModelV2(at: t + 100)
        try sb.mvcOK(["promote", "iris-mlp@v1", "--to", "staging", "-m", "candidate"], env: atTime(t + 200))
        try sb.mvcOK(["promote", "iris-mlp@v1", "--to", "production", "-m", "launch day"], env: atTime(t + 300))
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "production", "-m", "better accuracy"], env: atTime(t + 400))
        try sb.mvcOK(["rollback", "iris-mlp", "--stage", "production", "-m", "latency regression"], env: atTime(t + 500))
        try sb.mvcOK(["metric", "iris-mlp@v1", "latency_p95_ms=35", "-m", "load test"], env: atTime(t + 600))
        return (p, v2)
    }

    @Test("commits, tags, stages and metrics appear under refs/mvc; promotions are a git log and a reflog")
    func refsLogAndReflog() throws {
        let (p, v2) = try GitMirrorTests.projectWithHistory()
        let sb = p.sandbox

        let refs = try sb.mvcGitRefs()
        #expect(Set(refs.keys) == [
            "refs/mvc/artifacts/iris", "refs/mvc/artifacts/iris-mlp", "refs/mvc/artifacts/train-config",
            "refs/mvc/tags/iris/1.0.0",
            "refs/mvc/stages/iris-mlp/staging", "refs/mvc/stages/iris-mlp/production", "refs/mvc/stages/iris-mlp/archived",
            "refs/mvc/annotations/iris-mlp/\(p.model.id)",
        ], "\(refs.keys.sorted())")

        // Each artifact ref is a git commit whose trailer names the mvc commit `mvc show` reports.
        for (name, expected) in [("iris", p.iris.id), ("train-config", p.config.id), ("iris-mlp", v2.id)] {
            #expect(try sb.mvcTrailer("refs/mvc/artifacts/\(name)") == "commit \(expected)")
            #expect(try sb.show(name).id == expected)
        }
        #expect(try sb.mvcTrailer("refs/mvc/tags/iris/1.0.0") == "commit \(p.iris.id)")
        #expect(refs["refs/mvc/tags/iris/1.0.0"] == refs["refs/mvc/artifacts/iris"], "the tag and the head are the same version")
        // A version's git parent is its mvc parent: the artifact ref's log is the version history.
        #expect(try sb.gitText(["log", "--format=%s", "refs/mvc/artifacts/iris-mlp"]) == "iris-mlp@v2\niris-mlp@v1")
        #expect(try sb.gitText(["log", "--format=%(trailers:key=Mvc-Object,valueonly)", "refs/mvc/artifacts/iris-mlp"])
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            == ["commit \(v2.id)", "commit \(p.model.id)"])
        // The author is mvc's author, at the version's time.
        #expect(try sb.gitText(["log", "-1", "--format=%an <%ae> %at", "refs/mvc/artifacts/iris-mlp"])
            == "\(Sandbox.authorName) <\(Sandbox.authorEmail)> \(GitProject.t0 + 100)")

        // Stage refs carry the move that `mvc stages` reports.
        for state in try sb.stageStates("iris-mlp") {
            #expect(try sb.mvcTrailer("refs/mvc/stages/iris-mlp/\(state.stage)") == "move \(state.move)", "\(state)")
        }

        // Promotions to production, newest first, as a git log ...
        let subjects = try sb.gitText(["log", "--format=%s", "refs/mvc/stages/iris-mlp/production"]).split(separator: "\n").map(String.init)
        #expect(subjects == ["rollback iris-mlp@production: v1", "promote iris-mlp@production: v2", "promote iris-mlp@production: v1"])
        let bodies = try sb.gitText(["log", "--format=%b%x00", "refs/mvc/stages/iris-mlp/production"])
        for reason in ["latency regression", "better accuracy", "launch day"] {
            #expect(bodies.contains(reason), "the move's reason is in its git commit: \(bodies)")
        }
        // ... agreeing with mvc's own audit trail ...
        let history = try sb.stageHistory("iris-mlp", stage: "production")
        #expect(history.map(\.action) == ["rollback", "promote", "promote"])
        #expect(history.map(\.toVersion) == [1, 2, 1])
        #expect(try sb.gitText(["log", "--format=%(trailers:key=Mvc-Object,valueonly)", "refs/mvc/stages/iris-mlp/production"])
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init) == history.map { "move \($0.move)" })

        // ... and as the ref's reflog: one entry per move, with who and why.
        let reflog = try sb.reflog("refs/mvc/stages/iris-mlp/production")
        #expect(reflog.count == 3, "\(reflog)")
        for (entry, (action, version, reason)) in zip(reflog, [("rollback", "v1", "latency regression"),
                                                               ("promote", "v2", "better accuracy"),
                                                               ("promote", "v1", "launch day")]) {
            #expect(entry.hasPrefix(action) && entry.contains("iris-mlp@production") && entry.contains("-> \(version)")
                    && entry.contains(reason), "reflog entry '\(entry)' should say \(action) -> \(version): \(reason)")
        }
        #expect(try sb.gitText(["reflog", "show", "--format=%gn <%ge>", "refs/mvc/stages/iris-mlp/production"])
            .split(separator: "\n").allSatisfy { $0 == "\(Sandbox.authorName) <\(Sandbox.authorEmail)>" },
            "the reflog names who moved the stage")
        #expect(try sb.reflog("refs/mvc/stages/iris-mlp/staging").count == 1)
        #expect(try sb.reflog("refs/mvc/stages/iris-mlp/archived").count == 1)

        // The metric is an annotation commit.
        let annotation = "refs/mvc/annotations/iris-mlp/\(p.model.id)"
        #expect(try sb.gitText(["log", "-1", "--format=%s", annotation]) == "metric iris-mlp@v1: latency_p95_ms=35")
        #expect(try sb.mvcTrailer(annotation).hasPrefix("annotation "))

        try sb.expectGitFsckClean()
    }

    @Test("every file of an artifact commit is a valid Git LFS pointer to its bytes; executables keep 100755")
    func lfsPointersAndModes() throws {
        let p = try GitProject.make()
        let sb = p.sandbox
        let lfs = try sb.gitRun(["lfs", "version"])
        try #require(lfs.status == 0, "these tests need git-lfs ('apt-get install -y git-lfs'): \(lfs)")

        try sb.write("tools/run.sh", "#!/bin/sh\necho scoring\n", mode: 0o755)
        try sb.write("tools/README", "how to score\n")
        let tools = try sb.commit("tools/", "--name", "tools", "--kind", "other")

        let expected: [String: [String: String]] = [   // ref -> path in `files/` -> file in the work tree
            "iris": ["files/data/iris.csv": "data/iris.csv", "files/data/README.md": "data/README.md"],
            "train-config": ["files/config/train.yaml": "config/train.yaml"],
            "iris-mlp": ["files/model/model.safetensors": "model/model.safetensors"],
            "tools": ["files/tools/run.sh": "tools/run.sh", "files/tools/README": "tools/README"],
        ]
        for (name, files) in expected {
            let ref = "refs/mvc/artifacts/\(name)"
            let tree = try sb.gitTree(ref, under: "files")
            #expect(Set(tree.keys) == Set(files.keys), "\(ref): \(tree.keys.sorted())")
            for (gitPath, workPath) in files {
                let pointer = try sb.gitOK(["show", "\(ref):\(gitPath)"]).stdoutData
                let pointerFile = sb.scratch + "/pointer-\(name)-\(workPath.replacingOccurrences(of: "/", with: "_"))"
                try sb.writeAbsolute(pointerFile, pointer)
                let check = try sb.gitRun(["lfs", "pointer", "--check", "--strict", "--file", pointerFile])
                #expect(check.status == 0, "\(ref):\(gitPath) should be a canonical Git LFS pointer: \(check)\n\(String(decoding: pointer, as: UTF8.self))")

                let bytes = try sb.read(workPath)
                let lines = String(decoding: pointer, as: UTF8.self).split(separator: "\n").map(String.init)
                #expect(lines == ["version https://git-lfs.github.com/spec/v1",
                                  "oid sha256:\(try sb.sha256(of: bytes))",
                                  "size \(bytes.count)"], "\(ref):\(gitPath)")
                // The bytes themselves are not in git.
                let blob = try sb.gitText(["hash-object", "--", workPath])
                #expect(try sb.gitRun(["cat-file", "-e", blob]).status != 0, "the bytes of \(workPath) must not be a git object")
            }
            // `mvc/` holds mvc's objects, each named by the SHA-256 of its bytes, the commit among them.
            let objects = try sb.gitTree(ref, under: "mvc")
            #expect(!objects.isEmpty)
            for path in objects.keys {
                let bytes = try sb.gitOK(["show", "\(ref):\(path)"]).stdoutData
                #expect("mvc/" + (try sb.sha256(of: bytes)) == path, "\(ref):\(path) is named by its SHA-256")
            }
            let commitID = try sb.mvcTrailer(ref).dropFirst("commit ".count)
            #expect(objects["mvc/\(commitID)"] != nil, "\(ref) carries its mvc commit object")
        }

        let modes = try sb.gitTree("refs/mvc/artifacts/tools", under: "files").mapValues(\.mode)
        #expect(modes == ["files/tools/run.sh": "100755", "files/tools/README": "100644"])
        #expect(try sb.gitTree("refs/mvc/artifacts/iris", under: "files").values.allSatisfy { $0.mode == "100644" })
        #expect(try sb.show("tools").id == tools.id)
        #expect(try sb.mvcTrailer("refs/mvc/artifacts/tools") == "commit \(tools.id)")
        try sb.expectGitFsckClean()
    }

    @Test("mvc.lock names each path's version, .gitignore's managed block keeps the bytes out of git")
    func lockAndGitignore() throws {
        let p = try GitProject.make()
        let sb = p.sandbox

        let lock = try sb.lockEntries()
        #expect(Set(lock.keys) == ["data", "config/train.yaml", "model/model.safetensors"])
        #expect(lock["data"]?.artifact == "iris" && lock["data"]?.version == 1 && lock["data"]?.commit == p.iris.id)
        #expect(lock["data"]?.kind == "tree")
        #expect(lock["config/train.yaml"] == LockEntry(artifact: "train-config", version: 1, commit: p.config.id, kind: "file",
                                                         id: try sb.sha256(ofFile: Fixtures.path("config/train.yaml"))))
        #expect(lock["model/model.safetensors"] == LockEntry(artifact: "iris-mlp", version: 1, commit: p.model.id, kind: "file",
                                                               id: try sb.sha256(ofFile: Fixtures.path("model/model.safetensors"))))
        let ls = try sb.json([LsEntryJSON].self, ["ls", "iris-mlp@v1"])
        #expect(ls.map(\.id) == [lock["model/model.safetensors"]?.id], "the lock's id is the file's id in the version")

        let block = """
            # >>> mvc: artifact paths; their bytes live in the mvc store (managed by mvc)
            /config/train.yaml
            /data
            /model/model.safetensors
            # <<< mvc

            """
        #expect(String(decoding: try sb.read(".gitignore"), as: UTF8.self) == block)
        #expect(try sb.gitOK(["status", "--porcelain"]).stdout == "?? .gitignore\n?? mvc.lock\n",
                "git sees no artifact bytes and not the store")
        for f in ["data/iris.csv", "data/README.md", "config/train.yaml", "model/model.safetensors"] {
            try sb.gitOK(["check-ignore", "-q", "--", f])
        }

        // A new version moves the lock's entry; the block stays one block.
        let v2 = try p.commitModelV2(at: GitProject.t0 + 100)
        let moved = try sb.lockEntries()
        #expect(moved["model/model.safetensors"]?.version == 2 && moved["model/model.safetensors"]?.commit == v2.id)
        #expect(moved["data"] == lock["data"] && moved["config/train.yaml"] == lock["config/train.yaml"])
        #expect(String(decoding: try sb.read(".gitignore"), as: UTF8.self) == block)
        // `git add -A` stages only the two small files.
        try sb.gitOK(["add", "-A"])
        #expect(try sb.gitText(["diff", "--cached", "--name-only"]) == ".gitignore\nmvc.lock")

        // What the user already had in .gitignore stays.
        let other = try Sandbox()
        try other.writeGitGlobalConfig()
        try other.gitInitMain()
        try other.write(".gitignore", "*.pyc\n__pycache__/\n")
        try other.copyFixture("model/model.safetensors")
        try other.mvcOK("init")
        try other.commit("model/", "--name", "iris-mlp")
        #expect(String(decoding: try other.read(".gitignore"), as: UTF8.self) == """
            *.pyc
            __pycache__/
            # >>> mvc: artifact paths; their bytes live in the mvc store (managed by mvc)
            /model
            # <<< mvc

            """)
        #expect(try other.gitOK(["status", "--porcelain"]).stdout == "?? .gitignore\n?? mvc.lock\n")
    }

    @Test("without libgit2 inside git: changes warn and succeed, mirror and hooks say what is missing, sync catches up later")
    func withoutLibgit2() throws {
        let p = try GitProject.make()
        let sb = p.sandbox
        let before = try sb.mvcGitRefs()
        let missing = ["MVC_LIBGIT2": sb.scratch + "/no-such-libgit2.so"]

        // The store moves on; the command says the mirror was not updated, and succeeds.
        let promote = try sb.mvc(["promote", "iris-mlp@v1", "--to", "staging", "-m", "candidate"], env: missing)
        #expect(promote.status == 0, "\(promote)")
        #expect(promote.stderr.contains("warning: git mirror not updated") && promote.stderr.contains("no-such-libgit2.so"), "\(promote)")
        #expect(try sb.mvcGitRefs() == before)

        // Commands that are about git fail with the cause and what to install, not "not in git".
        let sync = try sb.mvc(["mirror", "sync"], env: missing)
        #expect(sync.status == 1 && sync.stderrLines.first?.contains("no-such-libgit2.so") == true, "\(sync)")
        #expect(sync.stderr.contains("hint:") && sync.stderr.contains("libgit2") && !sync.stderr.contains("git init"), "\(sync)")
        // A hook never stops git, but says that it did nothing.
        let hook = try sb.mvc(["hook", "pre-commit"], env: missing)
        #expect(hook.status == 0 && hook.stderr.contains("hook did nothing"), "\(hook)")

        // With libgit2 back, the mirror catches up.
        try sb.mvcOK("mirror", "sync")
        #expect(try sb.mvcGitRefs()["refs/mvc/stages/iris-mlp/staging"] != nil)
    }

    @Test("mvc mirror sync catches up after commits made with the mirror off, then does nothing")
    func syncCatchesUp() throws {
        let p = try GitProject.make()
        let sb = p.sandbox
        let before = try sb.mvcGitRefs()
        #expect(before.count == 4, "\(before)")   // three artifacts and a tag

        // With the mirror off, the store moves on and git does not.
        let off = ["MVC_MIRROR": "0"]
        let v2 = try p.commitModelV2(at: GitProject.t0 + 100, env: off)
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "staging", "-m", "candidate"], env: atTime(GitProject.t0 + 200).merging(off) { $1 })
        try sb.mvcOK(["metric", "iris-mlp@v2", "latency_p95_ms=30"], env: atTime(GitProject.t0 + 300).merging(off) { $1 })
        #expect(try sb.mvcGitRefs() == before, "nothing is mirrored with MVC_MIRROR=0")
        #expect(try sb.mvcTrailer("refs/mvc/artifacts/iris-mlp") == "commit \(p.model.id)", "the mirror is behind")

        let sync = try sb.json(MirrorReportJSON.self, ["mirror", "sync"])
        #expect(sync.commitsWritten == 3, "v2, the move and the annotation: \(sync)")
        #expect(Set(sync.refsUpdated) == ["refs/mvc/artifacts/iris-mlp", "refs/mvc/stages/iris-mlp/staging",
                                          "refs/mvc/annotations/iris-mlp/\(v2.id)"], "\(sync)")
        #expect(sync.refsUpdated.count == 3 && sync.conflicts.isEmpty, "\(sync)")
        #expect(try sb.mvcTrailer("refs/mvc/artifacts/iris-mlp") == "commit \(v2.id)")
        #expect(try sb.gitText(["rev-parse", "refs/mvc/artifacts/iris-mlp^"]) == before["refs/mvc/artifacts/iris-mlp"],
                "v2's git commit sits on v1's")
        let staging = try #require(try sb.stageState("iris-mlp", "staging"))
        #expect(try sb.mvcTrailer("refs/mvc/stages/iris-mlp/staging") == "move \(staging.move)")
        #expect(try sb.reflog("refs/mvc/stages/iris-mlp/staging").first?.contains("candidate") == true)
        let caughtUp = try sb.mvcGitRefs()

        // Idempotent: a second sync writes and moves nothing.
        #expect(try sb.json(MirrorReportJSON.self, ["mirror", "sync"]) == MirrorReportJSON(commitsWritten: 0, refsUpdated: [], conflicts: []))
        #expect(try sb.mvcOK("mirror", "sync").stdout == "mirrored: 0 git commits written, 0 refs updated\n")
        #expect(try sb.mvcGitRefs() == caughtUp)
        try sb.expectGitFsckClean()
    }

    @Test("mvc mirror sync restores a deleted or moved ref, and rebuilds the same git ids from scratch")
    func syncRepairs() throws {
        let (p, _) = try GitMirrorTests.projectWithHistory()
        let sb = p.sandbox
        let full = try sb.mvcGitRefs()

        // A deleted ref comes back, pointing where it did, without new commits.
        try sb.gitOK(["update-ref", "-d", "refs/mvc/stages/iris-mlp/production"])
        #expect(try sb.mvcGitRefs()["refs/mvc/stages/iris-mlp/production"] == nil)
        let restored = try sb.json(MirrorReportJSON.self, ["mirror", "sync"])
        #expect(restored == MirrorReportJSON(commitsWritten: 0, refsUpdated: ["refs/mvc/stages/iris-mlp/production"], conflicts: []))
        #expect(try sb.mvcGitRefs() == full)

        // A ref moved to something unrelated has diverged: sync leaves it and says so (it never
        // overwrites history it does not descend from); --force puts it back.
        try sb.gitOK(["update-ref", "refs/mvc/artifacts/iris", try #require(full["refs/mvc/artifacts/train-config"])])
        let kept = try sb.mvc(["mirror", "sync", "--json"])
        #expect(kept.status != 0 && kept.stdout.contains("refs/mvc/artifacts/iris"), "\(kept)")
        #expect(try sb.mvcGitRefs()["refs/mvc/artifacts/iris"] == full["refs/mvc/artifacts/train-config"])
        let back = try sb.json(MirrorReportJSON.self, ["mirror", "sync", "--force"])
        #expect(back.refsUpdated == ["refs/mvc/artifacts/iris"] && back.commitsWritten == 0 && back.conflicts.isEmpty, "\(back)")
        #expect(try sb.mvcGitRefs() == full)

        // Without any refs/mvc and without the translation table, sync makes the same git commits:
        // the mirror is a function of the store.
        for ref in full.keys { try sb.gitOK(["update-ref", "-d", ref]) }
        try sb.remove(".mvc/git-map")
        try sb.gitOK(["gc", "-q", "--prune=now"])
        #expect(try sb.mvcGitRefs().isEmpty)
        let rebuilt = try sb.json(MirrorReportJSON.self, ["mirror", "sync"])
        #expect(Set(rebuilt.refsUpdated) == Set(full.keys) && rebuilt.conflicts.isEmpty, "\(rebuilt)")
        #expect(rebuilt.commitsWritten > 0)
        #expect(try sb.mvcGitRefs() == full, "the same store mirrors to the same git ids")
        #expect(try sb.json(MirrorReportJSON.self, ["mirror", "sync"]) == MirrorReportJSON(commitsWritten: 0, refsUpdated: [], conflicts: []))
        try sb.expectGitFsckClean()
    }

    @Test("mirror commands outside git fail cleanly; commits outside git still work")
    func outsideGit() throws {
        let sb = try Sandbox()
        try sb.copyFixture("model/model.safetensors")
        try sb.mvcOK("init")
        let r = try sb.mvcOK("commit", "model/", "--name", "iris-mlp")
        #expect(r.stderr.isEmpty, "no mirror warning outside git: \(r)")
        try sb.mvcFails(["mirror", "sync"], mentioning: "not inside a git work tree")
        try sb.mvcFails(["hooks", "install"], mentioning: "not inside a git work tree")
        try sb.mvcFails(["hooks", "uninstall"], mentioning: "not inside a git work tree")
        try sb.mvcFails(["mirror", "import"], mentioning: "not inside a git work tree", cwd: sb.outside)
        #expect(!sb.existsAbsolute(sb.outside + "/.mvc"), "import outside git creates no store")
    }
}
