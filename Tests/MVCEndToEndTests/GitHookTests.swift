// The git hooks, end to end, driven by git itself: installing next to other tools' hooks,
// branch switches and merges that swap the artifacts on disk, pre-commit refusing what belongs in
// mvc, and hooks that never get in git's way (during a rebase, outside an mvc repository, when mvc
// is gone).

import Foundation
import Testing

@Suite("Git hooks: install, restore on checkout and merge, pre-commit")
struct GitHookTests {
    static let foreignHook = "#!/bin/sh\n# written by another tool\necho 'lint: ok'\nexit 0\n"

    @Test("install writes four hooks once, never over another tool's hook; uninstall removes only mvc's")
    func installAndUninstall() throws {
        let p = try GitProject.make()
        let sb = p.sandbox
        let hooks = sb.path(".git/hooks")

        let first = try sb.mvcOK("hooks", "install")
        #expect(first.stdout == mvcHookNames.map { "installed \($0)\n" }.joined(), "\(first)")
        for name in mvcHookNames {
            let text = String(decoding: try sb.readAbsolute(hooks + "/" + name), as: UTF8.self)
            #expect(text.hasPrefix("#!/bin/sh\n") && text.contains("installed by mvc") && text.contains("hook \(name) \"$@\""), "\(name):\n\(text)")
            #expect(sb.mode(ofAbsolute: hooks + "/" + name) & 0o111 == 0o111, "\(name) is executable")
        }
        let second = try sb.mvcOK("hooks", "install")
        #expect(second.stdout == mvcHookNames.map { "\($0) already installed\n" }.joined(), "\(second)")
        #expect(try sb.json(HookInstallJSON.self, ["hooks", "install"]) == HookInstallJSON(installed: [], alreadyInstalled: mvcHookNames, skipped: []))

        #expect(try sb.mvcOK("hooks", "uninstall").stdout == "removed post-checkout, post-merge, pre-commit, pre-push\n")
        for name in mvcHookNames { #expect(!sb.existsAbsolute(hooks + "/" + name), "\(name) removed") }
        #expect(try sb.mvcOK("hooks", "uninstall").stdout == "no mvc hooks installed\n")

        // Another tool's pre-commit is left alone, and the output says how to chain mvc into it.
        try sb.writeAbsolute(hooks + "/pre-commit", Data(GitHookTests.foreignHook.utf8), mode: 0o755)
        let beside = try sb.mvcOK("hooks", "install")
        #expect(beside.stdoutLines == ["installed post-checkout", "installed post-merge", "installed pre-push",
                                       "skipped pre-commit: another tool's hook is there; to chain mvc, add this line to it: mvc hook pre-commit \"$@\""],
                "\(beside)")
        #expect(String(decoding: try sb.readAbsolute(hooks + "/pre-commit"), as: UTF8.self) == GitHookTests.foreignHook)
        #expect(try sb.json(HookInstallJSON.self, ["hooks", "install"])
                == HookInstallJSON(installed: [], alreadyInstalled: ["post-checkout", "post-merge", "pre-push"], skipped: ["pre-commit"]))
        // git runs the other tool's hook as before.
        try sb.write("notes.txt", "a note\n")
        try sb.gitOK(["add", "notes.txt"])
        let commit = try sb.gitOK(["commit", "-q", "-m", "notes"])
        #expect((commit.stdout + commit.stderr).contains("lint: ok"), "\(commit)")

        #expect(try sb.mvcOK("hooks", "uninstall").stdout == "removed post-checkout, post-merge, pre-push\n")
        #expect(String(decoding: try sb.readAbsolute(hooks + "/pre-commit"), as: UTF8.self) == GitHookTests.foreignHook,
                "uninstall never removes another tool's hook")
        for name in ["post-checkout", "post-merge", "pre-push"] { #expect(!sb.existsAbsolute(hooks + "/" + name)) }
    }

    @Test("switching branches swaps the artifacts to what each branch's mvc.lock names; merging too")
    func branchSwitchAndMerge() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        let lockPath = "model/model.safetensors"

        // Branch exp uses iris-mlp@v2.
        let toExp = try sb.gitOK(["checkout", "-q", "-b", "exp"])
        #expect(!toExp.stderr.contains("restored"), "nothing to restore on a new branch at the same commit: \(toExp)")
        let v2 = try p.commitModelV2(at: GitProject.t0 + 100)
        try sb.gitCommitPaths(["mvc.lock"], message: "use v2")
        #expect(try parseLock(try sb.gitText(["show", "main:mvc.lock"]))[lockPath]?.commit == p.model.id)
        #expect(try parseLock(try sb.gitText(["show", "exp:mvc.lock"]))[lockPath]?.commit == v2.id)

        let toMain = try sb.gitOK(["checkout", "-q", "main"])
        try p.expectModel("model/model.safetensors", "main's mvc.lock names v1")
        #expect(toMain.stderr.contains("iris-mlp@v1") && toMain.stderr.contains("1 file restored"), "\(toMain)")
        #expect(try sb.lockEntries()[lockPath]?.version == 1)
        #expect(try sb.gitOK(["status", "--porcelain"]).stdout.isEmpty, "the restore leaves git's view clean")

        try sb.gitOK(["checkout", "-q", "exp"])
        try p.expectModel("model/model-v2.safetensors", "exp's mvc.lock names v2")
        #expect(try sb.lockEntries()[lockPath]?.version == 2)
        try sb.gitOK(["checkout", "-q", "main"])
        try p.expectModel("model/model.safetensors", "back on main")
        for f in ["data/iris.csv", "data/README.md", "config/train.yaml"] {
            #expect(try sb.read(f) == Fixtures.data(f), "\(f) untouched by the switches")
        }

        // A file checkout (flag 0) is not a branch switch: the hook does nothing.
        try sb.remove(lockPath)
        try sb.write("train.py", "print('scratch edit')\n")
        let fileCheckout = try sb.gitOK(["checkout", "--", "train.py"])
        #expect(fileCheckout.stderr.isEmpty, "\(fileCheckout)")
        #expect(!sb.exists(lockPath), "a file checkout restores no artifact")
        try sb.mvcOK("checkout", "iris-mlp@v1")
        try p.expectModel("model/model.safetensors", "restored by hand")

        // post-merge: main gains a code commit, then merges exp, whose mvc.lock names v2.
        try sb.write("train.py", "print('training, main')\n")
        try sb.gitCommitPaths(["train.py"], message: "code on main")
        let merge = try sb.gitOK(["merge", "--no-edit", "exp"])
        #expect(merge.stderr.contains("iris-mlp@v2"), "\(merge)")
        try p.expectModel("model/model-v2.safetensors", "the merged mvc.lock names v2")
        #expect(try sb.lockEntries()[lockPath]?.commit == v2.id)
        #expect(try sb.gitText(["rev-list", "--count", "--merges", "HEAD"]) == "1", "a true merge")

        // A fast-forward merge restores as well.
        try sb.gitOK(["checkout", "-q", "-b", "old", "main~2"])
        try p.expectModel("model/model.safetensors", "main~2's mvc.lock names v1")
        try sb.gitOK(["merge", "-q", "--ff-only", "exp"])
        try p.expectModel("model/model-v2.safetensors", "fast-forwarded to exp")
        #expect(try sb.gitOK(["status", "--porcelain"]).stdout.isEmpty)
    }

    @Test("pre-commit refuses large files, mvc-tracked paths and an mvc.lock naming unknown versions; code commits pass")
    func preCommitRefusals() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        let head = try sb.gitText(["rev-parse", "HEAD"])
        func refused(_ args: [String], _ needles: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try sb.gitRun(args)
            #expect(r.status != 0, "git commit should be refused: \(r)", sourceLocation: sourceLocation)
            #expect(r.stderr.contains("mvc refuses this git commit"), "\(r)", sourceLocation: sourceLocation)
            for n in needles { #expect(r.stderr.contains(n), "stderr should say '\(n)': \(r)", sourceLocation: sourceLocation) }
            #expect(try sb.gitText(["rev-parse", "HEAD"]) == head, "nothing committed", sourceLocation: sourceLocation)
        }

        // A file over 10 MiB: the message says to store it with mvc commit.
        try sb.write("weights.bin", Data(repeating: 0x5a, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"])
        try refused(["commit", "-q", "-m", "big"], ["'weights.bin' is 10 MiB", "mvc commit"])
        try sb.gitOK(["rm", "-q", "--cached", "weights.bin"])
        try sb.remove("weights.bin")

        // Files under paths mvc tracks, forced past .gitignore.
        try sb.gitOK(["add", "-f", "model/model.safetensors"])
        try refused(["commit", "-q", "-m", "model"], ["'model/model.safetensors' is tracked by mvc as part of iris-mlp", "mvc commit"])
        try sb.gitOK(["rm", "-q", "--cached", "model/model.safetensors"])
        try sb.gitOK(["add", "-f", "data/iris.csv"])
        try refused(["commit", "-q", "-m", "data"], ["'data/iris.csv' is tracked by mvc as part of iris"])
        try sb.gitOK(["rm", "-q", "--cached", "data/iris.csv"])

        // An mvc.lock naming a commit the store does not have.
        let original = try sb.read("mvc.lock")
        let unknown = String(repeating: "ab", count: 32)
        let edited = String(decoding: original, as: UTF8.self).replacingOccurrences(of: p.model.id, with: unknown)
        #expect(edited != String(decoding: original, as: UTF8.self))
        try sb.write("mvc.lock", edited)
        try sb.gitOK(["add", "mvc.lock"])
        try refused(["commit", "-q", "-m", "lock"], ["mvc.lock names iris-mlp@v1", "not in the mvc store"])
        // An mvc.lock that does not parse is refused too, and the message does not claim otherwise.
        try sb.write("mvc.lock", "version: 1\npaths: [not, a, mapping\n")
        try sb.gitOK(["add", "mvc.lock"])
        let bad = try sb.gitRun(["commit", "-q", "-m", "lock"])
        #expect(bad.status != 0 && bad.stderr.contains("invalid 'mvc.lock'"), "\(bad)")
        #expect(!bad.stderr.contains("git goes on"), "git does not go on: the commit is refused, so the hook must not say it does: \(bad)")
        #expect(try sb.gitText(["rev-parse", "HEAD"]) == head, "nothing committed")
        try sb.gitOK(["reset", "-q", "--", "mvc.lock"])
        // ... but a broken mvc.lock that is not staged is not this commit's business.
        try sb.write("train.py", "print('training, while mvc.lock is being edited')\n")
        try sb.gitOK(["add", "train.py"])
        let unstaged = try sb.gitRun(["commit", "-q", "-m", "code only"])
        #expect(unstaged.status == 0, "only a staged mvc.lock that does not parse refuses the commit: \(unstaged)")
        try sb.gitOK(["checkout", "-q", "HEAD", "--", "train.py"])
        try sb.write("mvc.lock", original)
        #expect(try sb.gitOK(["status", "--porcelain"]).stdout.isEmpty)

        // Ordinary work goes through: a code change, and an mvc.lock naming a version the store has.
        try sb.write("train.py", "print('training, tuned')\n")
        let code = try sb.gitOK(["commit", "-q", "-am", "tune"])
        #expect(code.stderr.isEmpty, "\(code)")
        let v2 = try p.commitModelV2(at: GitProject.t0 + 100)
        try sb.gitCommitPaths(["mvc.lock"], message: "use v2")
        #expect(try parseLock(try sb.gitText(["show", "HEAD:mvc.lock"]))["model/model.safetensors"]?.commit == v2.id)
        // A file of exactly 10 MiB is not "large".
        try sb.write("ten.bin", Data(repeating: 0x5a, count: 10 << 20))
        try sb.gitCommitPaths(["ten.bin"], message: "ten MiB")
    }

    @Test("hooks do nothing during a rebase")
    func quietDuringRebase() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        let hooks = sb.path(".git/hooks")
        try FileManager.default.createDirectory(atPath: sb.path(".git/rebase-merge"), withIntermediateDirectories: true)

        try sb.write("weights.bin", Data(repeating: 1, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"])
        let pre = try Spawn.run(hooks + "/pre-commit", [], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        #expect(pre.status == 0 && pre.stdout.isEmpty && pre.stderr.isEmpty, "\(pre)")

        try sb.remove("model/model.safetensors")
        let head = try sb.gitText(["rev-parse", "HEAD"])
        let post = try Spawn.run(hooks + "/post-checkout", [head, head, "1"], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        #expect(post.status == 0 && post.stdout.isEmpty && post.stderr.isEmpty, "\(post)")
        #expect(!sb.exists("model/model.safetensors"), "no restore during a rebase")
        let merge = try Spawn.run(hooks + "/post-merge", ["0"], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        #expect(merge.status == 0 && merge.stdout.isEmpty && merge.stderr.isEmpty, "\(merge)")
        #expect(!sb.exists("model/model.safetensors"), "no restore during a rebase")

        // Once the rebase is over, the same hooks act again.
        try FileManager.default.removeItem(atPath: sb.path(".git/rebase-merge"))
        let again = try Spawn.run(hooks + "/post-checkout", [head, head, "1"], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        #expect(again.status == 0 && again.stderr.contains("restored"), "\(again)")
        try p.expectModel("model/model.safetensors", "restored once the rebase is over")
        let refuse = try Spawn.run(hooks + "/pre-commit", [], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        #expect(refuse.status != 0 && refuse.stderr.contains("mvc refuses this git commit"), "\(refuse)")
    }

    @Test("outside an mvc repository the hooks exit 0 and block nothing")
    func outsideMVC() throws {
        let p = try GitProject.make(hooks: true)
        let sb = p.sandbox
        let plain = sb.root + "/plain"
        try sb.gitInitMain(plain)
        for name in mvcHookNames {
            try sb.writeAbsolute(plain + "/.git/hooks/" + name, try sb.read(".git/hooks/" + name), mode: 0o755)
        }
        try sb.writeAbsolute(plain + "/weights.bin", Data(repeating: 7, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"], cwd: plain)
        let commit = try sb.gitOK(["commit", "-q", "-m", "big file, no mvc here"], cwd: plain)
        #expect(commit.stderr.isEmpty, "\(commit)")
        #expect(try sb.gitText(["ls-files"], cwd: plain) == "weights.bin")

        let branch = try sb.gitOK(["checkout", "-q", "-b", "other"], cwd: plain)
        #expect(branch.stderr.isEmpty, "\(branch)")
        for (name, args) in [("pre-commit", [String]()), ("post-checkout", ["0", "0", "1"]), ("post-merge", ["0"])] {
            let r = try Spawn.run(plain + "/.git/hooks/" + name, args, cwd: plain, environment: sb.gitEnvironment(), scratch: sb.scratch)
            #expect(r.status == 0 && r.stderr.isEmpty, "\(name): \(r)")
        }
        let remote = sb.root + "/plain-remote.git"
        try sb.gitOK(["init", "-q", "--bare", remote], cwd: sb.root)
        let push = try sb.gitOK(["push", "-q", remote, "other"], cwd: plain)
        #expect(push.stderr.isEmpty, "\(push)")
        #expect(try sb.mvcGitRefs(in: remote).isEmpty)
        #expect(!sb.existsAbsolute(plain + "/.mvc"), "hooks never create a store")
    }

    @Test("when mvc is missing the hooks say so and let git go on; reinstalling repairs them")
    func mvcMissing() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        try sb.pointHooksAtMissingBinary()
        let noMVC = ["PATH": pathWithoutMVC()]

        try sb.write("weights.bin", Data(repeating: 3, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"], env: noMVC)
        let commit = try sb.gitOK(["commit", "-q", "-m", "mvc is gone"], env: noMVC)
        #expect(commit.stderr.contains("mvc hook: mvc not found, skipping"), "\(commit)")
        let branch = try sb.gitOK(["checkout", "-q", "-b", "other"], env: noMVC)
        #expect(branch.stderr.contains("mvc not found, skipping"), "\(branch)")
        try sb.gitOK(["rm", "-q", "weights.bin"], env: noMVC)
        try sb.gitOK(["commit", "-q", "-m", "drop it"], env: noMVC)

        // mvc's own hooks (marked as such) are rewritten by a new install, and work again.
        let reinstall = try sb.mvcOK("hooks", "install")
        #expect(reinstall.stdout == mvcHookNames.map { "installed \($0)\n" }.joined(), "\(reinstall)")
        try sb.write("weights.bin", Data(repeating: 3, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"])
        let refused = try sb.gitRun(["commit", "-q", "-m", "again"])
        #expect(refused.status != 0 && refused.stderr.contains("mvc refuses this git commit"), "\(refused)")
    }

    @Test("a branch switch never overwrites artifact edits that are not in the store")
    func switchKeepsUnsavedArtifactEdits() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        try sb.gitOK(["checkout", "-q", "-b", "exp"])
        try p.commitModelV2(at: GitProject.t0 + 100)
        try sb.gitCommitPaths(["mvc.lock"], message: "use v2")
        try sb.gitOK(["checkout", "-q", "main"])
        try p.expectModel("model/model.safetensors", "main names v1")

        let wip = Data("weights still training\n".utf8)
        try sb.write("model/model.safetensors", wip)
        let sw = try sb.gitOK(["checkout", "-q", "exp"])
        #expect(try sb.read("model/model.safetensors") == wip, "unsaved bytes are kept: \(sw)")
        #expect(sw.stderr.contains("could not restore iris-mlp@v2"), "the hook says why it left the file: \(sw)")
        #expect(try sb.gitText(["rev-parse", "--abbrev-ref", "HEAD"]) == "exp", "git switched anyway")
    }

    @Test("pre-commit judges the staged bytes: a large file staged then deleted from the work tree is refused")
    func preCommitLargeStagedFileDeletedFromWorkTree() throws {
        let p = try GitProject.make(hooks: true, lockCommitted: true)
        let sb = p.sandbox
        let head = try sb.gitText(["rev-parse", "HEAD"])
        try sb.write("weights.bin", Data(repeating: 0x5a, count: largeFileBytes))
        try sb.gitOK(["add", "weights.bin"])
        try sb.remove("weights.bin")
        let r = try sb.gitRun(["commit", "-q", "-m", "big"])
        #expect(r.status != 0 && r.stderr.contains("'weights.bin' is 10 MiB"), "the staged blob is over 10 MiB: \(r)")
        #expect(try sb.gitText(["rev-parse", "HEAD"]) == head, "nothing committed")
    }

    @Test("hooks go where git looks for them: core.hooksPath is honoured")
    func honoursHooksPath() throws {
        let p = try GitProject.make(lockCommitted: true)
        let sb = p.sandbox
        try sb.gitOK(["config", "core.hooksPath", ".githooks"])
        try sb.mvcOK("hooks", "install")
        let head = try sb.gitText(["rev-parse", "HEAD"])
        try sb.gitOK(["add", "-f", "model/model.safetensors"])
        let r = try sb.gitRun(["commit", "-q", "-m", "forced"])
        #expect(r.status != 0 && r.stderr.contains("mvc refuses this git commit"),
                "the pre-commit mvc installed runs from core.hooksPath: \(r)")
        #expect(try sb.gitText(["rev-parse", "HEAD"]) == head, "nothing committed")
    }

    @Test("with the store in a subdirectory of the git work tree, the hooks still guard and restore it")
    func storeInSubdirectory() throws {
        let sb = try Sandbox()
        try sb.writeGitGlobalConfig()
        try sb.gitInitMain()
        try sb.write("train.py", "print('training')\n")
        try sb.gitCommitPaths(["train.py"], message: "code")
        let ml = sb.path("ml")
        try sb.copyFixture("model/model.safetensors", to: "ml/model/model.safetensors")
        try sb.mvcOK(["init"], cwd: ml)
        try sb.mvcOK(["hooks", "install"], cwd: ml)
        #expect(sb.exists(".git/hooks/pre-commit"), "hooks go to the enclosing git repository")
        let model = try #require(CommitLine(try sb.mvcOK(["commit", "model/", "--name", "iris-mlp"], cwd: ml).stdout))
        #expect(try sb.mvcTrailer("refs/mvc/artifacts/iris-mlp") == "commit \(model.id)", "the mirror works from a subdirectory")
        #expect(try sb.gitOK(["status", "--porcelain"]).stdout == "?? ml/\n")
        try sb.gitCommitPaths(["ml/.gitignore", "ml/mvc.lock"], message: "artifacts")
        let head = try sb.gitText(["rev-parse", "HEAD"])

        try sb.gitOK(["add", "-f", "ml/model/model.safetensors"])
        let forced = try sb.gitRun(["commit", "-q", "-m", "forced"])
        #expect(forced.status != 0 && forced.stderr.contains("'ml/model/model.safetensors' is tracked by mvc as part of iris-mlp"), "\(forced)")
        #expect(try sb.gitText(["rev-parse", "HEAD"]) == head, "nothing committed")
        if forced.status == 0 { try sb.gitOK(["reset", "-q", head]) } else { try sb.gitOK(["rm", "-q", "--cached", "ml/model/model.safetensors"]) }

        try sb.remove("ml/model/model.safetensors")
        let sw = try sb.gitOK(["checkout", "-q", "-b", "other"])
        #expect(sb.exists("ml/model/model.safetensors"), "post-checkout restores what ml/mvc.lock names: \(sw)")
    }

    @Test("hooks work whatever the path of the mvc binary, quotes included")
    func binaryPathWithQuote() throws {
        let p = try GitProject.make(lockCommitted: true)
        let sb = p.sandbox
        let dir = sb.root + "/it's \"tools\" $HOME"
        let copy = dir + "/mvc"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Copied by a child process: a copy written by this (multi-threaded) process could still be
        // open in another test's child at exec time (ETXTBSY).
        try #require(try sb.run("cp", ["--", try MVCBinary.path(), copy]).status == 0)
        let install = try Spawn.run(copy, ["hooks", "install"], cwd: sb.work, environment: sb.gitEnvironment(), scratch: sb.scratch)
        try #require(install.status == 0, "\(install)")

        try sb.write("notes.txt", "a note\n")
        try sb.gitOK(["add", "notes.txt"])
        let commit = try sb.gitRun(["commit", "-q", "-m", "notes"])
        #expect(commit.status == 0 && commit.stderr.isEmpty, "the hook must run the binary it was installed from: \(commit)")
        try sb.gitOK(["add", "-f", "model/model.safetensors"])
        let forced = try sb.gitRun(["commit", "-q", "-m", "forced"])
        #expect(forced.status != 0 && forced.stderr.contains("mvc refuses this git commit"), "\(forced)")
    }
}
