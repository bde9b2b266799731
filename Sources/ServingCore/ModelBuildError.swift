/// A model folder that cannot be built, with what to fix; the other models are not affected.
public struct ModelBuildError: Error, Sendable, Codable {
    public var diagnostic: Diagnostic
    public var log: String?
    /// True when the failure is not the sources' (a compiler killed or timed out, a full disk): the next sync
    /// tries the same version again instead of waiting for the folder to change.
    public var retryable: Bool

    public init(_ diagnostic: Diagnostic, log: String? = nil, retryable: Bool = false) {
        self.diagnostic = diagnostic
        self.log = log
        self.retryable = retryable
    }
}
