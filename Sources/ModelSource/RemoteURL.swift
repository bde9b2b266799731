import Foundation

/// A `MODELS_REPO` URL split from the credentials written into it (`https://user:token@host/repo`).
///
/// libgit2 stores the URL it clones from in the clone's config, a file other users can read: the stored URL
/// never carries user information, and the credential callback answers from the values kept here, in
/// memory. Every text that shows a URL goes through `redact`, which hides user information whatever
/// characters it holds.
struct RemoteURL: Sendable, Hashable {
    /// The URL without its password: what libgit2 stores (logs show it through `redact`).
    var url: String
    /// The user name and password of the URL, percent-decoded; `nil` when it has none.
    var username: String?
    var password: String?

    /// The user name stays in the URL (SSH needs it there, and it is no secret); the password leaves it.
    init(_ text: String) {
        guard let scheme = text.range(of: "://"), let at = Self.userinfoEnd(in: text[scheme.upperBound...]) else {
            url = text
            return
        }
        let userinfo = text[scheme.upperBound..<at]
        let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] } ?? userinfo
        let password = userinfo.firstIndex(of: ":").map { userinfo[userinfo.index(after: $0)...] }
        url = String(text[..<scheme.upperBound]) + (user.isEmpty ? "" : "\(user)@") + String(text[text.index(after: at)...])
        username = user.isEmpty ? nil : (user.removingPercentEncoding ?? String(user))
        self.password = password.map { $0.removingPercentEncoding ?? String($0) }
    }

    /// The `@` that ends the user information of the URL whose authority starts `rest`: the last `@` before
    /// the end of the URL (white space or the end of the text). A path holding an `@` is hidden too, which
    /// is the safe way to be wrong.
    static func userinfoEnd(in rest: Substring) -> String.Index? {
        let end = rest.firstIndex { $0 == " " || $0 == "\n" || $0 == "\t" } ?? rest.endIndex
        return rest[..<end].lastIndex(of: "@")
    }

    /// The text with the user information of every URL in it replaced by `<redacted>`.
    static func redact(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            result += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            if let at = userinfoEnd(in: rest) {
                result += "<redacted>@"
                rest = rest[rest.index(after: at)...]
            }
        }
        return result + rest
    }
}
