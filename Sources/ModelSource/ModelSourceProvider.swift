/// The Source stage: says which model folders exist at which versions, and exports a version read-only.
///
/// Local mode scans `MODELS_DIR`; git mode fetches and reads the tree of the branch tip. Either way the
/// rest of the pipeline sees the same `SourceSnapshot` and exported folders.
public protocol ModelSourceProvider: Sendable {
    /// Brings the source up to date and lists its model folders; a failure changes nothing that serves.
    func sync() async throws(SourceError) -> SourceSnapshot
    /// Writes a version's files to their own read-only folder and returns its path.
    func export(_ folder: ModelFolder) async throws -> String
    /// A short, secret-free description for logs and the index (a path or a URL without credentials).
    var displayName: String { get }
}

extension LocalModelSource: ModelSourceProvider {
    public func sync() async throws(SourceError) -> SourceSnapshot {
        try scan()
    }

    public func export(_ folder: ModelFolder) async throws -> String {
        try VersionExporter(stateDirectory: stateDirectory, maxModelBytes: maxModelBytes).export(folder)
    }

    public var displayName: String { directory }
}
