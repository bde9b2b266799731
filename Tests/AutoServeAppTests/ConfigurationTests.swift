import AutoServeApp
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
