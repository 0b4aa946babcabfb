// Remotes, end to end: two stores on one machine exchange artifacts through a directory remote and
// through S3 (a local moto server); pushes send only what the remote lacks.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Store A of the exchange tests: a dataset, a config and a model made from both (a small file
/// plus 16 MiB of weights), promoted through staging to production.
private struct RemoteProducer {
    static let weightsMiB = 16
    let sandbox: Sandbox
    let model: CommitLine

    static func make() throws -> RemoteProducer {
        let sb = try Sandbox()
        try sb.copyFixture("data/iris.csv")
        try sb.copyFixture("data/README.md")
        try sb.copyFixture("config/train.yaml")
        try sb.copyFixture("model/model.safetensors")
        try RemoteFiles.writeNoise(sb.path("model/weights.bin"), mib: weightsMiB, seed: 0x5EED_0001)
        try sb.mvcOK("init")
        try sb.commit("data/", "--name", "iris", "--kind", "dataset", "--version", "1.0.0", "-m", "150 rows")
        try sb.commit("config/train.yaml", "--name", "train-config", "--kind", "config")
        let model = try sb.commit("model/", "--name", "iris-mlp", "--kind", "model",
                                  "--input", "iris@v1", "--input", "train-config@v1",
                                  "--param", "lr=0.01", "--metric", "accuracy=0.93", "-m", "first model")
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging", "-m", "candidate")
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production", "-m", "launch")
        return RemoteProducer(sandbox: sb, model: model)
    }

    static let modelFiles = ["model/model.safetensors", "model/weights.bin"]

    /// Rewrites 1 MiB in the middle of the weights and commits `iris-mlp@v2`.
    func commitV2() throws -> CommitLine {
        try RemoteFiles.writeNoise(sandbox.path("model/weights.bin"), blocks: [RemoteProducer.weightsMiB / 2], seed: 0x5EED_0002, create: false)
        return try sandbox.commit("model/", "--name", "iris-mlp", "--input", "iris@v1", "--input", "train-config@v1", "-m", "retrained")
    }
}

/// The outputs that must read the same in both stores.
private func expectSameViews(_ a: Sandbox, _ b: Sandbox, env: [String: String] = [:],
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
    for args in [["stages"], ["history", "iris-mlp"], ["log", "iris-mlp"], ["stages", "--json"], ["history", "iris-mlp", "--json"],
                 ["log", "iris-mlp", "--json"], ["show", "iris-mlp@production", "--json"]] {
        let inA = try a.mvcOK(args, env: env, sourceLocation: sourceLocation).stdout
        let inB = try b.mvcOK(args, env: env, sourceLocation: sourceLocation).stdout
        #expect(!inA.isEmpty && inA == inB, "`mvc \(args.joined(separator: " "))` differs:\n--- A:\n\(inA)--- B:\n\(inB)",
                sourceLocation: sourceLocation)
    }
}

@Suite("Remotes: two stores exchange artifacts")
struct RemoteExchangeTests {
    @Test("through a directory remote: pull is byte-identical with the same stages, history and log; pushes send only what is new")
    func directoryRemote() throws {
        let producer = try RemoteProducer.make()
        let a = producer.sandbox
        let remote = a.root + "/remote"
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)
        #expect(try a.mvcOK("remote", "add", "origin", remote).stdout == "added remote origin \(remote)\n")
        #expect(try a.mvcOK("remote", "list").stdout.contains("origin"))

        let first = try a.remoteJSON(RemotePushJSON.self, ["push"])
        #expect(first.remote == "origin")
        #expect(first.objectsSent > 0 && first.packsSent >= 1)
        #expect(first.bytesSent >= UInt64(RemoteProducer.weightsMiB) << 20)
        #expect(first.rejected.isEmpty)
        #expect(Set(first.refsUpdated).isSuperset(of: ["refs/artifacts/iris", "refs/artifacts/train-config", "refs/artifacts/iris-mlp",
                                                       "refs/stages/iris-mlp/staging", "refs/stages/iris-mlp/production"]))
        #expect(RemoteFiles.names(in: remote).contains("mvc-remote"))
        #expect(!RemoteStoreFiles.indexes(in: remote + "/packs").isEmpty)

        // Store B, elsewhere, pulls the production model through a file:// URL.
        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK("remote", "add", "origin", "file://" + remote)
        let pulled = try b.mvcOK("pull", "origin", "iris-mlp@production")
        #expect(pulled.stdout.contains("iris-mlp@v1 -> "), "\(pulled)")
        for f in RemoteProducer.modelFiles {
            #expect(try b.sha256(ofFile: b.path(f)) == a.sha256(ofFile: a.path(f)), "\(f) should arrive byte-identical")
        }
        try expectSameViews(a, b)
        #expect(try b.mvc("fsck").status == 0)

        // Nothing new: nothing sent.
        let again = try a.remoteJSON(RemotePushJSON.self, ["push"])
        #expect(again.objectsSent == 0 && again.bytesSent == 0 && again.packsSent == 0 && again.refsUpdated.isEmpty)
        #expect(try a.mvcOK("push").stdout == "pushed to origin: 0 objects (0 B) in 0 packs, 0 refs updated\n")

        // v2 shares all but 1 MiB of the 16 MiB of weights: the push sends a small part of it.
        let v2 = try producer.commitV2()
        #expect(v2.version == 2)
        let weightsBytes = UInt64(RemoteProducer.weightsMiB) << 20
        let third = try a.remoteJSON(RemotePushJSON.self, ["push", "origin"])
        #expect(third.refsUpdated == ["refs/artifacts/iris-mlp"])
        #expect(third.objectsSent > 0)
        #expect(third.bytesSent < weightsBytes / 4, "pushing v2 sent \(third.bytesSent) bytes for a \(weightsBytes)-byte file that changed by 1 MiB")

        // B fetches v2 the same way: little travels, and it checks out byte-identical.
        let fetched = try b.remoteJSON(RemoteFetchJSON.self, ["fetch", "origin"])
        #expect(fetched.refsUpdated.contains("refs/artifacts/iris-mlp"))
        #expect(fetched.diverged.isEmpty)
        #expect(fetched.bytesReceived < weightsBytes / 4, "fetching v2 received \(fetched.bytesReceived) bytes")
        let out = b.scratch + "/v2"
        try b.mvcOK("checkout", "iris-mlp@v2", "-o", out)
        for f in RemoteProducer.modelFiles {
            #expect(try b.sha256(ofFile: out + "/" + f) == a.sha256(ofFile: a.path(f)), "\(f) of v2 should arrive byte-identical")
        }
        #expect(try b.mvcOK("log", "iris-mlp").stdout == a.mvcOK("log", "iris-mlp").stdout)
        #expect(try b.mvc("fsck").status == 0)
        #expect(try a.mvc(["fsck", "--remote", "origin"]).status == 0)
    }

    @Test("through S3 (a local moto server): push, pull byte-identical, fsck --remote")
    func s3Remote() throws {
        let producer = try RemoteProducer.make()
        let a = producer.sandbox
        let moto = try RemoteMoto.start(scratch: a.scratch)
        defer { moto.stop() }
        let bucket = "mvc-e2e-" + UUID().uuidString.lowercased().prefix(12)
        try moto.createBucket(bucket, scratch: a.scratch)
        let env = moto.environment
        let url = "s3://\(bucket)/team/models"

        try a.mvcOK(["remote", "add", "origin", url], env: env)
        let first = try a.remoteJSON(RemotePushJSON.self, ["push"], env: env)
        #expect(first.objectsSent > 0 && first.packsSent >= 1 && first.rejected.isEmpty)
        #expect(first.refsUpdated.contains("refs/stages/iris-mlp/production"))
        let again = try a.remoteJSON(RemotePushJSON.self, ["push"], env: env)
        #expect(again.objectsSent == 0 && again.bytesSent == 0 && again.refsUpdated.isEmpty)

        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK(["remote", "add", "origin", url], env: env)
        try b.mvcOK(["pull", "origin", "iris-mlp@production"], env: env)
        for f in RemoteProducer.modelFiles {
            #expect(try b.sha256(ofFile: b.path(f)) == a.sha256(ofFile: a.path(f)), "\(f) should arrive byte-identical")
        }
        try expectSameViews(a, b)
        #expect(try b.mvc("fsck").status == 0)

        let check = try a.remoteJSON(FsckJSON.self, ["fsck", "--remote", "origin"], env: env)
        #expect(check.problems.isEmpty)
        #expect(check.objectsChecked > 0 && check.refsChecked >= 5)
        try b.mvcOK(["fsck", "--remote", "origin"], env: env)

        // A second version travels as its difference.
        _ = try producer.commitV2()
        let third = try a.remoteJSON(RemotePushJSON.self, ["push"], env: env)
        #expect(third.bytesSent < (UInt64(RemoteProducer.weightsMiB) << 20) / 4)
        let out = b.scratch + "/v2"
        try b.mvcOK(["pull", "origin", "iris-mlp@v2", "-o", out], env: env)
        for f in RemoteProducer.modelFiles {
            #expect(try b.sha256(ofFile: out + "/" + f) == a.sha256(ofFile: a.path(f)))
        }
        try a.mvcOK(["fsck", "--remote", "origin"], env: env)
    }
}
