import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServingCore

/// The two ways to start a sync over HTTP: the operator's admin call and the git host's push webhook.
///
/// Both answer 202 with the sync's id and return at once; the sync runs in the manager, one at a time.
/// Tokens and signatures are compared in constant time, and neither is ever logged or echoed.
extension Endpoints {
    /// `POST /$baseUrl/-/sync` with `Authorization: Bearer $ADMIN_TOKEN`.
    func adminSync(_ request: Request) -> Response {
        guard let token = configuration.adminToken else {
            return notFound("the admin sync route is disabled; set ADMIN_TOKEN to enable it")
        }
        let header = request.headers[.authorization] ?? ""
        guard header.hasPrefix("Bearer "), Self.constantTimeEquals(Array(header.utf8.dropFirst(7)), Array(token.value.utf8)) else {
            logger.warning("admin sync refused: missing or wrong bearer token")
            return APIError(
                status: 401, code: "unauthorized", message: "send Authorization: Bearer <ADMIN_TOKEN> to start a sync",
                headers: [.wwwAuthenticate: "Bearer"]
            ).response()
        }
        let forwarded = request.headers[.autoServeForwarded] != nil
        let id = manager.requestSync(reason: forwarded ? "peer" : "admin")
        if !forwarded { configuration.peers?.forward(reason: "admin") }
        return accepted(id)
    }

    /// `POST /hooks/git`: a push webhook from GitHub, Gitea (HMAC-SHA256 of the body) or GitLab (token).
    func webhook(_ request: Request) async -> Response {
        guard let secret = configuration.webhookSecret else {
            return notFound("the webhook is disabled; set WEBHOOK_SECRET and configure the same secret on the git host")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch {
            return RequestVariables.tooLarge(configuration.maxBodyBytes).response()
        }
        let bytes = Array(buffer: body)
        guard Self.verify(headers: request.headers, body: bytes, secret: Array(secret.value.utf8)) else {
            logger.warning("webhook refused: missing or wrong signature")
            return APIError(
                status: 401, code: "unauthorized",
                message: "the webhook signature does not verify; set the same secret on the git host as WEBHOOK_SECRET"
            ).response()
        }
        if request.headers[.githubEvent] == "ping" {
            return json(200, Array(#"{"status":"pong"}"#.utf8))
        }
        // A delivery the host sends again (a retry, a replay by hand or by someone who captured it) is answered
        // with the sync it started, and starts nothing.
        let delivery = [HTTPField.Name.githubDelivery, .giteaDelivery, .gitlabEventUUID].lazy.compactMap { request.headers[$0] }.first
        if let delivery, let earlier = deliveries.seen(delivery) {
            let body: JSONValue = .object(["sync_id": .number(Double(earlier)), "status": "duplicate"])
            return json(200, body.jsonBytes)
        }
        if let branch = configuration.branch, let ref = (try? JSONParser.parse(bytes))?["ref"], case .string(let pushed) = ref,
            pushed != "refs/heads/\(branch)"
        {
            let body: JSONValue = .object(["status": "ignored", "reason": .string("the push is to \(pushed); this server serves refs/heads/\(branch)")])
            return json(200, body.jsonBytes)
        }
        let id = manager.requestSync(reason: "webhook")
        configuration.peers?.forward(reason: "webhook")
        if let delivery { deliveries.record(delivery, sync: id) }
        return accepted(id)
    }

    func accepted(_ id: Int) -> Response {
        let body: JSONValue = .object(["sync_id": .number(Double(id)), "status": "queued"])
        return json(202, body.jsonBytes)
    }

    /// GitHub and Gitea send `X-Hub-Signature-256: sha256=<hex>` (Gitea also `X-Gitea-Signature: <hex>`),
    /// an HMAC-SHA256 of the raw body; GitLab sends the secret itself as `X-Gitlab-Token`.
    static func verify(headers: HTTPFields, body: [UInt8], secret: [UInt8]) -> Bool {
        let key = SymmetricKey(data: secret)
        func valid(_ hex: Substring) -> Bool {
            guard let code = hexBytes(hex) else { return false }
            return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: body, using: key)
        }
        if let signature = headers[.hubSignature256] {
            guard signature.hasPrefix("sha256=") else { return false }
            return valid(signature.dropFirst(7))
        }
        if let signature = headers[.giteaSignature] {
            return valid(Substring(signature))
        }
        if let token = headers[.gitlabToken] {
            return constantTimeEquals(Array(token.utf8), secret)
        }
        return false
    }

    /// The bytes a hex string spells (either case), or `nil` when it is not hex of whole bytes.
    static func hexBytes(_ hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// Compares digests of both sides, so the time taken says nothing about the secret or its length.
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        let left = SHA256.hash(data: given)
        let right = SHA256.hash(data: expected)
        var difference: UInt8 = 0
        for (a, b) in zip(left, right) { difference |= a ^ b }
        return difference == 0
    }
}

extension HTTPField.Name {
    static let hubSignature256 = HTTPField.Name("X-Hub-Signature-256")!
    static let giteaSignature = HTTPField.Name("X-Gitea-Signature")!
    static let gitlabToken = HTTPField.Name("X-Gitlab-Token")!
    static let githubEvent = HTTPField.Name("X-GitHub-Event")!
    static let githubDelivery = HTTPField.Name("X-GitHub-Delivery")!
    static let giteaDelivery = HTTPField.Name("X-Gitea-Delivery")!
    static let gitlabEventUUID = HTTPField.Name("X-Gitlab-Event-UUID")!
    static let autoServeForwarded = HTTPField.Name(PeerSync.forwardedHeader)!
}
