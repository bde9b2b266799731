import Foundation
public import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a version's folder into its `ModelDefinition`: its manifest (Yams), its Swift sources (swift-syntax) and the
/// schemas read from them, or its LightGBM or XGBoost file.
///
/// Everything it reads comes from the models repository, a stranger's input. The server reads it in a helper process
/// (``HelperReading``), so that a file that crashes a reader, or makes it hang or grow, costs only that version and
/// never the server that serves every model (docs/operations.md, "Reliability"). The tests of one stage's logic read in
/// this process (``InProcessReading``), and so does the helper itself.
public protocol DefinitionReading: Sendable {
    func read(name: ModelName, version: String, folder: String, buildIdentity: String) async throws(ModelBuildError) -> ModelDefinition
}

/// Reads in this process: for the helper process and the unit tests.
public struct InProcessReading: DefinitionReading {
    public init() {}

    public func read(name: ModelName, version: String, folder: String, buildIdentity: String) async throws(ModelBuildError) -> ModelDefinition {
        try ModelDefinitionReader(buildIdentity: buildIdentity).definition(name: name, version: version, folder: folder)
    }
}

extension DefinitionReading where Self == InProcessReading {
    /// Reads in this process (tests, and the helper itself).
    public static var inProcess: InProcessReading { InProcessReading() }
}

/// Reads in a short-lived helper process (`autoserve read-version`, the server's own binary) with a memory limit and
/// a time limit; its answer is the definition as JSON in a file, decoded and validated here.
public struct HelperReading: DefinitionReading {
    /// The address space the helper may use: room for the runtime (about 0.5 GiB of mappings) and for reading a
    /// model file of a few hundred megabytes.
    public static let memoryLimitBytes = 2 << 30
    /// The longest a read may take; a model file that takes longer fails with that reason.
    public static let timeout: Duration = .seconds(120)
    /// The largest answer the server accepts: schemas are bounded at 1 MiB, the rest is the manifest.
    static let maximumAnswerBytes = 64 << 20

    /// The `autoserve` binary.
    public let executable: String

    /// The helper's environment: none of the server's settings or secrets, only what the runtime reads, and a crash
    /// that ends it at once (the runtime's backtracer can take seconds).
    static let environment: [String: String] = {
        var kept = ProcessInfo.processInfo.environment.filter { ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"].contains($0.key) }
        kept["SWIFT_BACKTRACE"] = "enable=no"
        return kept
    }()

    public init(executable: String) {
        self.executable = executable
    }

    public func read(name: ModelName, version: String, folder: String, buildIdentity: String) async throws(ModelBuildError) -> ModelDefinition {
        let answerPath = NSTemporaryDirectory() + "autoserve-read-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: answerPath) }
        let outcome: ProcessRunner.Outcome
        do {
            outcome = try await ProcessRunner.run(
                executable,
                [
                    "read-version", "--name", name.rawValue, "--version", version, "--folder", folder, "--build-identity", buildIdentity, "--answer",
                    answerPath, "--memory-limit", "\(Self.memoryLimitBytes)",
                ], timeout: Self.timeout, background: true, environment: Self.environment)
        } catch {
            throw ModelBuildError(
                Diagnostic(file: name.rawValue, message: "cannot start the helper that reads the folder (\(executable)): \(error)"), retryable: true)
        }
        let output = outcome.output.split(separator: "\n").suffix(5).joined(separator: "\n")
        guard outcome.succeeded else {
            let what =
                outcome.timedOut
                ? "took longer than \(Int(Self.timeout.seconds)) s"
                : "crashed (\(outcome.signalled ? "signal \(outcome.exitCode)" : "exit status \(outcome.exitCode)"); a file may be malformed in a way "
                    + "no check catches yet, or reading it needed more than \(Self.memoryLimitBytes >> 30) GiB)"
            throw ModelBuildError(
                Diagnostic(file: name.rawValue, message: "reading the folder's files \(what); the version is not served"), log: output.isEmpty ? nil : output)
        }
        let data: Data
        do {
            let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: answerPath))
            defer { try? file.close() }
            data = try file.read(upToCount: Self.maximumAnswerBytes + 1) ?? Data()
        } catch {
            throw ModelBuildError(Diagnostic(file: name.rawValue, message: "the helper that reads the folder left no answer: \(error)"), retryable: true)
        }
        guard data.count <= Self.maximumAnswerBytes else {
            throw ModelBuildError(Diagnostic(file: name.rawValue, message: "the folder's description is larger than \(Self.maximumAnswerBytes >> 20) MiB"))
        }
        let answer: Answer
        do {
            answer = try JSONDecoder().decode(Answer.self, from: data)
        } catch {
            throw ModelBuildError(Diagnostic(file: name.rawValue, message: "the helper that reads the folder answered something unreadable: \(error)"))
        }
        if let error = answer.error { throw error }
        guard let definition = answer.definition, definition.name == name, definition.version == version, definition.folder == folder else {
            throw ModelBuildError(Diagnostic(file: name.rawValue, message: "the helper that reads the folder answered for another version"))
        }
        return definition
    }

    /// What the helper writes: the definition, or why there is none.
    struct Answer: Codable {
        var definition: ModelDefinition?
        var error: ModelBuildError?
    }

    /// The helper's side (`autoserve read-version`): limits its own memory and core files, reads the folder and
    /// writes the answer to `path`.
    public static func answer(name: String, version: String, folder: String, buildIdentity: String, memoryLimit: Int, path: String) async throws {
        var memory = rlimit(rlim_cur: rlim_t(memoryLimit), rlim_max: rlim_t(memoryLimit))
        _ = setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &memory)
        var core = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &core)
        var answer = Answer()
        do {
            let model = try ModelName(validating: name)
            answer.definition = try await InProcessReading().read(name: model, version: version, folder: folder, buildIdentity: buildIdentity)
        } catch let error as ModelBuildError {
            answer.error = error
        } catch {
            answer.error = ModelBuildError(Diagnostic(file: name, message: "\(error)"))
        }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .throw
        let data: Data
        do {
            data = try encoder.encode(answer)
        } catch {
            data = try encoder.encode(
                Answer(error: ModelBuildError(Diagnostic(file: "\(name)/\(ModelManifest.fileName)", message: "the folder cannot be described: \(error)"))))
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
