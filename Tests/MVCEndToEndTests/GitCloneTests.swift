// Sharing through git, end to end: push the code and refs/mvc to a bare repository (through the
// pre-push hook, or by hand), clone it elsewhere, fetch refs/mvc, and `mvc mirror import` there:
// the clone's store tells the same history as the original, down to the byte, and knows which
// artifact bytes it lacks.

import Foundation
import Testing

@Suite("Git mirror: push, clone, import")
struct GitCloneTests {
    /// The project with v2, promotions, a rollback and a metric; `.gitignore` and `mvc.lock`
    /// committed; a bare repository at `<root>/remote.git` as `origin`.
    static func projectWithRemote(hooks: Bool) throws -> (GitProject, remote: String) {
        let p = try GitProject.make(hooks: hooks)
        let sb = p.sandbox
        let t = GitProject.t0
        try p.commitModelV2(at: t + 100)
        try sb.mvcOK(["promote", "iris-mlp@v1", "--to", "staging", "-m", "candidate"], env: atTime(t + 200))
        try sb.mvcOK(["promote", "iris-mlp@v1", "--to", "production", "-m", "launch day"], env: atTime(t + 300))
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "production", "-m", "better accuracy"], env: atTime(t + 400))
        try sb.mvcOK(["rollback", "iris-mlp", "--stage", "production", "-m", "latency regression"], env: atTime(t + 500))
        try sb.mvcOK(["metric", "iris-mlp@v1", "latency_p95_ms=35", "-m", "load test"], env: atTime(t + 600))
        try sb.gitCommitPaths([".gitignore", "mvc.lock"], message: "artifacts")
        let remote = sb.root + "/remote.git"
        try sb.gitOK(["init", "-q", "--bare", remote], cwd: sb.root)
        try sb.gitOK(["remote", "add", "origin", remote])
        return (p, remote)
    }

    /// Every command whose output the clone must reproduce exactly.
    static let sameOutput: [[String]] = [
        ["stages"], ["stages", "--json"], ["stages", "iris-mlp"],
        ["history", "iris-mlp"], ["history", "iris-mlp", "--json"],
        ["history", "iris-mlp", "--stage", "production"], ["history", "iris-mlp", "--stage", "production", "--json"],
        ["log", "iris-mlp"], ["log", "iris-mlp", "--json"], ["log", "iris", "--json"], ["log", "train-config", "--json"],
        ["artifacts"], ["artifacts", "--json"],
        ["show", "iris-mlp@v1", "--json"], ["show", "iris-mlp@v2", "--json"], ["show", "iris@v1", "--json"],
        ["show", "train-config@v1", "--json"], ["show", "iris-mlp@v2"],
        ["ls", "iris@v1", "--json"], ["lineage", "iris-mlp@v2"],
    ]

    /// Clones `remote` to `<root>/clone`, fetches refs/mvc, imports, and checks that the clone
    /// tells the same story as the work tree. Returns the clone's path.
    static func cloneAndImport(_ p: GitProject, remote: String) throws -> String {
        let sb = p.sandbox
        let clone = sb.root + "/clone"
        try sb.gitOK(["clone", "-q", remote, clone], cwd: sb.root)
        #expect(try sb.mvcGitRefs(in: clone).isEmpty, "git clone does not fetch refs/mvc by itself")
        #expect(!sb.existsAbsolute(clone + "/.mvc"))
        try sb.gitOK(["fetch", "-q", "origin", "refs/mvc/*:refs/mvc/*"], cwd: clone)
        let refs = try sb.mvcGitRefs()
        #expect(try sb.mvcGitRefs(in: clone) == refs, "the clone has every refs/mvc ref, at the same commits")

        let imported = try sb.json(ImportReportJSON.self, ["mirror", "import"], cwd: clone)
        #expect(sb.existsAbsolute(clone + "/.mvc"), "import creates the store at the clone's root")
        #expect(imported.objectsImported > 0 && imported.conflicts.isEmpty, "\(imported)")
        #expect(Set(imported.refsSet) == Set(refs.keys.map { "refs/" + $0.dropFirst("refs/mvc/".count) }), "\(imported)")

        for args in sameOutput {
            let here = try sb.mvcOK(args)
            let there = try sb.mvcOK(args, cwd: clone)
            #expect(there.stdout == here.stdout, "`mvc \(args.joined(separator: " "))` differs in the clone:\n\(there.stdout)\n--- original:\n\(here.stdout)")
            #expect(!here.stdout.isEmpty)
        }

        // The bytes are not in git: checkout names what is missing, and writes nothing.
        let out = sb.scratch + "/from-clone"
        let model = try sb.mvcFails(["checkout", "iris-mlp@v1", "-o", out], mentioning: "not in this store", cwd: clone)
        let modelHash = try sb.sha256(ofFile: Fixtures.path("model/model.safetensors"))
        #expect(model.stderr.contains("'model/model.safetensors' (\(modelHash.prefix(12)))"), "\(model)")
        let data = try sb.mvcFails(["checkout", "iris@v1", "-o", out], mentioning: "not in this store", cwd: clone)
        for f in ["data/iris.csv", "data/README.md"] {
            #expect(data.stderr.contains("'\(f)' (\(try sb.sha256(ofFile: Fixtures.path(f)).prefix(12)))"), "\(data)")
        }
        #expect(sb.files(under: out).isEmpty, "a refused checkout writes no file")

        // Right after import, the mirror is already in step, and importing again does nothing.
        #expect(try sb.json(MirrorReportJSON.self, ["mirror", "sync"], cwd: clone)
                == MirrorReportJSON(commitsWritten: 0, refsUpdated: [], conflicts: []))
        #expect(try sb.json(ImportReportJSON.self, ["mirror", "import"], cwd: clone)
                == ImportReportJSON(objectsImported: 0, refsSet: [], conflicts: []))
        #expect(try sb.mvcGitRefs(in: clone) == refs)
        #expect(try sb.gitOK(["status", "--porcelain"], cwd: clone).stdout.isEmpty, "the store is not git's business")
        try sb.expectGitFsckClean(in: clone)
        return clone
    }

    @Test("with hooks installed, 'git push origin main' carries refs/mvc; a clone imports the same history")
    func pushThroughHook() throws {
        let (p, remote) = try GitCloneTests.projectWithRemote(hooks: true)
        let sb = p.sandbox
        let refs = try sb.mvcGitRefs()
        #expect(refs.count == 8, "\(refs.keys.sorted())")

        let push = try sb.gitOK(["push", "origin", "main"])
        #expect(push.stderr.contains("mvc: pushed 8 refs under refs/mvc/ to 'origin'"), "\(push)")
        #expect(try sb.mvcGitRefs(in: remote) == refs, "the bare repository has every refs/mvc ref")
        #expect(try sb.gitText(["rev-parse", "main"], cwd: remote) == (try sb.gitText(["rev-parse", "HEAD"])))
        try sb.expectGitFsckClean(in: remote)

        let clone = try GitCloneTests.cloneAndImport(p, remote: remote)

        // Hooks in the clone: switching branches there cannot restore bytes it lacks, and says so,
        // but never stops git.
        try sb.mvcOK(["hooks", "install"], cwd: clone)
        let sw = try sb.gitOK(["checkout", "-b", "try"], cwd: clone)
        #expect(sw.stderr.contains("could not restore iris-mlp@v2") && sw.stderr.contains("not in this store"), "\(sw)")
        #expect(!sb.existsAbsolute(clone + "/model/model.safetensors"))

        // A later push from the original sends the new refs too.
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "staging", "-m", "next"], env: atTime(GitProject.t0 + 700))
        try sb.write("train.py", "print('training v2')\n")
        try sb.gitCommitPaths(["train.py"], message: "more code")
        try sb.gitOK(["push", "origin", "main"])
        #expect(try sb.mvcGitRefs(in: remote) == (try sb.mvcGitRefs()))

        // When the remote refuses refs/mvc (here: someone moved one there), the code push goes on.
        let mirrored = try sb.mvcGitRefs()
        try sb.gitOK(["update-ref", "refs/mvc/artifacts/iris", try #require(mirrored["refs/mvc/artifacts/train-config"])], cwd: remote)
        try sb.mvcOK(["metric", "iris-mlp@v2", "f1=0.9"], env: atTime(GitProject.t0 + 800))
        try sb.write("train.py", "print('training v3')\n")
        let head = try sb.gitCommitPaths(["train.py"], message: "even more code")
        let partial = try sb.gitOK(["push", "origin", "main"])
        #expect(partial.stderr.contains("pushing refs/mvc/ to 'origin' failed") && partial.stderr.contains("git push origin 'refs/mvc/*:refs/mvc/*'"),
                "\(partial)")
        #expect(try sb.gitText(["rev-parse", "main"], cwd: remote) == head, "the code was pushed")
    }

    @Test("without hooks, refs/mvc travel by an explicit refspec; a clone imports the same history")
    func pushByRefspec() throws {
        let (p, remote) = try GitCloneTests.projectWithRemote(hooks: false)
        let sb = p.sandbox
        try sb.gitOK(["push", "-q", "origin", "main"])
        #expect(try sb.mvcGitRefs(in: remote).isEmpty, "without the hook only the code is pushed")
        try sb.gitOK(["push", "-q", "origin", "refs/mvc/*:refs/mvc/*"])
        #expect(try sb.mvcGitRefs(in: remote) == (try sb.mvcGitRefs()))
        _ = try GitCloneTests.cloneAndImport(p, remote: remote)
    }

    @Test("a later fetch and import bring the teammate's new promotions; sync never rewinds fetched refs")
    func laterFetchAndImport() throws {
        let (p, remote) = try GitCloneTests.projectWithRemote(hooks: false)
        let sb = p.sandbox
        try sb.gitOK(["push", "-q", "origin", "main", "refs/mvc/*:refs/mvc/*"])
        let clone = try GitCloneTests.cloneAndImport(p, remote: remote)

        // The teammate promotes v2 to production (archiving v1) and pushes.
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "production", "-m", "fixed latency"], env: atTime(GitProject.t0 + 700))
        try sb.gitOK(["push", "-q", "origin", "refs/mvc/*:refs/mvc/*"])
        let refs = try sb.mvcGitRefs()

        // Fetched refs are newer than the clone's store: a sync must not move them back.
        try sb.gitOK(["fetch", "-q", "origin", "refs/mvc/*:refs/mvc/*"], cwd: clone)
        #expect(try sb.mvcGitRefs(in: clone) == refs)
        _ = try sb.mvc(["mirror", "sync"], cwd: clone)
        #expect(try sb.mvcGitRefs(in: clone) == refs, "mvc mirror sync must not rewind refs/mvc fetched from the remote")

        // Importing again brings the clone's store up to date (the local refs are ancestors).
        try sb.gitOK(["fetch", "-q", "origin", "+refs/mvc/*:refs/mvc/*"], cwd: clone)
        let again = try sb.json(ImportReportJSON.self, ["mirror", "import"], cwd: clone)
        #expect(again.conflicts.isEmpty, "the clone's refs are behind, not diverged: \(again)")
        for args in [["stages", "--json"], ["history", "iris-mlp", "--json"], ["stages"]] {
            #expect(try sb.mvcOK(args, cwd: clone).stdout == (try sb.mvcOK(args).stdout),
                    "`mvc \(args.joined(separator: " "))` after the second import")
        }
        #expect(try sb.json(MirrorReportJSON.self, ["mirror", "sync"], cwd: clone).refsUpdated.isEmpty)
        #expect(try sb.mvcGitRefs(in: clone) == refs)
    }
}
