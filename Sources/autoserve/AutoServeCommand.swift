import ArgumentParser
import AutoServeApp
import Foundation
import Logging
import PluginLoader
import ServingCore

/// `autoserve`: serve a folder of Swift models over HTTP, generate their glue, or check them.
@main
struct AutoServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoserve",
        abstract: "Serve every model folder's transform_predict as an HTTP route.",
        discussion: """
            Every setting is an environment variable and a flag of `serve`, `generate` and `check`; a flag wins.

            \(ServerConfiguration.environmentHelp)
            """,
        subcommands: [Serve.self, Generate.self, Check.self, Score.self, Drift.self, HealthCheck.self, ReadVersion.self, Confine.self],
        defaultSubcommand: Serve.self
    )
}

extension AutoServeCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the models (the default command).")

        @OptionGroup var options: ServeOptions

        func run() async throws {
            let configuration = try loadConfiguration(options)
            let logger = bootstrapLogging(configuration.logLevel)
            AutoServeServer.protectProcessMemory()
            defer { ProcessLoader.processEnds() }
            do {
                let server = try await AutoServeServer.build(configuration: configuration, logger: logger)
                try await server.run()
            } catch let error as ConfigurationError {
                logger.critical("cannot start: \(error.message)")
                throw ExitCode(78)
            } catch is StopTimeout {
                throw ExitCode.failure
            }
        }
    }

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print (or write) ServeModels.swift, or the OpenAPI document, for a folder of models.")

        @Argument(help: "The folder of model folders (default: MODELS_DIR).") var directory: String?
        @Option(name: .shortAndLong, help: "Write the file here instead of printing it.") var output: String?
        @Flag(help: "Print the OpenAPI 3.1 document the server would serve for these models (as GET /$baseUrl/openapi.json), not the Swift glue.")
        var openapi = false
        @OptionGroup var options: ServeOptions

        func run() async throws {
            let configuration = try loadConfiguration(options)
            let generated: ServeModelsGeneration.Output
            do {
                generated = try await ServeModelsGeneration.run(directory: directory ?? configuration.modelsDir, configuration: configuration)
            } catch {
                FileHandle.standardError.write(Data("autoserve generate: \(error.message)\n".utf8))
                throw ExitCode.failure
            }
            let document = openapi ? generated.openAPI(configuration) : generated.document
            if let output {
                try OutputFile.write(document, to: output)
            } else {
                print(document, terminator: "")
            }
            for diagnostic in generated.diagnostics {
                FileHandle.standardError.write(Data("error: \(diagnostic)\n".utf8))
            }
            if !generated.diagnostics.isEmpty { throw ExitCode.failure }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build every model folder, run its examples, and exit non-zero on any failure.",
            discussion: "Run it in a models repository's CI before pushing."
        )

        @Argument(help: "The folder of model folders (default: MODELS_DIR).") var directory: String?
        @OptionGroup var options: ServeOptions

        func run() async throws {
            let configuration = try loadConfiguration(options)
            let logger = bootstrapLogging(configuration.logLevel == .info ? .warning : configuration.logLevel)
            defer { ProcessLoader.processEnds() }
            let report = await ModelCheck.run(directory: directory ?? configuration.modelsDir, configuration: configuration, logger: logger, progress: true)
            print(report.text, terminator: "")
            if !report.passed { throw ExitCode.failure }
        }
    }
}

extension AutoServeCommand {
    /// The container's HEALTHCHECK: `GET /healthz` on this machine's `PORT`, exit 0 when it answers 200.
    ///
    /// The image's HEALTHCHECK runs it in exec form, so it follows a `PORT` given with `--env-file` and needs
    /// neither a shell nor curl in the image.
    struct HealthCheck: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "healthcheck",
            abstract: "Exit 0 when the server on this machine answers GET /healthz with 200 (the container's HEALTHCHECK)."
        )

        @Option(help: "The port to probe (default: PORT, else 8080).") var port: Int?
        @Option(help: "Seconds to wait for the answer.") var timeout: Int = 3

        func run() async throws {
            let port = port ?? ProcessInfo.processInfo.environment["PORT"].flatMap(Int.init) ?? 8080
            let status = await HealthProbe.status(port: port, timeoutSeconds: timeout)
            guard status == 200 else {
                FileHandle.standardError.write(
                    Data("autoserve healthcheck: 127.0.0.1:\(port)/healthz \(status.map { "answered \($0)" } ?? "did not answer")\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}

/// Reads the environment and the flags; a value that cannot be used stops the command with its reason.
func loadConfiguration(_ options: ServeOptions) throws -> ServerConfiguration {
    do {
        return try options.configuration(environment: ProcessInfo.processInfo.environment)
            .resolvingPaths(against: FileManager.default.currentDirectoryPath)
    } catch {
        FileHandle.standardError.write(Data("autoserve: \(error.message)\n".utf8))
        throw ExitCode(78)
    }
}

func bootstrapLogging(_ level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in LogfmtLogHandler(label: label, level: level) }
    var logger = Logger(label: "autoserve")
    logger.logLevel = level
    return logger
}
