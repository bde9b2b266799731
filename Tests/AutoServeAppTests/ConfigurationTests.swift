import AutoServeApp
import Foundation
import ServingCore
import Testing

struct ConfigurationTests {
    @Test func defaultsMatchTheSpec() throws {
        let configuration = try ServerConfiguration.fromEnvironment([:])
        #expect(configuration.port == 8080)
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.baseUrl == "")
        #expect(configuration.modelsBranch == "main")
        #expect(configuration.modelsDir == "./models_serve")
        #expect(configuration.stateDir == "./.autoserve")
        #expect(configuration.syncInterval == .seconds(86_400))
        #expect(configuration.maxBodyBytes == 1_048_576)
        #expect(configuration.modelTimeout == .milliseconds(10_000))
        #expect(configuration.modelsRepo == nil)
    }

    @Test func readsEveryKindOfValue() throws {
        let configuration = try ServerConfiguration.fromEnvironment([
            "baseUrl": "/api/v1/", "PORT": "80", "SYNC_INTERVAL": "1h30m", "SYNC_AT": "03:30", "MODELS_REPO": "https://git.example/m.git",
            "GIT_TOKEN": "t0ken", "LOG_LEVEL": "DEBUG", "MODEL_TIMEOUT_MS": "250",
        ])
        #expect(configuration.baseUrl == "api/v1")
        #expect(configuration.port == 80)
        #expect(configuration.syncInterval == .seconds(5400))
        #expect(configuration.syncAtMinute == 210)
        #expect(configuration.gitToken?.value == "t0ken")
        #expect(configuration.logLevel == .debug)
        #expect(configuration.modelTimeout == .milliseconds(250))
    }

    @Test func relativePathsAreResolvedAgainstTheWorkingDirectory() throws {
        var configuration = try ServerConfiguration.fromEnvironment([
            "GIT_SSH_KEY": "keys/id_ed25519", "INFERENCE_LOG": "../logs/rows.jsonl", "SWIFTC": "swiftc", "MODELS_REPO": "../models.git",
        ])
        configuration = configuration.resolvingPaths(against: "/srv/app")
        #expect(configuration.stateDir == "/srv/app/.autoserve")
        #expect(configuration.modelsDir == "/srv/app/models_serve")
        #expect(configuration.gitSSHKey == "/srv/app/keys/id_ed25519")
        #expect(configuration.inferenceLog == "/srv/logs/rows.jsonl")
        #expect(configuration.swiftc == "swiftc", "a bare name is looked up on PATH")
        #expect(configuration.modelsRepo == "/srv/models.git")
        for url in ["https://host/m.git", "git@host:team/m.git", "ssh://git@host/m.git", "file:///srv/m.git"] {
            var remote = try ServerConfiguration.fromEnvironment(["MODELS_REPO": url])
            remote = remote.resolvingPaths(against: "/srv/app")
            #expect(remote.modelsRepo == url)
        }
    }

    @Test func durationsAreBoundedAndNeverOverflow() throws {
        #expect(try ServerConfiguration.fromEnvironment(["SYNC_INTERVAL": "366d"]).syncInterval == .seconds(366 * 86_400))
        #expect(try ServerConfiguration.fromEnvironment(["SYNC_INTERVAL": "500ms"]).syncInterval == .milliseconds(500))
        #expect(try ServerConfiguration.fromEnvironment(["SYNC_INTERVAL": "90"]).syncInterval == .seconds(90))
        for value in ["9999999999h", "367d", "0s", "1h-5m", "１h", "9223372036854775807ms", "99999999999999999999999s"] {
            #expect(throws: ConfigurationError.self, "\(value)") { try ServerConfiguration.fromEnvironment(["SYNC_INTERVAL": value]) }
        }
    }

    /// Worker processes start without any secret, and without settings that may hold one.
    @Test func workersEnvironmentHasNoSecret() {
        let server = [
            "GIT_TOKEN": "a", "ADMIN_TOKEN": "b", "WEBHOOK_SECRET": "c", "GIT_SSH_KEY": "d", "MODELS_REPO": "e", "password": "f", "gitPath": "g",
            "PATH": "/bin",
        ]
        #expect(ServerConfiguration.workerEnvironment(server) == ["PATH": "/bin"])
    }

    @Test func theOriginalNamesAreAliasesWithADeprecationNotice() throws {
        let configuration = try ServerConfiguration.fromEnvironment(["gitPath": "/srv/models.git", "usergit": "bot", "password": "pw"])
        #expect(configuration.modelsRepo == "/srv/models.git")
        #expect(configuration.gitUsername == "bot")
        #expect(configuration.gitToken?.value == "pw")
        #expect(configuration.notices.count == 3)
        #expect(configuration.notices.contains("gitPath is deprecated; rename it to MODELS_REPO"))
        let both = try ServerConfiguration.fromEnvironment(["gitPath": "/old", "MODELS_REPO": "/new"])
        #expect(both.modelsRepo == "/new")
    }

    @Test func secretsPrintRedacted() throws {
        let configuration = try ServerConfiguration.fromEnvironment(["GIT_TOKEN": "abc123", "ADMIN_TOKEN": "def456", "WEBHOOK_SECRET": "ghi789"])
        let printed = "\(configuration)"
        let leaked = printed.contains("abc123") || printed.contains("def456") || printed.contains("ghi789")
        #expect(!leaked)
        #expect(printed.contains("<redacted>"))
    }

    @Test(arguments: [
        ("SYNC_INTERVAL", "0s"), ("SYNC_INTERVAL", "5x"), ("SYNC_AT", "25:00"), ("SYNC_AT", "3:30"), ("PORT", "-1"),
        ("MODEL_ISOLATION", "docker"), ("baseUrl", "a b"), ("MODEL_TIMEOUT_MS", "0"),
    ])
    func unusableValuesAreErrorsNamingTheSetting(name: String, value: String) {
        #expect {
            try ServerConfiguration.fromEnvironment([name: value])
        } throws: { error in
            (error as? ConfigurationError)?.message.hasPrefix(name) == true
        }
    }
}

/// Secrets from files (`NAME_FILE`, a mounted Kubernetes Secret) and the warning for a secret on the command line.
struct SecretSettingTests {
    @Test func everySecretMayComeFromAFile() throws {
        let folder = try Paths.temporaryFolder("secret-files")
        try "admin-token-from-a-file\n".write(toFile: "\(folder)/admin", atomically: true, encoding: .utf8)
        try "cache-key-from-a-file-0123456789\r\n".write(toFile: "\(folder)/cache", atomically: true, encoding: .utf8)
        try "".write(toFile: "\(folder)/empty", atomically: true, encoding: .utf8)
        let configuration = try ServerConfiguration.fromEnvironment(["ADMIN_TOKEN_FILE": "\(folder)/admin", "CACHE_KEY_FILE": "\(folder)/cache"])
        #expect(configuration.adminToken?.value == "admin-token-from-a-file")
        #expect(configuration.cacheKey?.value == "cache-key-from-a-file-0123456789")
        let failures: [([String: String], String)] = [
            (["ADMIN_TOKEN": "a", "ADMIN_TOKEN_FILE": "\(folder)/admin"], "both ADMIN_TOKEN and ADMIN_TOKEN_FILE"),
            (["GIT_TOKEN_FILE": "\(folder)/missing"], "GIT_TOKEN_FILE=\(folder)/missing is not a readable file"),
            (["WEBHOOK_SECRET_FILE": folder], "is not a readable file"),
            (["ADMIN_TOKEN_FILE": "\(folder)/empty"], "is empty"),
            (["CACHE_KEY": "short"], "CACHE_KEY is too short"),
        ]
        for (environment, message) in failures {
            do {
                _ = try ServerConfiguration.fromEnvironment(environment)
                Issue.record("\(environment) was accepted")
            } catch {
                #expect(error.message.contains(message), "\(error.message)")
                #expect(!error.message.contains("admin-token-from-a-file"), "an error never holds the secret")
            }
        }
        // A model may not be given a secret's file either.
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.fromEnvironment(["MODEL_ENV": "ADMIN_TOKEN_FILE"]) }
    }

    @Test func aSecretOnTheCommandLineIsAWarning() throws {
        let configuration = try ServeOptions.parse(["--admin-token", "token-given-as-a-flag", "--port", "9000"]).configuration(environment: [:])
        #expect(configuration.adminToken?.value == "token-given-as-a-flag")
        #expect(configuration.notices.count == 1, "\(configuration.notices)")
        #expect(configuration.notices.first?.contains("--admin-token is on the command line") == true)
        #expect(configuration.notices.first?.contains("ADMIN_TOKEN_FILE") == true)
        #expect(!configuration.notices.joined().contains("token-given-as-a-flag"))
    }
}
