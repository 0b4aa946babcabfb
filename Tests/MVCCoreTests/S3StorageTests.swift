import Foundation
import Synchronization
import Testing
@testable import MVCCore

// MARK: - A local S3 server (moto) for the tests

/// moto_server is missing or did not start. The S3 tests fail with this; they are never skipped.
struct MotoUnavailable: Error, CustomStringConvertible {
    let description: String
}

/// A `moto_server` child process on 127.0.0.1 and a free port. A watchdog shell kills it when the
/// test process dies, however it dies.
final class MotoServer: Sendable {
    static let installCommand = "python3 -m pip install 'moto[server]==5.2.1' (or, where pip refuses the system Python: pipx install 'moto[server]==5.2.1')"

    let port: Int
    let logPath: String
    private let process: Mutex<Process?>

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// What an S3Storage for this server is configured with (no ~/.aws: no HOME).
    var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"]
    }

    private init(port: Int, logPath: String, process: Process) {
        self.port = port
        self.logPath = logPath
        self.process = Mutex(process)
    }

    /// Starts a server and waits until it answers HTTP.
    static func start(extraEnvironment: [String: String] = [:]) throws(MotoUnavailable) -> MotoServer {
        let env = ProcessInfo.processInfo.environment
        let dirs = (env["PATH"] ?? "").split(separator: ":").map(String.init)
        guard dirs.contains(where: { FileManager.default.isExecutableFile(atPath: $0 + "/moto_server") }) else {
            throw MotoUnavailable(description: "moto_server is not on PATH: the S3 tests need this local S3 server; install it with: \(installCommand)")
        }
        var lastLog = ""
        for _ in 0..<3 {   // a port picked free can be taken before moto binds it
            let port = freePort()
            let log = FileManager.default.temporaryDirectory.path + "/mvc-moto-\(port)-\(UUID().uuidString).log"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            // SIGKILL: moto inherits the signal mask of the (libdispatch) thread that spawned the shell,
            // which blocks SIGTERM; the shell itself resets its mask, so its trap works.
            let script = """
                moto_server -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
                m=$!
                trap 'kill -9 $m 2>/dev/null; wait $m 2>/dev/null; exit 0' TERM INT
                while kill -0 "$3" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.2; done
                kill -9 $m 2>/dev/null
                """
            p.arguments = ["-c", script, "sh", String(port), log, String(getpid())]
            p.environment = env.merging(extraEnvironment) { $1 }
            do { try p.run() } catch {
                throw MotoUnavailable(description: "cannot start moto_server: \(error)")
            }
            let server = MotoServer(port: port, logPath: log, process: p)
            let client: S3HTTPClient
            do { client = try S3HTTPClient(tuning: S3Storage.Tuning()) } catch {
                server.stop()
                throw MotoUnavailable(description: error.message)
            }
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline && p.isRunning {
                if case .success = client.send("GET", url: server.endpoint + "/moto-api/", headers: [], body: .none, deadline: 2) {
                    return server
                }
                usleep(100_000)
            }
            lastLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            server.stop()
        }
        throw MotoUnavailable(description: "moto_server did not start; its output:\n\(lastLog)\nreinstall it with: \(installCommand)")
    }

    func stop() {
        process.withLock { p in
            guard let proc = p else { return }
            if proc.isRunning { proc.terminate() }
            proc.waitUntilExit()
            p = nil
        }
        try? FileManager.default.removeItem(atPath: logPath)
    }

    private static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    // One server shared by the suites that run at the same time, stopped when the last one ends.
    private static let shared = Mutex<(users: Int, server: Result<MotoServer, MotoUnavailable>?)>((0, nil))

    static func acquire() -> Result<MotoServer, MotoUnavailable> {
        shared.withLock { s in
            s.users += 1
            if let server = s.server { return server }
            let started: Result<MotoServer, MotoUnavailable>
            do throws(MotoUnavailable) { started = .success(try MotoServer.start()) } catch { started = .failure(error) }
            s.server = started
            return started
        }
    }

    static func release() {
        shared.withLock { s in
            s.users -= 1
            guard s.users == 0 else { return }
            if case .success(let server) = s.server { server.stop() }
            s.server = nil
        }
    }

    @TaskLocal static var current: Result<MotoServer, MotoUnavailable>?

    /// The suite's server; fails the test (with the install command) when moto is unavailable.
    static func require() throws -> MotoServer {
        guard let current else { throw MotoUnavailable(description: "this suite lacks the .motoServer trait") }
        return try current.get()
    }

    /// An S3Storage on a new bucket of the suite's server.
    static func freshStorage(prefix: String = "", tuning: S3Storage.Tuning = fastRetries) throws -> S3Storage {
        let server = try require()
        let bucket = "mvc-" + UUID().uuidString.lowercased().prefix(18)
        let storage = try S3Storage(url: "s3://\(bucket)" + (prefix.isEmpty ? "" : "/" + prefix), environment: server.environment, tuning: tuning)
        try storage.createBucket()
        return storage
    }

    static let fastRetries: S3Storage.Tuning = {
        var t = S3Storage.Tuning()
        t.retryBaseDelay = 0.01
        t.requestTimeout = 20
        return t
    }()
}

/// Runs a suite with the shared moto server (started once for the suite, not per test).
struct MotoServerTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let server = MotoServer.acquire()
        defer { MotoServer.release() }
        try await MotoServer.$current.withValue(server) { try await function() }
    }
}

extension Trait where Self == MotoServerTrait {
    static var motoServer: Self { Self() }
}

extension S3Storage {
    /// Upload ids of multipart uploads begun and neither completed nor aborted.
    func pendingMultipartUploads() throws -> [String] {
        let r = try perform("GET", objectKey: nil, query: [("uploads", "")], retry: .idempotent, action: "list uploads", subject: location)
        guard r.status == 200 else { throw failure(r, action: "list uploads", subject: location) }
        return S3XML.values("UploadId", in: r.text)
    }
}

/// A scripted HTTP server (python3's http.server) for what moto cannot show: failures on demand and
/// the headers a request arrived with. A key `fail-STATUS-N/...` answers STATUS to its first N
/// requests, then 200 (body `ok`); `GET /_count/PATH` and `GET /_headers/PATH` report the requests a
/// path got and the headers of the last one. A key under `trickle/` answers `ok` a byte every 0.6 s,
/// one under `stall/` waits 3 s before its body, one under `lf/` ends its header lines in a bare LF.
final class ScriptedServer: Sendable {
    static let script = #"""
        import http.server, json, os, sys, threading, time
        counts, headers, parent = {}, {}, os.getppid()
        lock = threading.Lock()
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def reply(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"e"')
                self.end_headers()
                if self.command != "HEAD": self.wfile.write(body)
            def any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n: self.rfile.read(n)
                path = self.path.split("?")[0]
                if path.startswith("/_count/"):
                    return self.reply(200, str(counts.get(path[7:], 0)).encode())
                if path.startswith("/_headers/"):
                    return self.reply(200, json.dumps(headers.get(path[9:], {})).encode())
                with lock:
                    counts[path] = counts.get(path, 0) + 1
                    headers[path] = {k.lower(): v for k, v in self.headers.items()}
                    count = counts[path]
                if "/trickle/" in path or "/stall/" in path:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.flush()
                    for b in (b"o", b"k"):
                        time.sleep(0.6 if "/trickle/" in path else 3)
                        self.wfile.write(b)
                        self.wfile.flush()
                    return
                if "/lf/" in path:
                    self.wfile.write(b'HTTP/1.1 200 OK\nContent-Length: 2\nETag: "lf"\nX-Amz-Meta-A: 1\n\n' + (b"" if self.command == "HEAD" else b"ok"))
                    self.wfile.flush()
                    return
                for part in path.split("/"):
                    if part.startswith("fail-"):
                        _, status, times = part.split("-")
                        if count <= int(times):
                            return self.reply(int(status), b"<Error><Code>Scripted</Code><Message>scripted failure</Message></Error>")
                self.reply(204 if self.command == "DELETE" else 200, b"ok" if self.command == "GET" else b"")
            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = any
        def watch():
            while os.getppid() == parent: time.sleep(0.2)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let port: Int
    private let process: Mutex<Process?>
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", Self.script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        var line: [UInt8] = []
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte.first == UInt8(ascii: "\n") { break }
            line += byte
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            p.terminate()
            throw MotoUnavailable(description: "the scripted python3 HTTP server did not start")
        }
        self.port = port
        process = Mutex(p)
    }

    func stop() {
        process.withLock { p in
            guard let proc = p else { return }
            kill(proc.processIdentifier, SIGKILL)   // SIGTERM is blocked in children of libdispatch threads
            proc.waitUntilExit()
            p = nil
        }
    }

    private func get(_ path: String) throws -> String {
        let client = try S3HTTPClient(tuning: S3Storage.Tuning())
        return try client.send("GET", url: endpoint + path, headers: [], body: .none, deadline: 10).get().text
    }

    func count(_ path: String) throws -> Int { Int(try get("/_count" + path)) ?? -1 }

    func headers(_ path: String) throws -> [String: String] {
        try JSONDecoder().decode([String: String].self, from: Data(try get("/_headers" + path).utf8))
    }
}

// MARK: - Tests

@Suite("S3Storage", .motoServer)
struct S3StorageTests {
    static let exampleSigner = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                           sessionToken: nil, region: "us-east-1", service: "s3")

    // MARK: Signing (no server)

    @Test("SigV4: AWS's published GET Object example")
    func sigV4GetObjectExample() {
        let headers = Self.exampleSigner.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
                                              headers: ["Range": "bytes=0-9"], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(headers["authorization"] == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers["x-amz-date"] == "20130524T000000Z")
        #expect(headers["x-amz-content-sha256"] == SigV4Signer.emptyPayloadHash)
        #expect(headers["range"] == "bytes=0-9")
        #expect(headers["host"] == nil)   // URLSession sends Host itself
    }

    @Test("SigV4: AWS's PUT Object, GET Bucket (list) and GET lifecycle examples")
    func sigV4OtherExamples() {
        let body = Array("Welcome to Amazon S3.".utf8)
        #expect(ObjectID.hash(body).hex == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let put = Self.exampleSigner.sign(method: "PUT", host: "examplebucket.s3.amazonaws.com", path: "/" + SigV4Signer.uriEncodePath("test$file.text"),
                                          query: [], headers: ["Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"],
                                          payloadHash: ObjectID.hash(body).hex, date: "20130524T000000Z")
        #expect(put["authorization"]?.hasSuffix("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd") == true)

        let list = Self.exampleSigner.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                                           headers: [:], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(list["authorization"]?.hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true)

        let lifecycle = Self.exampleSigner.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: [("lifecycle", "")],
                                                headers: [:], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(lifecycle["authorization"]?.hasSuffix("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543") == true)
    }

    /// Reference signatures taken from boto3 1.43.11's request pipeline (clock fixed at 2013-05-24,
    /// the example credentials): the canonical URI and query of keys and values full of reserved
    /// characters. (moto's own signature check mangles most of these characters, even for boto3, so
    /// this is where they are proven.)
    @Test("SigV4: reserved characters in keys and query values sign as boto3 signs them")
    func sigV4MatchesBoto3() {
        let key = "odd keys/a b+c=d&e?f#g%h~i'j(k)*l!m$n,o;p:q@r[s]t^u|v`w{x}y<z>\"é.txt"
        let path = "/" + SigV4Signer.uriEncodePath(key)
        #expect(path == "/odd%20keys/a%20b%2Bc%3Dd%26e%3Ff%23g%25h~i%27j%28k%29%2Al%21m%24n%2Co%3Bp%3Aq%40r%5Bs%5Dt%5Eu%7Cv%60w%7Bx%7Dy%3Cz%3E%22%C3%A9.txt")
        let get = Self.exampleSigner.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: path, query: [],
                                          headers: ["x-amz-checksum-mode": "ENABLED"], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(get["authorization"]?.hasSuffix("Signature=b093e4bd616411d944f0e46953f3c217fff1a3dd88c19e07871ffcb380066246") == true)
        let list = Self.exampleSigner.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/",
                                           query: [("list-type", "2"), ("prefix", "a b/é+"), ("continuation-token", "1/abc+def=="), ("max-keys", "2"), ("encoding-type", "url")],
                                           headers: [:], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(list["authorization"]?.hasSuffix("Signature=be471295392ebfca165e35dbd5716d1e215be5f76fc72fd4695bd7bb4dc646e7") == true)
    }

    @Test("SigV4: a session token is sent and signed")
    func sigV4SessionToken() {
        var signer = Self.exampleSigner
        signer.sessionToken = "TOKEN/+="
        let h = signer.sign(method: "GET", host: "h", path: "/k", query: [], headers: [:], payloadHash: SigV4Signer.emptyPayloadHash, date: "20130524T000000Z")
        #expect(h["x-amz-security-token"] == "TOKEN/+=")
        #expect(h["authorization"]?.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") == true)
    }

    @Test("HMAC-SHA256 against RFC 4231 (short key, long key)")
    func hmac() {
        #expect(SigV4Signer.hexString(SigV4Signer.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(SigV4Signer.hexString(SigV4Signer.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(SigV4Signer.hexString(SigV4Signer.hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test("URI encoding, canonical query, header values, dates")
    func canonicalForms() {
        #expect(SigV4Signer.uriEncode("a b+c~d_e-f.g/h%é") == "a%20b%2Bc~d_e-f.g%2Fh%25%C3%A9")
        #expect(SigV4Signer.uriEncodePath("packs/a b/c+d") == "packs/a%20b/c%2Bd")
        #expect(SigV4Signer.canonicalQuery([("prefix", "a/b"), ("list-type", "2"), ("continuation-token", "x=y+z"), ("uploads", "")])
                == "continuation-token=x%3Dy%2Bz&list-type=2&prefix=a%2Fb&uploads=")
        #expect(SigV4Signer.canonicalHeaderValue("  a   b  c ") == "a b c")
        #expect(SigV4Signer.amzDate(1_369_353_600) == "20130524T000000Z")
        #expect(SigV4Signer.amzDate(0) == "19700101T000000Z")
    }

    @Test("the XML scanner: values, entities, escaping")
    func xml() {
        let text = "<ListBucketResult><Contents><Key>a&amp;b &lt;c&gt; &#x41;&#66;&quot;</Key></Contents><Contents><Key>d</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>"
        #expect(S3XML.values("Key", in: text) == ["a&b <c> AB\"", "d"])
        #expect(S3XML.first("IsTruncated", in: text) == "false")
        #expect(S3XML.first("Nope", in: text) == nil)
        #expect(S3XML.escape("\"e&t<>\"") == "&quot;e&amp;t&lt;&gt;&quot;")
        #expect(S3XML.unescape("&bogus; & &#xZZ;") == "&bogus; & &#xZZ;")
    }

    @Test("part sizes: 16 MiB, larger past 10,000 parts, refused past 5 GiB parts")
    func partSizes() throws {
        #expect(try S3Storage.partSize(for: 70 << 20, minimum: 16 << 20) == 16 << 20)
        #expect(try S3Storage.partSize(for: 1 << 40, minimum: 16 << 20) == 105 << 20)   // 1 TiB / 10,000, rounded up to MiB
        #expect(throws: MVCError.self) { try S3Storage.partSize(for: 60 << 40, minimum: 16 << 20) }
    }

    // MARK: Configuration (no server)

    static let keys = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET"]

    @Test("URLs: bucket and prefix; bad URLs are refused with a hint")
    func urls() throws {
        let a = try S3Storage(url: "s3://my-bucket", environment: Self.keys)
        #expect(a.bucket == "my-bucket" && a.prefix == "" && a.location == "s3://my-bucket")
        let b = try S3Storage(url: "s3://my-bucket/team/models/", environment: Self.keys)
        #expect(b.prefix == "team/models/")
        for bad in ["http://bucket/x", "s3://", "s3://ab", "s3://Bucket", "s3://bu cket", "s3://-bucket", "s3://bucket/a//b", "s3://bucket/../x", "s3://a..b"] {
            let e = #expect(throws: MVCError.self, "\(bad)") { try S3Storage(url: bad, environment: Self.keys) }
            #expect(e?.code == .invalidArgument)
            #expect(e?.hint != nil)
        }
    }

    @Test("endpoints: AWS virtual-host style by region, path style for custom endpoints and dotted buckets")
    func endpoints() throws {
        let aws = try S3Storage(url: "s3://models-bucket/p", environment: Self.keys.merging(["AWS_REGION": "eu-west-3"]) { $1 })
        #expect(try aws.url(forKey: "packs/a b.pack") == "https://models-bucket.s3.eu-west-3.amazonaws.com/p/packs/a%20b.pack")
        let dotted = try S3Storage(url: "s3://models.example.com", environment: Self.keys)
        #expect(try dotted.url(forKey: "k") == "https://s3.us-east-1.amazonaws.com/models.example.com/k")
        let local = try S3Storage(url: "s3://b1b/p", environment: Self.keys.merging(["AWS_ENDPOINT_URL": "http://127.0.0.1:9000/"]) { $1 })
        #expect(try local.url(forKey: "k") == "http://127.0.0.1:9000/b1b/p/k")
        #expect(local.target(nil).path == "/b1b")
        let specific = try S3Storage(url: "s3://b1b", environment: Self.keys.merging(["AWS_ENDPOINT_URL": "http://x:1", "AWS_ENDPOINT_URL_S3": "https://s3.example.com:443"]) { $1 })
        #expect(try specific.url(forKey: "k") == "https://s3.example.com/b1b/k")   // the default port is left out, as curl leaves it out of Host
        #expect(try S3Storage(url: "s3://b1b", environment: Self.keys.merging(["AWS_DEFAULT_REGION": "ap-south-1"]) { $1 }).region == "ap-south-1")
        #expect(try S3Storage(url: "s3://b1b", environment: Self.keys.merging(["AWS_DEFAULT_REGION": "ap-south-1", "AWS_REGION": "us-west-2"]) { $1 }).region == "us-west-2")
        let e = #expect(throws: MVCError.self) { try S3Storage(url: "s3://b1b", environment: Self.keys.merging(["AWS_ENDPOINT_URL": "ftp://x"]) { $1 }) }
        #expect(e?.code == .invalidArgument)
        #expect(throws: MVCError.self) { try local.url(forKey: "../x") }
    }

    @Test("credentials: environment, half-set environment, none at all")
    func environmentCredentials() throws {
        let s = try S3Storage(url: "s3://bkt", environment: Self.keys.merging(["AWS_SESSION_TOKEN": "TOK"]) { $1 })
        #expect(s.signer.accessKey == "AKID" && s.signer.secretKey == "SECRET" && s.signer.sessionToken == "TOK")
        let half = #expect(throws: MVCError.self) { try S3Storage(url: "s3://bkt", environment: ["AWS_ACCESS_KEY_ID": "AKID"]) }
        #expect(half?.message.contains("AWS_SECRET_ACCESS_KEY") == true)
        let none = #expect(throws: MVCError.self) { try S3Storage(url: "s3://bkt", environment: [:]) }
        #expect(none?.code == .invalidArgument)
        #expect(none?.message == "no AWS credentials for the S3 remote")
        #expect(none?.hint?.contains("AWS_ACCESS_KEY_ID") == true)
        #expect(none?.hint?.contains("~/.aws/credentials") == true)
    }

    @Test("credentials and region from ~/.aws: [default], AWS_PROFILE, [profile x] in config")
    func profileFiles() throws {
        let home = TempDir()
        home.write(".aws/credentials", """
            # comment
            [default]
            aws_access_key_id = DEFAULTID
            aws_secret_access_key = defaultsecret

            [work]
            aws_access_key_id=WORKID
            aws_secret_access_key=worksecret
            aws_session_token = worktoken
            """)
        home.write(".aws/config", """
            [default]
            region = eu-central-1
            [profile work]
            region = ca-central-1
            [profile cfgonly]
            aws_access_key_id = CFGID
            aws_secret_access_key = cfgsecret
            """)
        let d = try S3Storage(url: "s3://bkt", environment: ["HOME": home.path])
        #expect(d.signer.accessKey == "DEFAULTID" && d.signer.secretKey == "defaultsecret" && d.signer.sessionToken == nil)
        #expect(d.region == "eu-central-1")
        let w = try S3Storage(url: "s3://bkt", environment: ["HOME": home.path, "AWS_PROFILE": "work"])
        #expect(w.signer.accessKey == "WORKID" && w.signer.sessionToken == "worktoken" && w.region == "ca-central-1")
        let c = try S3Storage(url: "s3://bkt", environment: ["HOME": home.path, "AWS_PROFILE": "cfgonly", "AWS_REGION": "us-west-1"])
        #expect(c.signer.accessKey == "CFGID" && c.region == "us-west-1")
        let envWins = try S3Storage(url: "s3://bkt", environment: ["HOME": home.path, "AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "S"])
        #expect(envWins.signer.accessKey == "E")
        let missing = #expect(throws: MVCError.self) { try S3Storage(url: "s3://bkt", environment: ["HOME": home.path, "AWS_PROFILE": "nope"]) }
        #expect(missing?.message.contains("'nope'") == true)
        #expect(missing?.hint?.contains("AWS_PROFILE") == true)
        let empty = TempDir()
        let none = #expect(throws: MVCError.self) { try S3Storage(url: "s3://bkt", environment: ["HOME": empty.path]) }
        #expect(none?.code == .invalidArgument)
    }

    // MARK: Against moto

    @Test("listing pages through continuation tokens; prefixes are directories")
    func listPagination() throws {
        var tuning = MotoServer.fastRetries
        tuning.listPageSize = 2
        let s3 = try MotoServer.freshStorage(prefix: "pre/fix", tuning: tuning)
        let dir = TempDir()
        dir.write("f", "x")
        let keys = ["a/1", "a/2", "a/3", "a/4", "a/5", "ab/1", "b"]
        for k in keys { try s3.upload(k, from: dir.path + "/f") }
        #expect(try s3.list(prefix: "") == keys)
        #expect(try s3.list(prefix: "a") == ["a/1", "a/2", "a/3", "a/4", "a/5"])
        #expect(try s3.list(prefix: "a/") == ["a/1", "a/2", "a/3", "a/4", "a/5"])
        // Keys outside the remote's prefix are not listed.
        let whole = try S3Storage(url: "s3://\(s3.bucket)", environment: try MotoServer.require().environment, tuning: tuning)
        try whole.upload("pre/other", from: dir.path + "/f")
        #expect(try s3.list(prefix: "") == keys)
        #expect(try whole.list(prefix: "pre").count == keys.count + 1)
    }

    @Test("multipart upload: parts, ETag of a multipart object, content")
    func multipart() throws {
        var tuning = MotoServer.fastRetries
        tuning.multipartThreshold = 6 << 20
        tuning.partSize = 5 << 20
        let s3 = try MotoServer.freshStorage(tuning: tuning)
        let dir = TempDir()
        let bytes = noise(1 << 16, seed: 7)
        var content: [UInt8] = []
        for i in 0..<(11 << 4) { content += bytes.map { $0 ^ UInt8(truncatingIfNeeded: i) } }   // 11 MiB
        dir.write("big", content)
        try s3.upload("packs/big.pack", from: dir.path + "/big")
        let head = try #require(try s3.head("packs/big.pack"))
        #expect(head.size == UInt64(content.count))
        #expect(head.etag?.hasSuffix("-3\"") == true)   // 5 + 5 + 1 MiB
        #expect(try s3.read("packs/big.pack") == content)
        #expect(try s3.read("packs/big.pack", offset: (5 << 20) - 3, length: 6) == Array(content[(5 << 20) - 3 ..< (5 << 20) + 3]))
        #expect(try s3.pendingMultipartUploads().isEmpty)
    }

    @Test("a failed multipart upload is aborted and publishes nothing")
    func multipartAbort() throws {
        // Parts under S3's 5 MiB minimum: moto accepts them, then refuses to complete (EntityTooSmall).
        var tuning = MotoServer.fastRetries
        tuning.multipartThreshold = 2 << 20
        tuning.partSize = 1 << 20
        let s3 = try MotoServer.freshStorage(tuning: tuning)
        let dir = TempDir()
        dir.write("f", noise(3 << 20, seed: 1))
        let e = #expect(throws: MVCError.self) { try s3.upload("packs/x.pack", from: dir.path + "/f") }
        #expect(e?.code == .io)
        #expect(e?.message.contains("EntityTooSmall") == true)
        #expect(try s3.read("packs/x.pack") == nil)
        #expect(try s3.pendingMultipartUploads().isEmpty)
    }

    @Test("a missing bucket is reported as such")
    func missingBucket() throws {
        let server = try MotoServer.require()
        let s3 = try S3Storage(url: "s3://no-such-bucket-here/p", environment: server.environment, tuning: MotoServer.fastRetries)
        for op in [{ _ = try s3.list(prefix: "") }, { _ = try s3.read("k") }, { _ = try s3.read("k", offset: 0, length: 0) }] as [() throws -> Void] {
            let e = #expect(throws: MVCError.self) { try op() }
            #expect(e?.code == .pathNotFound)
            #expect(e?.message.contains("bucket 'no-such-bucket-here' does not exist") == true)
        }
    }

    @Test("an unreachable endpoint fails with .io after retries")
    func unreachable() throws {
        var tuning = MotoServer.fastRetries
        tuning.maxAttempts = 3
        // Port 1: nothing listens there, the connection is refused at once.
        let s3 = try S3Storage(url: "s3://bkt", environment: Self.keys.merging(["AWS_ENDPOINT_URL": "http://127.0.0.1:1"]) { $1 }, tuning: tuning)
        let clock = ContinuousClock()
        let start = clock.now
        let e = #expect(throws: MVCError.self) { try s3.read("k") }
        #expect(e?.code == .io)
        #expect(e?.message.contains("(3 attempts)") == true)
        #expect(e?.hint?.contains("http://127.0.0.1:1") == true)
        #expect(clock.now - start < .seconds(10))
    }

    @Test("requests pass moto's SigV4 verification (IAM auth on); a wrong secret is refused")
    func signaturesVerifiedByServer() throws {
        _ = try MotoServer.require()   // the shared one: fails here with the install command if moto is missing
        // A server of its own: after the first 3 requests (the IAM set-up below) moto checks every signature.
        let server = try MotoServer.start(extraEnvironment: ["INITIAL_NO_AUTH_ACTION_COUNT": "3"])
        defer { server.stop() }
        let (id, secret) = try Self.createIAMUser(server)

        var tuning = MotoServer.fastRetries
        tuning.multipartThreshold = 6 << 20
        tuning.partSize = 5 << 20
        tuning.listPageSize = 1
        var env = server.environment
        env["AWS_ACCESS_KEY_ID"] = id
        env["AWS_SECRET_ACCESS_KEY"] = secret
        // moto's check rebuilds the path through werkzeug, which changes most reserved characters (it
        // refuses boto3's own signatures for them); space, ~ - _ . and / survive it.
        let s3 = try S3Storage(url: "s3://signed-bucket/pre fix/x", environment: env, tuning: tuning)
        try s3.createBucket()
        let dir = TempDir()
        dir.write("small", "hello")
        dir.write("big", noise(7 << 20, seed: 3))
        let odd = "odd keys/a b~c_d-e.txt"
        try s3.upload(odd, from: dir.path + "/small")
        try s3.upload("packs/big.pack", from: dir.path + "/big")
        // Listed through a remote without a prefix: moto's check also mangles a `/` in a query value
        // (boto3's listings with prefix=a/ are refused too).
        let root = try S3Storage(url: "s3://signed-bucket", environment: env, tuning: tuning)
        #expect(try root.list(prefix: "") == ["pre fix/x/" + odd, "pre fix/x/packs/big.pack"])
        #expect(try s3.read(odd) == Array("hello".utf8))
        #expect(try s3.read("packs/big.pack", offset: 1, length: 3) == Array(noise(7 << 20, seed: 3)[1..<4]))
        try s3.swap("refs/main", expected: nil, new: [1])
        try s3.swap("refs/main", expected: [1], new: [2])
        #expect(throws: MVCError.self) { try s3.swap("refs/main", expected: [1], new: [3]) }
        try s3.swap("refs/main", expected: [2], new: nil)
        try s3.delete(odd)
        #expect(try s3.read(odd) == nil)

        env["AWS_SECRET_ACCESS_KEY"] = secret + "x"
        let wrong = try S3Storage(url: "s3://signed-bucket", environment: env, tuning: tuning)
        let e = #expect(throws: MVCError.self) { try wrong.read("packs/big.pack") }
        #expect(e?.code == .io)
        #expect(e?.message.contains("SignatureDoesNotMatch") == true)
        #expect(e?.hint?.contains("AWS_SECRET_ACCESS_KEY") == true)
    }

    @Test("retries: 5xx and lost connections on idempotent requests; conditional writes only when refused (503)")
    func retries() throws {
        let server = try ScriptedServer()
        defer { server.stop() }
        var tuning = MotoServer.fastRetries
        tuning.maxAttempts = 4
        let s3 = try S3Storage(url: "s3://bkt", environment: Self.keys.merging(["AWS_ENDPOINT_URL": server.endpoint]) { $1 }, tuning: tuning)

        #expect(try s3.read("fail-503-2/a") == Array("ok".utf8))
        #expect(try server.count("/bkt/fail-503-2/a") == 3)
        #expect(try s3.read("fail-500-1/b", offset: 0, length: 2) == Array("ok".utf8))   // 200 for a range: sliced
        let e = #expect(throws: MVCError.self) { _ = try s3.read("fail-500-9/c") }
        #expect(e?.message.contains("HTTP 500 Scripted: scripted failure") == true)
        #expect(try server.count("/bkt/fail-500-9/c") == 4)
        try s3.delete("fail-502-1/d")
        #expect(try server.count("/bkt/fail-502-1/d") == 2)

        // A conditional PUT that failed with 500 may have been applied: not repeated.
        let cas = #expect(throws: MVCError.self) { try s3.swap("fail-500-1/ref", expected: nil, new: [1]) }
        #expect(cas?.code == .io)
        #expect(try server.count("/bkt/fail-500-1/ref") == 1)
        // 503 Slow Down is a refusal: repeated.
        try s3.swap("fail-503-1/ref", expected: nil, new: [1])
        #expect(try server.count("/bkt/fail-503-1/ref") == 2)
        let moved = #expect(throws: MVCError.self) { try s3.swap("fail-412-1/ref", expected: nil, new: [1]) }
        #expect(moved?.code == .refMoved)
    }

    @Test("HTTP: the idle timeout counts time without bytes (a trickle passes, a stall fails), bare-LF headers")
    func idleTimeoutAndHeaders() throws {
        let server = try ScriptedServer()
        defer { server.stop() }
        var tuning = MotoServer.fastRetries
        tuning.requestTimeout = 1.5
        tuning.maxAttempts = 1
        let s3 = try S3Storage(url: "s3://bkt", environment: Self.keys.merging(["AWS_ENDPOINT_URL": server.endpoint]) { $1 }, tuning: tuning)
        // A byte every 0.6 s: slower than 1 byte/s on average over a few seconds' window, never idle for 1.5 s.
        #expect(try s3.read("trickle/a") == Array("ok".utf8))
        let e = #expect(throws: MVCError.self) { _ = try s3.read("stall/b") }
        #expect(e?.message.contains("no data sent or received for 1 s") == true, "\(String(describing: e))")
        let h = try #require(try s3.head("lf/c"))
        #expect(h.size == 2 && h.etag == "\"lf\"")
    }

    @Test("what goes on the wire: Content-Length for files and empty bodies, signed headers, conditional headers")
    func wire() throws {
        let server = try ScriptedServer()
        defer { server.stop() }
        let s3 = try S3Storage(url: "s3://bkt/p", environment: Self.keys.merging(["AWS_ENDPOINT_URL": server.endpoint, "AWS_SESSION_TOKEN": "tok"]) { $1 })
        let dir = TempDir()
        let bytes = noise(300_000, seed: 5)
        dir.write("f", bytes)
        dir.write("empty", [])
        try s3.upload("k/file", from: dir.path + "/f")
        let h = try server.headers("/bkt/p/k/file")
        #expect(h["content-length"] == "300000")
        #expect(h["transfer-encoding"] == nil)
        #expect(h["x-amz-content-sha256"] == ObjectID.hash(bytes).hex)
        #expect(h["x-amz-security-token"] == "tok")
        #expect(h["host"] == "127.0.0.1:\(server.port)")
        #expect(h["authorization"]?.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") == true)
        try s3.upload("k/empty", from: dir.path + "/empty")
        #expect(try server.headers("/bkt/p/k/empty")["content-length"] == "0")
        try s3.swap("refs/a", expected: nil, new: [])
        let put = try server.headers("/bkt/p/refs/a")
        #expect(put["content-length"] == "0")
        #expect(put["if-none-match"] == "*")
        #expect(put["authorization"]?.contains("SignedHeaders=host;if-none-match;x-amz-content-sha256;") == true)
        try s3.swap("refs/a", expected: Array("ok".utf8), new: [9])   // the scripted GET answers "ok", ETag "e"
        #expect(try server.headers("/bkt/p/refs/a")["if-match"] == "\"e\"")
        _ = try? s3.read("k/file", offset: 10, length: 2)   // the scripted answer is 200 "ok": too short
        #expect(try server.headers("/bkt/p/k/file")["range"] == "bytes=10-11")
    }

    /// CreateUser, CreateAccessKey and an allow-all inline policy, through moto's IAM API.
    static func createIAMUser(_ server: MotoServer) throws -> (id: String, secret: String) {
        let client = try S3HTTPClient(tuning: S3Storage.Tuning())
        func call(_ params: [(String, String)]) throws -> String {
            let body = Array((params + [("Version", "2010-05-08")]).map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&").utf8)
            let signer = SigV4Signer(accessKey: "bootstrap", secretKey: "bootstrap", sessionToken: nil, region: "us-east-1", service: "iam")
            let headers = signer.sign(method: "POST", host: "127.0.0.1:\(server.port)", path: "/", query: [],
                                      headers: ["content-type": "application/x-www-form-urlencoded; charset=utf-8"],
                                      payloadHash: ObjectID.hash(body).hex, date: SigV4Signer.amzDate(Int(Date().timeIntervalSince1970)))
            let r = try client.send("POST", url: server.endpoint + "/", headers: headers.map { "\($0.key): \($0.value)" },
                                    body: .data(Data(body)), deadline: 20).get()
            guard r.status == 200 else { throw MotoUnavailable(description: "IAM \(params[0].1) failed: HTTP \(r.status) \(r.text)") }
            return r.text
        }
        _ = try call([("Action", "CreateUser"), ("UserName", "mvc")])
        let key = try call([("Action", "CreateAccessKey"), ("UserName", "mvc")])
        _ = try call([("Action", "PutUserPolicy"), ("UserName", "mvc"), ("PolicyName", "all"),
                      ("PolicyDocument", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)])
        let id = try #require(S3XML.first("AccessKeyId", in: key))
        let secret = try #require(S3XML.first("SecretAccessKey", in: key))
        return (id, secret)
    }
}
