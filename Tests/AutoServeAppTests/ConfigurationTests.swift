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
