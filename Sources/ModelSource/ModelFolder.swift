public import ServingCore

/// A model folder at one version: what the source hands to the builder.
public struct ModelFolder: Sendable, Hashable {
    /// The folder's name, which is the model's name and route.
    public var name: ModelName
    /// The content version: a hash of every file's path and bytes (a git tree id in git mode).
    public var version: String
    /// Where the folder was found; the builder reads the exported copy, never this.
    public var sourcePath: String

    public init(name: ModelName, version: String, sourcePath: String) {
        self.name = name
        self.version = version
        self.sourcePath = sourcePath
    }

    /// The first 12 characters of the version, for file and module names and for display.
    public var shortVersion: String { String(version.prefix(12)) }
}

/// A folder the source skipped because it breaks a rule, with what to fix.
public struct RejectedFolder: Sendable, Hashable {
    public var folderName: String
    public var diagnostic: Diagnostic

    public init(folderName: String, diagnostic: Diagnostic) {
        self.folderName = folderName
        self.diagnostic = diagnostic
    }
}

/// What one scan of a models checkout found.
public struct SourceSnapshot: Sendable {
    public var models: [ModelFolder]
    public var rejected: [RejectedFolder]
    /// The commit being served, in git mode.
    public var commit: String?
    /// Events of the sync an operator should see in the log (a newly trusted SSH host key).
    public var notices: [String] = []

    public init(models: [ModelFolder], rejected: [RejectedFolder], commit: String? = nil) {
        self.models = models
        self.rejected = rejected
        self.commit = commit
    }
}

/// A source that cannot be read at all; nothing that serves changes.
public struct SourceError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
