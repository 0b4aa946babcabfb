/// One version that serves (or shadows) a request.
public struct Route: Sendable, Equatable, Codable {
    public var stage: String
    public var artifact: String
    public var version: Int
    public var id: ObjectID
}

/// Which version serves a request (`mvc resolve NAME --key K`).
public struct RouteDecision: Sendable, Equatable, Codable {
    public var artifact: String
    public var key: String?
    /// The key's bucket, 0..<10000 (basis points); nil without a key.
    public var bucket: Int?
    public var serve: Route
    /// The `shadow` stage's version, which receives a copy of the request; nil when unset.
    public var shadow: Route?
    /// Traffic weights in percent of the weighted stages, by stage.
    public var weights: [String: Int]
}

extension Repository {
    /// The stable bucket of a routing key: the first 8 bytes of SHA-256(`mvc-route` NUL name NUL
    /// key), big-endian, modulo 10,000. The same key always lands in the same bucket, so a user
    /// keeps seeing the same version while a rollout's weight stays put.
    public static func routingBucket(artifact: String, key: String) -> Int {
        var bytes = Array("mvc-route".utf8)
        bytes.append(0); bytes.append(contentsOf: artifact.utf8)
        bytes.append(0); bytes.append(contentsOf: key.utf8)
        let digest = ObjectID.hash(bytes).bytes
        var v: UInt64 = 0
        for b in digest.prefix(8) { v = v << 8 | UInt64(b) }
        return Int(v % 10_000)
    }

    /// Decides which version serves a request: weighted stages (e.g. `canary` at 10%) take their
    /// share of buckets in stage-name order, production the rest; `shadow` is returned alongside.
    /// O(number of stages), whatever the length of their history.
    public func route(_ name: String, key: String?) throws(MVCError) -> RouteDecision {
        try Names.validateArtifact(name)
        guard try head(of: name) != nil else { throw MVCError(.unknownRevision, "no artifact named '\(name)'", hint: "see 'mvc artifacts'") }
        let states = try stageStates(name)
        func route(_ s: StageState) -> Route? {
            guard let c = s.commit, let v = s.version else { return nil }
            return Route(stage: s.stage, artifact: name, version: v, id: c)
        }
        // Only rollout stages carry traffic weights (the built-in stages and shadow never do).
        let weighted = states.filter { ($0.weight ?? 0) > 0 && $0.commit != nil && !Stages.builtIn.contains($0.stage) && $0.stage != "shadow" }
        let production = states.first { $0.stage == Stages.production }.flatMap(route)
        let shadow = states.first { $0.stage == "shadow" }.flatMap(route)
        var serve = production
        var bucket: Int?
        if let key {
            let b = Repository.routingBucket(artifact: name, key: key)
            bucket = b
            var threshold = 0
            for s in weighted {
                threshold += (s.weight ?? 0) * 100
                if b < threshold { serve = route(s); break }
            }
        }
        guard let serve else {
            throw MVCError(.unknownRevision, "'\(name)' has no version in production", hint: "promote one: 'mvc promote \(name)@vN --to production'")
        }
        var weights: [String: Int] = [:]
        for s in weighted { weights[s.stage] = s.weight }
        return RouteDecision(artifact: name, key: key, bucket: bucket, serve: serve, shadow: shadow, weights: weights)
    }
}
