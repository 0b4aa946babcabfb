#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import Dispatch
internal import Foundation
internal import CMVCHTTP

/// A remote in an S3-compatible bucket: `s3://bucket` or `s3://bucket/prefix`.
///
/// Configuration follows the AWS tools:
/// - endpoint: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (MinIO, Ceph, R2, a local moto: path-style
///   addressing, `http://host:port/bucket/key`), else `https://<bucket>.s3.<region>.amazonaws.com`
///   (virtual-host style; path-style for bucket names with dots, which break the TLS wildcard);
/// - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in `~/.aws/config`, else us-east-1;
/// - credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else the `[default]`
///   (or `AWS_PROFILE`) profile of `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`), then of
///   `~/.aws/config` (`AWS_CONFIG_FILE`). Not supported: SSO, `credential_process`, instance and
///   container roles.
///
/// Requests are signed with AWS Signature Version 4, every payload hashed (`x-amz-content-sha256`), so
/// S3 rejects a body that does not match what was signed.
///
/// `list(prefix:)` treats the prefix as a directory, as `DirectoryStorage` does: `packs` and `packs/`
/// both list the keys under `packs/`, never `packsX`.
///
/// `swap` uses S3 conditional writes: `If-None-Match: *` to create, `If-Match: <etag>` (of the value
/// just read and compared) to replace or delete. A server that ignores `If-Match` on DELETE (S3
/// general purpose buckets before conditional deletes, some S3-compatible servers) turns a delete into
/// read-compare-delete, which can lose a race with a concurrent swap; refs are rarely deleted.
public final class S3Storage: RemoteStorage {
    public let location: String
    let bucket: String
    /// The key prefix inside the bucket: empty, or ending in `/`.
    let prefix: String
    let endpoint: S3Endpoint
    let region: String
    let signer: SigV4Signer
    let tuning: Tuning
    private let http: S3HTTPClient

    /// Sizes, limits and delays; tests shrink them.
    struct Tuning: Sendable {
        /// Files larger than this go up in parts.
        var multipartThreshold: UInt64 = 64 << 20
        /// The smallest part (S3's minimum is 5 MiB, but for the last part); larger when a file needs
        /// more than 10,000 parts.
        var partSize: UInt64 = 16 << 20
        /// ListObjectsV2 `max-keys` (nil: the server's default, 1000 on S3).
        var listPageSize: Int? = nil
        /// Attempts per request, the first included: 3 retries.
        var maxAttempts = 4
        /// The first retry waits this long (seconds), each later one four times longer, ±25%.
        var retryBaseDelay = 0.25
        /// Idle timeout: no byte sent or received for this long fails the attempt.
        var requestTimeout: Double = 60
        /// Hard limit on one attempt, transfer included.
        var resourceTimeout: Double = 3600
    }

    /// The process environment; the default for `init(url:environment:)`.
    public static var processEnvironment: [String: String] { ProcessInfo.processInfo.environment }

    /// Parses `s3://bucket[/prefix]` and resolves endpoint, region and credentials from `environment`
    /// (and `~/.aws`, found through its `HOME`). Makes no request.
    public convenience init(url: String, environment: [String: String] = S3Storage.processEnvironment) throws(MVCError) {
        try self.init(url: url, environment: environment, tuning: Tuning())
    }

    init(url: String, environment: [String: String], tuning: Tuning) throws(MVCError) {
        let (bucket, prefix) = try S3Storage.parse(url: url)
        let profiles = try AWSProfiles(environment: environment)
        let region = S3Storage.nonEmpty(environment["AWS_REGION"]) ?? S3Storage.nonEmpty(environment["AWS_DEFAULT_REGION"])
            ?? profiles.configValue("region") ?? "us-east-1"
        guard !region.isEmpty, region.utf8.allSatisfy({ SigV4Signer.isUnreserved($0) }) else {
            throw MVCError(.invalidArgument, "invalid AWS region '\(region)'", hint: "set AWS_REGION to a region name such as us-east-1")
        }
        let credentials = try profiles.credentials()
        location = url
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        endpoint = try S3Endpoint(environment: environment, region: region, bucket: bucket)
        signer = SigV4Signer(accessKey: credentials.accessKey, secretKey: credentials.secretKey,
                             sessionToken: credentials.sessionToken, region: region, service: "s3")
        self.tuning = tuning
        http = try S3HTTPClient(tuning: tuning)
    }

    // MARK: RemoteStorage

    public func list(prefix: String) throws(MVCError) -> [String] {
        var dir = prefix
        while dir.hasSuffix("/") { dir.removeLast() }
        let listPrefix = self.prefix + (dir.isEmpty ? "" : dir + "/")
        let subject = "s3://\(bucket)/\(listPrefix)"
        var out: [String] = []
        var token: String? = nil
        repeat {
            var query = [("list-type", "2"), ("prefix", listPrefix)]
            if let token { query.append(("continuation-token", token)) }
            if let n = tuning.listPageSize { query.append(("max-keys", String(n))) }
            let r = try perform("GET", objectKey: nil, query: query, retry: .idempotent, action: "list", subject: subject)
            guard r.status == 200 else { throw failure(r, action: "list", subject: subject) }
            let text = r.text
            for k in S3XML.values("Key", in: text) where k.utf8.starts(with: self.prefix.utf8) {
                out.append(String(decoding: k.utf8.dropFirst(self.prefix.utf8.count), as: UTF8.self))
            }
            token = nil
            if S3XML.first("IsTruncated", in: text) == "true" {
                guard let next = S3XML.first("NextContinuationToken", in: text), !next.isEmpty else {
                    throw MVCError(.io, "cannot list '\(subject)': a truncated listing without a continuation token",
                                   hint: "the server is not S3-compatible enough (ListObjectsV2)")
                }
                token = next
            }
        } while token != nil
        return out.sorted()
    }

    public func read(_ key: String) throws(MVCError) -> [UInt8]? {
        try getObject(key)?.bytes
    }

    public func read(_ key: String, offset: UInt64, length: UInt64) throws(MVCError) -> [UInt8] {
        let full = try objectKey(key)
        if length == 0 {
            guard try head(key) != nil else { throw missing(key) }
            return []
        }
        let (end, overflow) = offset.addingReportingOverflow(length - 1)
        guard !overflow else { throw MVCError(.invalidArgument, "byte range \(offset)+\(length) of '\(describe(key))' is out of bounds") }
        let r = try perform("GET", objectKey: full, headers: ["range": "bytes=\(offset)-\(end)"], retry: .idempotent,
                            action: "read", subject: describe(key))
        let short = MVCError(.corruptObject, "remote file '\(key)' is shorter than its index says", hint: "run 'mvc fsck --remote'")
        switch r.status {
        case 206:
            guard UInt64(r.body.count) == length else { throw short }
            return r.body
        case 200:   // a server that ignores Range sends the whole object
            guard UInt64(r.body.count) >= offset + length else { throw short }
            return Array(r.body[Int(offset)..<Int(offset + length)])
        case 416:
            throw short
        case 404 where r.errorCode != "NoSuchBucket":
            throw missing(key)
        default:
            throw failure(r, action: "read", subject: describe(key))
        }
    }

    public func upload(_ key: String, from source: String) throws(MVCError) {
        let full = try objectKey(key)
        let fd = try FileIO.openRead(source)
        defer { close(fd) }
        let st = try FileIO.stat(fd: fd, path: source)
        guard st.isRegular else {
            throw MVCError(.unsupportedFileType, "'\(source)' is not a regular file", hint: "only regular files can be uploaded")
        }
        if st.size > tuning.multipartThreshold {
            try multipartUpload(key, full: full, fd: fd, path: source, size: st.size)
            return
        }
        let body: RequestBody
        if st.size == 0 {
            body = .bytes([])
        } else {
            // Hashed first (the signature covers the payload), then streamed from the file by URLSession.
            let hash = try S3Storage.sha256(fd: fd, path: source, size: st.size)
            body = .file(path: source, fd: fd, size: st.size, sha256: hash)
        }
        let r = try perform("PUT", objectKey: full, body: body, retry: .idempotent, action: "upload", subject: describe(key))
        guard r.status == 200 else { throw failure(r, action: "upload", subject: describe(key)) }
    }

    public func delete(_ key: String) throws(MVCError) {
        let full = try objectKey(key)
        let r = try perform("DELETE", objectKey: full, retry: .idempotent, action: "delete", subject: describe(key))
        guard r.status == 204 || r.status == 200 || (r.status == 404 && r.errorCode != "NoSuchBucket") else {
            throw failure(r, action: "delete", subject: describe(key))
        }
    }

    public func swap(_ key: String, expected: [UInt8]?, new: [UInt8]?) throws(MVCError) {
        let full = try objectKey(key)
        var headers: [String: String] = [:]
        if let expected {
            guard let current = try getObject(key), current.bytes == expected else { throw moved(key) }
            guard let etag = current.etag else {
                throw MVCError(.io, "cannot update '\(describe(key))': the server sent no ETag", hint: "the server does not support conditional writes")
            }
            headers["if-match"] = etag
        } else if new == nil {
            // "Must not exist" and nothing to write: only the check is left.
            if try head(key) != nil { throw moved(key) }
            return
        } else {
            headers["if-none-match"] = "*"
        }
        // A conditional write that may have been applied is not retried: its retry would see its own
        // write and report a conflict. Only requests the server certainly refused are (503, no connection).
        let action = new == nil ? "delete" : "update"
        var r: S3Response
        if let new {
            r = try perform("PUT", objectKey: full, headers: headers, body: .bytes(new), retry: .unlessProcessed, action: action, subject: describe(key))
        } else {
            r = try perform("DELETE", objectKey: full, headers: headers, retry: .unlessProcessed, action: action, subject: describe(key))
            if r.status == 501 {
                // No conditional deletes here: the value was compared just above (a documented race).
                r = try perform("DELETE", objectKey: full, retry: .unlessProcessed, action: action, subject: describe(key))
            }
        }
        switch r.status {
        case 200, 204:
            return
        case 412:                                                 // PreconditionFailed
            throw moved(key)
        case 409 where r.errorCode == "ConditionalRequestConflict":  // a concurrent conditional write won
            throw moved(key)
        case 404 where r.errorCode != "NoSuchBucket":              // deleted since it was read
            throw moved(key)
        default:
            throw failure(r, action: action, subject: describe(key))
        }
    }

    // MARK: Objects

    /// Creates the bucket (idempotent). For tests and setup; mvc never creates buckets on its own.
    func createBucket() throws(MVCError) {
        var body: [UInt8] = []
        if region != "us-east-1" && endpoint.isAWS {
            body = Array("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        let r = try perform("PUT", objectKey: nil, body: .bytes(body), retry: .idempotent, action: "create bucket", subject: "s3://\(bucket)")
        guard r.status == 200 || (r.status == 409 && r.errorCode == "BucketAlreadyOwnedByYou") else {
            throw failure(r, action: "create bucket", subject: "s3://\(bucket)")
        }
    }

    /// The value and its ETag, nil when absent.
    func getObject(_ key: String) throws(MVCError) -> (bytes: [UInt8], etag: String?)? {
        let r = try perform("GET", objectKey: try objectKey(key), retry: .idempotent, action: "read", subject: describe(key))
        if r.status == 200 { return (r.body, r.headers["etag"]) }
        if r.status == 404 && r.errorCode != "NoSuchBucket" { return nil }
        throw failure(r, action: "read", subject: describe(key))
    }

    /// Size and ETag, nil when absent (HEAD).
    func head(_ key: String) throws(MVCError) -> (size: UInt64, etag: String?)? {
        let r = try perform("HEAD", objectKey: try objectKey(key), retry: .idempotent, action: "stat", subject: describe(key))
        if r.status == 200 { return (r.headers["content-length"].flatMap { UInt64($0) } ?? 0, r.headers["etag"]) }
        if r.status == 404 {
            // HEAD has no body to tell a missing key from a missing bucket; ask the bucket.
            try checkBucket()
            return nil
        }
        throw failure(r, action: "stat", subject: describe(key))
    }

    private func checkBucket() throws(MVCError) {
        let r = try perform("HEAD", objectKey: nil, retry: .idempotent, action: "stat", subject: "s3://\(bucket)")
        if r.status == 404 { throw noSuchBucket() }
    }

    /// Parts of `partSize` or more, read one at a time from the file, so memory stays at one part.
    private func multipartUpload(_ key: String, full: String, fd: Int32, path: String, size: UInt64) throws(MVCError) {
        let subject = describe(key)
        let partSize = try S3Storage.partSize(for: size, minimum: tuning.partSize)
        let created = try perform("POST", objectKey: full, query: [("uploads", "")], retry: .unlessProcessed, action: "upload", subject: subject)
        guard created.status == 200, let uploadID = S3XML.first("UploadId", in: created.text), !uploadID.isEmpty else {
            throw failure(created, action: "upload", subject: subject)
        }
        do throws(MVCError) {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(partSize), alignment: 16)
            defer { buffer.deallocate() }
            var etags: [String] = []
            var offset: UInt64 = 0
            while offset < size {
                let n = Int(min(partSize, size - offset))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
                guard try FileIO.pread(fd, into: slice, at: offset, path: path) == n else { throw S3Storage.changed(path) }
                let part = UnsafeRawBufferPointer(slice)
                let r = try perform("PUT", objectKey: full, query: [("partNumber", String(etags.count + 1)), ("uploadId", uploadID)],
                                    body: .data(Data(part), sha256: ObjectID.hash(part).hex), retry: .idempotent,
                                    action: "upload", subject: subject)
                guard r.status == 200, let etag = r.headers["etag"] else { throw failure(r, action: "upload", subject: subject) }
                etags.append(etag)
                offset += UInt64(n)
            }
            guard try FileIO.stat(fd: fd, path: path).size == size else { throw S3Storage.changed(path) }
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, etag) in etags.enumerated() {
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let r = try perform("POST", objectKey: full, query: [("uploadId", uploadID)], body: .bytes(Array(xml.utf8)),
                                retry: .idempotent, action: "upload", subject: subject)
            // S3 can answer 200 and then report a failure in the body.
            if r.status == 200 && !r.text.contains("<Error>") { return }
            if r.errorCode == "NoSuchUpload", let done = try head(key), done.size == size,
               done.etag?.hasSuffix("-\(etags.count)\"") == true {
                return   // a retried Complete whose first attempt succeeded but whose answer was lost
            }
            throw failure(r, action: "upload", subject: subject)
        } catch {
            _ = try? perform("DELETE", objectKey: full, query: [("uploadId", uploadID)], retry: .idempotent, action: "abort upload", subject: subject)
            throw error
        }
    }

    static func partSize(for size: UInt64, minimum: UInt64) throws(MVCError) -> UInt64 {
        let mib: UInt64 = 1 << 20
        let needed = (size + 9_999) / 10_000                    // S3 allows at most 10,000 parts
        let part = max(minimum, (needed + mib - 1) / mib * mib)
        guard part <= 5 << 30 else {
            throw MVCError(.invalidArgument, "a file of \(size) bytes is too large for S3", hint: "S3 objects are at most 10,000 parts of 5 GiB")
        }
        return part
    }

    static func sha256(fd: Int32, path: String, size: UInt64) throws(MVCError) -> String {
        let h = SHA256()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let want = Int(min(UInt64(buf.count), size - offset))
            let n = try FileIO.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<want]), at: offset, path: path)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            offset += UInt64(n)
        }
        guard offset == size else { throw S3Storage.changed(path) }
        return h.finalize().hex
    }

    // MARK: Keys, URLs, errors

    /// The key in the bucket; refuses what `DirectoryStorage` refuses (empty, absolute, `.`/`..`
    /// segments, `//`) and control characters, which S3's XML listings cannot carry.
    func objectKey(_ key: String) throws(MVCError) -> String {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !key.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }),
              !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw MVCError(.unsafePath, "refusing remote key '\(key)'")
        }
        return prefix + key
    }

    /// The URL and Host header of a request for `objectKey` (nil: the bucket itself).
    func target(_ objectKey: String?) -> (host: String, path: String) {
        var path = endpoint.basePath
        if endpoint.pathStyle { path += "/" + SigV4Signer.uriEncode(bucket) }
        if let objectKey {
            path += "/" + SigV4Signer.uriEncodePath(objectKey)
        } else if !endpoint.pathStyle || path.isEmpty {
            path += "/"
        }
        return (endpoint.pathStyle ? endpoint.hostHeader : bucket + "." + endpoint.hostHeader, path)
    }

    func url(forKey key: String) throws(MVCError) -> String {
        let t = target(try objectKey(key))
        return "\(endpoint.scheme)://\(t.host)\(t.path)"
    }

    private func describe(_ key: String) -> String { "s3://\(bucket)/\(prefix)\(key)" }

    private func moved(_ key: String) -> MVCError {
        MVCError(.refMoved, "remote ref '\(key)' moved since it was read", hint: "fetch, then push again")
    }

    private func missing(_ key: String) -> MVCError {
        MVCError(.io, "cannot read '\(describe(key))': no such key", hint: "the remote is missing a file; run 'mvc fsck --remote'")
    }

    private static func changed(_ path: String) -> MVCError {
        MVCError(.io, "'\(path)' changed while it was being uploaded", hint: "make sure nothing writes to it, then push again")
    }

    private func noSuchBucket() -> MVCError {
        MVCError(.pathNotFound, "bucket '\(bucket)' does not exist at \(endpoint.scheme)://\(endpoint.hostHeader)",
                 hint: "create it, or check the remote URL, AWS_ENDPOINT_URL and AWS_REGION")
    }

    /// An unexpected answer as an error: the HTTP status, S3's error code and message, and a hint for
    /// the causes a user can fix.
    func failure(_ r: S3Response, action: String, subject: String) -> MVCError {
        let code = r.errorCode ?? ""
        if code == "NoSuchBucket" || (r.status == 404 && code.isEmpty && action == "list") { return noSuchBucket() }
        var detail = "HTTP \(r.status)"
        if !code.isEmpty { detail += " \(code)" }
        if let message = S3XML.first("Message", in: r.text), !message.isEmpty { detail += ": \(message)" }
        let hint: String?
        switch code {
        case "SignatureDoesNotMatch":
            hint = "check the secret key (AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key)"
        case "InvalidAccessKeyId":
            hint = "check the access key (AWS_ACCESS_KEY_ID or the profile's aws_access_key_id)"
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            hint = "the session credentials expired; refresh them (AWS_SESSION_TOKEN)"
        case "RequestTimeTooSkewed":
            hint = "the system clock is wrong; synchronise it (NTP)"
        case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
            hint = "the bucket is in another region; set AWS_REGION"
        case "AccessDenied", "AllAccessDisabled":
            hint = "the credentials may not \(action) in bucket '\(bucket)' (S3 also answers this for a missing key when they may not list the bucket); check its policy and the IAM permissions"
        case "SlowDown", "InternalError", "ServiceUnavailable":
            hint = "the server is overloaded or failing; try again later"
        default:
            hint = r.status == 301 ? "the bucket is in another region; set AWS_REGION" : nil
        }
        return MVCError(.io, "cannot \(action) '\(subject)': \(detail)", hint: hint)
    }

    // MARK: Requests

    enum Retry {
        /// Safe to repeat: reads, deletes, unconditional writes of whole objects and parts.
        case idempotent
        /// Repeated only when the server certainly did not apply it (no connection, 503 Slow Down).
        case unlessProcessed
    }

    enum RequestBody {
        case none
        case bytes([UInt8])
        case data(Data, sha256: String)
        /// An open file's first `size` bytes (read with `pread`: its offset is left alone).
        case file(path: String, fd: Int32, size: UInt64, sha256: String)
    }

    /// Signs and sends a request, retrying with backoff as `retry` allows. Returns any HTTP answer
    /// (callers decide what a status means); throws when no answer came.
    func perform(_ method: String, objectKey: String?, query: [(String, String)] = [], headers: [String: String] = [:],
                 body: RequestBody = .none, retry: Retry, action: String, subject: String) throws(MVCError) -> S3Response {
        let (host, path) = target(objectKey)
        let payloadHash: String
        let transport: S3HTTPClient.Body
        switch body {
        case .none:
            payloadHash = SigV4Signer.emptyPayloadHash
            transport = .none
        case .bytes(let b):
            payloadHash = ObjectID.hash(b).hex
            transport = .data(Data(b))
        case .data(let d, let sha):
            payloadHash = sha
            transport = .data(d)
        case .file(_, let fd, let size, let sha):
            payloadHash = sha
            transport = .file(fd: fd, size: size)
        }
        let queryString = SigV4Signer.canonicalQuery(query)
        let url = "\(endpoint.scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?" + queryString)
        guard URL(string: url) != nil else { throw MVCError(.invalidArgument, "cannot build a URL for '\(subject)'") }
        var attempt = 0
        while true {
            attempt += 1
            let signed = signer.sign(method: method, host: host, path: path, query: query, headers: headers,
                                     payloadHash: payloadHash, date: SigV4Signer.amzDate(Int(time(nil))))
            let result = http.send(method, url: url, headers: signed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" },
                                   body: transport, deadline: tuning.resourceTimeout + 30)
            let canRetry = attempt < tuning.maxAttempts
            switch result {
            case .success(let r):
                let transient = r.status == 503
                    || (retry == .idempotent && ([500, 502, 504].contains(r.status) || (r.status == 400 && r.errorCode == "RequestTimeout")))
                if transient && canRetry { backoff(attempt); continue }
                return r
            case .failure(let f) where f.local:
                throw MVCError(.io, "cannot \(action) '\(subject)': \(f.message)",
                               hint: "leave the files alone while mvc sends them, then run the command again")
            case .failure(let f):
                if canRetry && (retry == .idempotent || f.notSent) { backoff(attempt); continue }
                let tries = attempt > 1 ? " (\(attempt) attempts)" : ""
                throw MVCError(.io, "cannot \(action) '\(subject)': \(f.message)\(tries)",
                               hint: "check the network and the endpoint \(endpoint.scheme)://\(endpoint.hostHeader)")
            }
        }
    }

    private func backoff(_ attempt: Int) {
        let delay = tuning.retryBaseDelay * pow(4, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
        if delay > 0 { usleep(UInt32(min(delay, 60) * 1_000_000)) }
    }

    private static func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }

    /// `s3://bucket[/prefix]` -> bucket and the prefix, empty or ending in `/`.
    static func parse(url: String) throws(MVCError) -> (bucket: String, prefix: String) {
        let hint = "write the remote as s3://BUCKET or s3://BUCKET/PREFIX"
        guard url.hasPrefix("s3://") else { throw MVCError(.invalidArgument, "'\(url)' is not an s3:// URL", hint: hint) }
        let rest = url.dropFirst(5)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let bucket = String(rest[..<slash])
        let bucketChars = bucket.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
        guard (3...63).contains(bucket.utf8.count), bucketChars, !bucket.hasPrefix("."), !bucket.hasPrefix("-"),
              !bucket.hasSuffix("."), !bucket.hasSuffix("-"), !bucket.contains("..") else {
            throw MVCError(.invalidArgument, "invalid bucket name '\(bucket)' in '\(url)'",
                           hint: "bucket names are 3 to 63 lowercase letters, digits, dots and hyphens")
        }
        var prefix = slash < rest.endIndex ? String(rest[rest.index(after: slash)...]) : ""
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if prefix.isEmpty { return (bucket, "") }
        let parts = prefix.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }), !prefix.contains("?"), !prefix.contains("#"),
              !prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw MVCError(.invalidArgument, "invalid prefix '\(prefix)' in '\(url)'", hint: hint)
        }
        return (bucket, prefix + "/")
    }
}

// MARK: - Endpoint

/// Where requests go. A configured endpoint (`AWS_ENDPOINT_URL[_S3]`) gets path-style addressing,
/// which every S3-compatible server understands; AWS itself gets virtual-host style.
struct S3Endpoint: Sendable, Equatable {
    var scheme: String
    /// Host name, IPv4 address or bracketed IPv6 address.
    var host: String
    /// nil for the scheme's default port.
    var port: Int?
    /// A path the server is mounted under, without a trailing slash; usually empty.
    var basePath: String
    var pathStyle: Bool
    var isAWS: Bool

    /// The Host header as curl sends it: the port only when it is not the scheme's default.
    var hostHeader: String { port.map { "\(host):\($0)" } ?? host }

    init(environment: [String: String], region: String, bucket: String) throws(MVCError) {
        let configured = [environment["AWS_ENDPOINT_URL_S3"], environment["AWS_ENDPOINT_URL"]].compactMap { $0 }.first { !$0.isEmpty }
        guard let configured else {
            scheme = "https"
            host = "s3.\(region).amazonaws.com" + (region.hasPrefix("cn-") ? ".cn" : "")
            port = nil
            basePath = ""
            // Dots in a bucket name break the *.s3 TLS wildcard certificate.
            pathStyle = bucket.contains(".")
            isAWS = true
            return
        }
        let hint = "set AWS_ENDPOINT_URL to a URL such as http://127.0.0.1:9000 or https://s3.example.com"
        guard let c = URLComponents(string: configured), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = c.host, !host.isEmpty, c.query == nil, c.fragment == nil, c.user == nil else {
            throw MVCError(.invalidArgument, "invalid S3 endpoint URL '\(configured)'", hint: hint)
        }
        self.scheme = scheme
        self.host = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        port = c.port.flatMap { $0 == defaultPort ? nil : $0 }
        var path = c.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
        pathStyle = true
        isAWS = false
    }
}

// MARK: - Credentials and profiles

struct AWSCredentials: Sendable, Equatable {
    var accessKey: String
    var secretKey: String
    var sessionToken: String?
}

/// The environment and the `~/.aws/credentials` and `~/.aws/config` profile it selects.
struct AWSProfiles {
    let environment: [String: String]
    let profile: String
    let credentialsFile: String?
    let configFile: String?
    /// The profile's section of each file, when there is one.
    let credentialsSection: [String: String]?
    let configSection: [String: String]?

    init(environment: [String: String]) throws(MVCError) {
        self.environment = environment
        let explicit = [environment["AWS_PROFILE"], environment["AWS_DEFAULT_PROFILE"]].compactMap { $0 }.first { !$0.isEmpty }
        profile = explicit ?? "default"
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        credentialsFile = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home.map { $0 + "/.aws/credentials" }
        configFile = environment["AWS_CONFIG_FILE"] ?? home.map { $0 + "/.aws/config" }
        let credentials = try credentialsFile.flatMap { (p) throws(MVCError) in try AWSProfiles.parseINI(p) } ?? [:]
        let config = try configFile.flatMap { (p) throws(MVCError) in try AWSProfiles.parseINI(p) } ?? [:]
        credentialsSection = credentials[profile]
        // ~/.aws/config names profiles `[profile NAME]`, but the default one `[default]`.
        configSection = config["profile \(profile)"] ?? (profile == "default" ? config["default"] : nil)
        let hasEnvironmentKeys = environment["AWS_ACCESS_KEY_ID"].map { !$0.isEmpty } ?? false
        if explicit != nil && credentialsSection == nil && configSection == nil && !hasEnvironmentKeys {
            throw MVCError(.invalidArgument, "AWS profile '\(profile)' is not in '\(credentialsFile ?? "~/.aws/credentials")' or '\(configFile ?? "~/.aws/config")'",
                           hint: "add a [\(profile)] section to ~/.aws/credentials, or unset AWS_PROFILE")
        }
    }

    func configValue(_ name: String) -> String? {
        configSection?[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    func credentials() throws(MVCError) -> AWSCredentials {
        let hint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add aws_access_key_id and aws_secret_access_key to the [\(profile)] profile of ~/.aws/credentials (AWS_PROFILE picks another profile)"
        let id = environment["AWS_ACCESS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 }
        let secret = environment["AWS_SECRET_ACCESS_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if id != nil || secret != nil {
            guard let id, let secret else {
                throw MVCError(.invalidArgument, "\(id == nil ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") is not set but \(id == nil ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") is",
                               hint: "set both, or neither to use ~/.aws/credentials")
            }
            return AWSCredentials(accessKey: id, secretKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
        }
        for (section, file) in [(credentialsSection, credentialsFile), (configSection, configFile)] {
            guard let section, let id = section["aws_access_key_id"], !id.isEmpty else { continue }
            guard let secret = section["aws_secret_access_key"], !secret.isEmpty else {
                throw MVCError(.invalidArgument, "profile '\(profile)' in '\(file ?? "")' has aws_access_key_id but no aws_secret_access_key", hint: hint)
            }
            return AWSCredentials(accessKey: id, secretKey: secret, sessionToken: section["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 })
        }
        throw MVCError(.invalidArgument, "no AWS credentials for the S3 remote", hint: hint)
    }

    /// `[section]` and `key = value` lines; `#` and `;` start comments. Names are lowercased. A
    /// missing file is an empty one.
    static func parseINI(_ path: String) throws(MVCError) -> [String: [String: String]] {
        guard let bytes = try FileIO.readSmallFile(path, limit: 1 << 20) else { return [:] }
        var out: [String: [String: String]] = [:]
        var section: String? = nil
        for raw in String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                // `[profile  x]` has one name whatever the spacing.
                let words = name.split(separator: " ", omittingEmptySubsequences: true)
                section = words.joined(separator: " ")
                if out[section!] == nil { out[section!] = [:] }
                continue
            }
            guard let section, let eq = line.firstIndex(of: "=") else { continue }
            let name = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            out[section]![name] = value
        }
        return out
    }
}

// MARK: - Signature Version 4

/// AWS Signature Version 4, header form, for one service and region.
struct SigV4Signer: Sendable {
    var accessKey: String
    var secretKey: String
    var sessionToken: String?
    var region: String
    var service: String

    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The headers to send: `headers` (names lowercased) plus x-amz-date, x-amz-content-sha256,
    /// x-amz-security-token when there is a session token, and authorization. Every header in
    /// `headers`, and `host`, is signed. `path` is already URI-encoded; `query` is not.
    func sign(method: String, host: String, path: String, query: [(String, String)], headers: [String: String],
              payloadHash: String, date: String) -> [String: String] {
        var all: [String: String] = [:]
        for (k, v) in headers { all[k.lowercased()] = v }
        all["x-amz-date"] = date
        all["x-amz-content-sha256"] = payloadHash
        if let sessionToken { all["x-amz-security-token"] = sessionToken }
        var signed = all
        signed["host"] = host
        all["authorization"] = authorization(method: method, path: path, query: query, headers: signed, payloadHash: payloadHash, date: date)
        return all
    }

    /// The Authorization header for headers that already hold host and x-amz-date.
    func authorization(method: String, path: String, query: [(String, String)], headers: [String: String],
                       payloadHash: String, date: String) -> String {
        let (request, signedHeaders) = SigV4Signer.canonicalRequest(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        let day = String(date.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(date)\n\(scope)\n\(ObjectID.hash(Array(request.utf8)).hex)"
        var key = Self.hmacSHA256(key: Array("AWS4\(secretKey)".utf8), Array(day.utf8))
        key = Self.hmacSHA256(key: key, Array(region.utf8))
        key = Self.hmacSHA256(key: key, Array(service.utf8))
        key = Self.hmacSHA256(key: key, Array("aws4_request".utf8))
        let signature = Self.hexString(Self.hmacSHA256(key: key, Array(stringToSign.utf8)))
        return "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
    }

    static func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [String: String],
                                 payloadHash: String) -> (request: String, signedHeaders: String) {
        let sorted = headers.map { (name: $0.key.lowercased(), value: canonicalHeaderValue($0.value)) }.sorted { $0.name < $1.name }
        let canonicalHeaders = sorted.map { "\($0.name):\($0.value)\n" }.joined()
        let signedHeaders = sorted.map(\.name).joined(separator: ";")
        let request = [method, path.isEmpty ? "/" : path, canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash].joined(separator: "\n")
        return (request, signedHeaders)
    }

    /// Names and values URI-encoded (`/` too), sorted by name then value.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0), uriEncode($0.1)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Trimmed, inner runs of spaces collapsed to one.
    static func canonicalHeaderValue(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func amzDate(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(parts.tm_year + 1900, 4) + pad(parts.tm_mon + 1, 2) + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + pad(parts.tm_min, 2) + pad(parts.tm_sec, 2) + "Z"
    }
}

extension SigV4Signer {
    /// HMAC-SHA256 (RFC 2104) over the project's SHA-256.
    static func hmacSHA256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var k = key.count > 64 ? ObjectID.hash(key).bytes : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        let inner = SHA256()
        inner.update(k.map { $0 ^ 0x36 })
        inner.update(message)
        let outer = SHA256()
        outer.update(k.map { $0 ^ 0x5c })
        outer.update(inner.finalize().bytes)
        return outer.finalize().bytes
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
            || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
    }

    /// AWS URI encoding: every UTF-8 byte but A-Z a-z 0-9 - . _ ~ as %XX (uppercase hex).
    static func uriEncode(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for c in s.utf8 {
            if isUnreserved(c) {
                out.append(c)
            } else {
                out.append(UInt8(ascii: "%")); out.append(hex[Int(c >> 4)]); out.append(hex[Int(c & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Each `/`-separated segment URI-encoded, the slashes kept (S3 does not normalise paths).
    static func uriEncodePath(_ key: String) -> String {
        key.split(separator: "/", omittingEmptySubsequences: false).map { uriEncode(String($0)) }.joined(separator: "/")
    }
}

// MARK: - XML

/// Just enough XML for S3's answers, which are flat and never use CDATA: the text of `<Tag>...</Tag>`
/// elements, entities decoded. (FoundationXML would add a libxml2 dependency to every mvc binary.)
enum S3XML {
    static func values(_ tag: String, in text: String) -> [String] {
        var out: [String] = []
        let open = "<\(tag)>", close = "</\(tag)>"
        var rest = text[...]
        while let a = rest.range(of: open) {
            guard let b = rest.range(of: close, range: a.upperBound..<rest.endIndex) else { break }
            out.append(unescape(rest[a.upperBound..<b.lowerBound]))
            rest = rest[b.upperBound...]
        }
        return out
    }

    static func first(_ tag: String, in text: String) -> String? {
        let open = "<\(tag)>", close = "</\(tag)>"
        guard let a = text.range(of: open), let b = text.range(of: close, range: a.upperBound..<text.endIndex) else { return nil }
        return unescape(text[a.upperBound..<b.lowerBound])
    }

    static func unescape(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 {
                let entity = s[s.index(after: i)..<semi]
                var scalar: Unicode.Scalar? = nil
                switch entity {
                case "lt": scalar = "<"
                case "gt": scalar = ">"
                case "amp": scalar = "&"
                case "quot": scalar = "\""
                case "apos": scalar = "'"
                default:
                    if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                        scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                    } else if entity.hasPrefix("#") {
                        scalar = UInt32(entity.dropFirst(), radix: 10).flatMap(Unicode.Scalar.init)
                    }
                }
                if let scalar {
                    out.unicodeScalars.append(scalar)
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

// MARK: - HTTP

/// An HTTP answer: status, headers with lowercased names, the whole body.
struct S3Response: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    /// S3's `<Code>` from an error body.
    var errorCode: String? { status >= 300 ? S3XML.first("Code", in: text) : nil }
}

/// A request that got no HTTP answer.
struct S3TransportFailure: Error, Sendable {
    var message: String
    /// The request certainly never reached the server (no connection), so any request may be retried.
    var notSent: Bool
    /// The failure is here, not on the network (the body could not be read): never retried.
    var local = false
}

/// Synchronous HTTP through libcurl (`CMVCHTTP`, loaded on first use): RemoteStorage is
/// synchronous, its callers are threads. Connections are kept open between requests (a pool of up
/// to 16 idle libcurl handles).
final class S3HTTPClient: Sendable {
    enum Body {
        case none
        case data(Data)
        /// An open file's first `size` bytes.
        case file(fd: Int32, size: UInt64)
    }

    private let idleTimeout: Double

    /// Throws when libcurl cannot be loaded: only S3 remotes need it.
    init(tuning: S3Storage.Tuning) throws(MVCError) {
        idleTimeout = tuning.requestTimeout
        var reason = [CChar](repeating: 0, count: 256)
        if mvc_http_load(&reason, reason.count) != 0 {
            let why = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw MVCError(.io, "S3 remotes need libcurl: \(why)", hint: "install it (Debian: apt-get install -y libcurl4)")
        }
    }

    /// Blocks until the answer, a transport error, or `deadline` seconds.
    func send(_ method: String, url: String, headers: [String], body: Body, deadline: Double) -> Result<S3Response, S3TransportFailure> {
        var response = mvc_http_response()
        defer { mvc_http_response_free(&response) }
        let timeout = Int(deadline * 1000), idle = Int(idleTimeout * 1000)
        let cHeaders = headers.map { strdup($0) }
        defer { for h in cHeaders { free(h) } }
        let rc: Int32 = cHeaders.map { UnsafePointer($0) }.withUnsafeBufferPointer { list in
            switch body {
            case .none:
                return mvc_http_perform(method, url, list.baseAddress, Int32(list.count), nil, -1, 0, timeout, idle, &response)
            case .data(let d):
                return d.withUnsafeBytes { raw in
                    // A non-nil pointer even for no bytes: that still means "this request has a body".
                    let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!
                    return mvc_http_perform(method, url, list.baseAddress, Int32(list.count), base, -1, UInt64(raw.count), timeout, idle, &response)
                }
            case .file(let fd, let size):
                return mvc_http_perform(method, url, list.baseAddress, Int32(list.count), nil, fd, size, timeout, idle, &response)
            }
        }
        guard rc == 0 else { return .failure(S3TransportFailure(message: "libcurl is not loaded", notSent: false, local: true)) }
        guard response.curl_code == 0 else {
            let message = withUnsafeBytes(of: response.error) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return .failure(S3TransportFailure(message: message, notSent: response.not_sent != 0, local: response.local_error != 0))
        }
        var fields: [String: String] = [:]
        if let h = response.headers {
            let text = String(decoding: UnsafeRawBufferPointer(start: h, count: response.headers_len), as: UTF8.self)
            // Lines end in CRLF, or a bare LF from some servers (libcurl passes them on as sent).
            for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                fields[name] = fields[name].map { $0 + ", " + value } ?? value
            }
        }
        let bytes = response.body.map { [UInt8](UnsafeBufferPointer(start: $0, count: response.body_len)) } ?? []
        return .success(S3Response(status: response.status, headers: fields, body: bytes))
    }
}
