import ArgumentParser
import PluginBuilder

extension AutoServeCommand {
    /// The helper the server starts to read one version's files (docs/operations.md, "Reliability"): a file that crashes a
    /// reader, or makes it hang or grow, then costs only that version. Not for people: the server runs it.
    struct ReadVersion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "read-version", abstract: "Read one model version's folder into its definition (the server runs this).", shouldDisplay: false)

        @Option var name: String
        @Option var version: String
        @Option var folder: String
        @Option var buildIdentity: String
        @Option(help: "Where the answer (JSON) is written.") var answer: String
        @Option(help: "The address space the reading may use, in bytes.") var memoryLimit: Int = HelperReading.memoryLimitBytes

        func run() async throws {
            try await HelperReading.answer(
                name: name, version: version, folder: folder, buildIdentity: buildIdentity, memoryLimit: memoryLimit, path: answer)
        }
    }
}
