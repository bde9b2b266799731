import Foundation
import ServingCore
import Testing

/// The `autoserve` binary as users run it: `check`, `generate`, `--help`, bad settings, SIGTERM.
@Suite(.serialized)
struct CommandLineTests {
    struct Run {
        var status: Int32
        var output: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], executable: String = Paths.binary) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["STATE_DIR"] = Paths.sharedState
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    @Test func checkPassesOnTheExampleModels() throws {
        let result = try Self.run(["check", Paths.modelsServe])
        #expect(result.status == 0, "\(result.output)")
        for name in ["Iris", "ChurnRisk", "HousePrice"] { #expect(result.output.contains("ok   \(name)")) }
        #expect(result.output.contains("ok   CreditScore (LightGBM model.txt, version"), "\(result.output)")
        #expect(result.output.contains("4 model(s) passed"))
    }

    /// Tried as a new user would: a fresh state folder, where the model SDK and each model compile for seconds.
    /// Without a terminal (a CI log) a line per model and phase; on one (`script`) a line rewritten in place.
    @Test func checkSaysWhatItBuildsWhileItBuilds() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let fresh = try Paths.temporaryFolder("check-progress")
        let temporary = try Paths.temporaryFolder("check-tmpdir")
        let logged = try await offThread { try Self.run(["check", models], environment: ["STATE_DIR": "\(fresh)/a", "TMPDIR": temporary]) }
        #expect(logged.status == 0, "\(logged.output)")
        // The workers that ran the examples leave no temporary folder behind.
        #expect(try Paths.workerFolders(in: temporary) == [])
        let lines = logged.output.split(separator: "\n").map(String.init)
        let sdk = try #require(lines.firstIndex { $0.hasPrefix("check: compiling the model SDK first") }, "\(logged.output)")
        let building = try #require(lines.firstIndex(of: "check: Echo building"), "\(logged.output)")
        let ready = try #require(lines.firstIndex(of: "check: Echo ready"), "\(logged.output)")
        let report = try #require(lines.firstIndex { $0.hasPrefix("ok   Echo") })
        #expect(sdk < building && building < ready && ready < report)

        let command = [Paths.binary, "check", models].map { "'\($0)'" }.joined(separator: " ")
        let shown = try await offThread {
            try Self.run(["-qec", command, "/dev/null"], environment: ["STATE_DIR": "\(fresh)/b"], executable: "/usr/bin/script")
        }
        #expect(shown.status == 0, "\(shown.output)")
        #expect(shown.output.contains("\r\u{1B}[Kcheck: building Echo · 0 of 1 done"), "\(shown.output)")
        #expect(!shown.output.contains("check: Echo building"), "a terminal gets the line in place, not a log")
    }

    @Test func checkFailsOnABrokenFolderWithTheCompilerMessage() throws {
        let folder = try Paths.modelsFolder([
            "Echo": "\(Paths.fixtures)/models/Echo",
            "CompileError": "\(Paths.fixtures)/broken/CompileError",
        ])
        let result = try Self.run(["check", folder])
        #expect(result.status == 1)
        #expect(result.output.contains("ok   Echo"))
        #expect(
            result.output.contains("FAIL CompileError: CompileError/etls.swift:7: compile error: cannot convert value of type 'String' to specified type 'Int'")
        )
    }

    @Test func generateOpenAPIPrintsTheDocumentOffline() throws {
        let result = try Self.run(["generate", "--openapi", Paths.modelsServe], environment: ["baseUrl": "api/v1"])
        #expect(result.status == 0, "\(result.output)")
        let document = try JSONParser.parse(Array(result.output.utf8))
        for name in ["Iris", "ChurnRisk", "HousePrice", "CreditScore"] { #expect(document["paths"]?["/api/v1/\(name)"]?["post"] != nil, "\(name)") }
        #expect(document["paths"]?["/api/v1/openapi.json"] != nil && document["paths"]?["/healthz"] != nil)
        #expect(document["paths"]?["/api/v1/HousePrice"]?["post"]?["requestBody"]?["required"] == .bool(true))
        #expect(document["paths"]?["/api/v1/ChurnRisk"]?["post"]?["requestBody"]?["required"] == .bool(false), "its variables may all be absent")
    }

    @Test func generatePrintsTheRegistryAndGlueOfEveryModel() throws {
        let result = try Self.run(["generate", Paths.modelsServe])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.hasPrefix("// ServeModels.swift — generated by `autoserve generate`"))
        for name in ["Iris", "ChurnRisk", "HousePrice"] {
            #expect(result.output.contains("name: \"\(name)\""))
            #expect(result.output.contains("// MARK: - \(name)"))
        }
        let broken = try Self.run(["generate", "\(Paths.fixtures)/broken"])
        #expect(broken.status == 1)
        #expect(broken.output.contains("error: BadManifest/model.yaml:3: unknown key 'exmaples'"))
    }

    /// The binary's own `--help` as a terminal shows it (`SettingsTests` checks every setting's line of it).
    @Test func helpListsEveryFlagWithItsEnvironmentVariable() throws {
        let result = try Self.run(["serve", "--help"])
        #expect(result.status == 0)
        // ArgumentParser wraps the help to the terminal's width.
        let output = result.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for (flag, variable) in [
            ("--port", "PORT"), ("--base-url", "baseUrl"), ("--models-dir", "MODELS_DIR"), ("--state-dir", "STATE_DIR"),
            ("--max-body-bytes", "MAX_BODY_BYTES"), ("--model-timeout-ms", "MODEL_TIMEOUT_MS"), ("--admin-token", "ADMIN_TOKEN"),
            ("--models-repo", "MODELS_REPO"), ("--swiftc", "SWIFTC"), ("--log-level", "LOG_LEVEL"), ("--inference-log", "INFERENCE_LOG"),
        ] {
            #expect(output.contains(flag), "\(flag)")
            #expect(output.contains("Env: \(variable)."), "\(variable)")
        }
    }

    @Test func topLevelHelpListsTheEnvironment() throws {
        let result = try Self.run(["--help"])
        #expect(result.status == 0)
        for line in ["PORT (--port)", "MODELS_DIR (--models-dir)", "baseUrl (--base-url)", "GIT_TOKEN (--git-token)", "LOG_LEVEL (--log-level)"] {
            #expect(result.output.contains(line), "\(line)")
        }
    }

    @Test(arguments: [
        (["PORT": "eighty"], "PORT=eighty is not valid"),
        (["MAX_BODY_BYTES": "-5"], "MAX_BODY_BYTES=-5 is not valid"),
        (["LOG_LEVEL": "loud"], "LOG_LEVEL=loud is not valid"),
        (["SYNC_INTERVAL": "soon"], "SYNC_INTERVAL=soon is not valid"),
        // Values that once trapped on an overflow (exit 132) or wrapped instead of being refused.
        (["SYNC_INTERVAL": "9999999999999999h"], "SYNC_INTERVAL=9999999999999999h is not valid: expected a duration from 1ms to 366d"),
        (["SYNC_INTERVAL": "99999999999999999999"], "SYNC_INTERVAL=99999999999999999999 is not valid"),
        (["SYNC_INTERVAL": "400d"], "SYNC_INTERVAL=400d is not valid"),
        (["MAX_BODY_BYTES": "99999999999"], "MAX_BODY_BYTES=99999999999 is not valid: expected a number of bytes from 1 to"),
        (["MODEL_TIMEOUT_MS": "99999999999999999999"], "MODEL_TIMEOUT_MS=99999999999999999999 is not valid"),
        (["MAX_MODEL_BYTES": "0"], "MAX_MODEL_BYTES=0 is not valid"),
        (["PORT": "+80"], "PORT=+80 is not valid"),
    ])
    func anUnusableSettingStopsWithItsName(environment: [String: String], message: String) throws {
        let result = try Self.run(["serve"], environment: environment)
        #expect(result.status == 78)
        #expect(result.output.contains(message), "\(result.output)")
    }

    @Test func aFlagOverridesTheEnvironmentAndNamesItselfWhenInvalid() throws {
        let result = try Self.run(["serve", "--port", "99999"], environment: ["PORT": "8080"])
        #expect(result.status == 78)
        #expect(result.output.contains("--port 99999 is not valid"), "\(result.output)")
    }

    @Test func sigtermStopsTheServerWithExitZero() async throws {
        let server = try BinaryServer(environment: [
            "STATE_DIR": Paths.sharedState, "MODELS_DIR": try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"]),
        ])
        let port = try await server.waitUntilListening()
        #expect(try await HTTPClient(base: "http://127.0.0.1:\(port)").get("/healthz").status == 200)
        await server.stopped()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0)
    }
}
