import ArgumentParser
import Foundation
import Synchronization
import Testing

@testable import AutoServeApp

/// Each setting is defined once (`ServerConfiguration.settings`); `--help`, `ServeOptions`' flags, the table of
/// docs/configuration.md, the `env` files and the Kubernetes manifests agree with it, setting by setting.
struct SettingsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let settings = ServerConfiguration.settings

    /// `NAME` → its value in the `env` file, commented-out examples included (`# MODELS_REPO=https://…`).
    static func envFile(_ path: String) throws -> [String: (value: String, active: Bool)] {
        var values: [String: (String, Bool)] = [:]
        let pattern = try NSRegularExpression(pattern: #"^(# )?([A-Za-z_]+)=(.*)$"#)
        for line in try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n") {
            guard let match = pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { continue }
            let name = String(line[Range(match.range(at: 2), in: line)!])
            #expect(values[name] == nil, "\(path) sets \(name) twice")
            values[name] = (String(line[Range(match.range(at: 3), in: line)!]), match.range(at: 1).location == NSNotFound)
        }
        return values
    }

    /// The whole configuration as text, secrets included as their position (they print `<redacted>`).
    static func dump(_ configuration: ServerConfiguration) -> String {
        var text = ""
        Swift.dump(configuration, to: &text)
        return text
    }

    @Test func theDocumentedDefaultIsTheValueAnUnsetSettingHas() throws {
        let unset = Self.dump(try ServerConfiguration.fromEnvironment([:]))
        for setting in Self.settings {
            guard let value = setting.defaultValue else { continue }
            #expect(Self.dump(try ServerConfiguration.fromEnvironment([setting.environment: value])) == unset, "\(setting.environment)=\(value)")
        }
    }

    @Test func everySettingHasItsFlagAndEachFlagSetsItsSetting() throws {
        #expect(Set(ServeOptions.propertyNames) == Set(Self.settings.map(\.property)), "ServeOptions' properties and the settings differ")
        let examples = try Self.envFile("\(Self.repository)/env")
        for setting in Self.settings {
            let value = try #require(examples[setting.environment]?.value, "env has no line for \(setting.environment)").replacingOccurrences(
                of: "$(POD_NAME)", with: "x")
            guard !value.isEmpty else { continue }
            let options = try ServeOptions.parse(["--\(setting.flag)", value])
            let byFlag = Self.dump(try options.configuration(environment: [:]))
            let byEnvironment = Self.dump(try ServerConfiguration.fromEnvironment([setting.environment: value]))
            #expect(byFlag == byEnvironment, "--\(setting.flag) \(value) and \(setting.environment)=\(value) configure differently")
        }
    }

    @Test func helpListsEverySettingWithItsFlagHelpAndDefault() throws {
        let help = ServeOptions.helpMessage(columns: 10_000)
        let flags = Set(help.components(separatedBy: .whitespaces).filter { $0.hasPrefix("--") && $0 != "--help" })
        #expect(flags == Set(Self.settings.map { "--\($0.flag)" }))
        for setting in Self.settings {
            #expect(help.contains("\(setting.fullHelp). Env: \(setting.environment)."), "\(setting.environment)")
            if let value = setting.defaultValue { #expect(setting.fullHelp.contains("(default: \(value.isEmpty ? "empty" : value))")) }
        }
        for setting in Self.settings {
            #expect(ServerConfiguration.environmentHelp.contains("  \(setting.environment) (--\(setting.flag)): \(setting.fullHelp)"))
        }
    }

    /// The table of docs/configuration.md: one row per setting with its flag, its default first in the default column.
    @Test func theConfigurationTableHasEverySetting() throws {
        let readme = try String(contentsOfFile: "\(Self.repository)/docs/configuration.md", encoding: .utf8).components(separatedBy: "\n")
        let start = try #require(readme.firstIndex(of: "| variable | flag | default |"), "docs/configuration.md has no configuration table")
        var rows: [String: (flag: String, defaultText: String)] = [:]
        for line in readme[(start + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let names = cells[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]) }
            let flags = cells[2].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["`"]) }
            let defaults = cells[3].split(separator: ",", maxSplits: names.count - 1).map { $0.trimmingCharacters(in: .whitespaces) }
            for (index, name) in names.enumerated() {
                rows[name] = (index < flags.count ? flags[index] : "", index < defaults.count ? defaults[index] : cells[3])
            }
        }
        #expect(Set(rows.keys) == Set(Self.settings.map(\.environment)))
        for setting in Self.settings {
            guard let row = rows[setting.environment] else { continue }
            #expect(row.flag == "--\(setting.flag)", "\(setting.environment)")
            if let value = setting.defaultValue {
                let text = row.defaultText.replacingOccurrences(of: "`", with: "")
                #expect(text.hasPrefix(value.isEmpty ? "empty" : value), "docs/configuration.md's default of \(setting.environment) is '\(row.defaultText)'")
            }
        }
    }

    /// The `env` file (and its copy beside the kustomization, which may not reach outside its folder) sets every
    /// setting or shows it commented out; each value is valid, and one that is the default is the setting's default.
    @Test func theEnvFilesListEverySettingWithValidValues() throws {
        let env = try Self.envFile("\(Self.repository)/env")
        let copy = try String(contentsOfFile: "\(Self.repository)/deploy/kubernetes/env", encoding: .utf8)
        #expect(copy == (try String(contentsOfFile: "\(Self.repository)/env", encoding: .utf8)), "deploy/kubernetes/env is not a copy of env")
        #expect(Set(env.keys) == Set(Self.settings.map(\.environment)))
        // The container's own folders, not a developer's.
        let containerPaths: Set<String> = ["MODELS_DIR", "STATE_DIR"]
        var active: [String: String] = [:]
        for setting in Self.settings {
            guard let line = env[setting.environment] else { continue }
            if line.active {
                active[setting.environment] = line.value
                if let value = setting.defaultValue, !containerPaths.contains(setting.environment) {
                    #expect(line.value == value, "env sets \(setting.environment)=\(line.value); its default is \(value)")
                }
            }
            #expect(throws: Never.self, "\(setting.environment)=\(line.value)") { try ServerConfiguration.fromEnvironment([setting.environment: line.value]) }
        }
        #expect(throws: Never.self) { try ServerConfiguration.fromEnvironment(active) }
    }

    /// The Deployment's own `env` entries and the example Secret's keys are settings, with valid values.
    @Test func theManifestsSetOnlySettingsWithValidValues() throws {
        let deployment = try String(contentsOfFile: "\(Self.repository)/deploy/kubernetes/deployment.yaml", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"- name: ([A-Za-z_]+)\n\s+value: (\S+)"#)
        let entries = pattern.matches(in: deployment, range: NSRange(deployment.startIndex..., in: deployment)).map { match in
            (String(deployment[Range(match.range(at: 1), in: deployment)!]), String(deployment[Range(match.range(at: 2), in: deployment)!]))
        }
        #expect(entries.count >= 3, "the Deployment's env entries: \(entries)")
        let names = Set(Self.settings.map(\.environment))
        for (name, value) in entries {
            #expect(names.contains(name), "the Deployment sets \(name), which is no setting")
            #expect(throws: Never.self, "\(name)=\(value)") { try ServerConfiguration.fromEnvironment([name: value]) }
        }
        let secret = try String(contentsOfFile: "\(Self.repository)/deploy/kubernetes/secret.example.yaml", encoding: .utf8)
        let keys = secret.components(separatedBy: "stringData:")[1].split(separator: "\n").compactMap { line in
            line.hasPrefix("  ") ? line.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) : nil
        }
        #expect(Set(keys) == Set(Self.settings.filter(\.isSecret).map(\.environment)), "the example Secret holds \(keys)")
    }
}

/// Servers that share a state folder (a test's servers in one process, a fleet's replicas) check it at once.
struct WritableFolderTests {
    @Test func checksOfOneFolderAtOnceAllPass() throws {
        let folder = try Paths.temporaryFolder("write-check")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 400) { _ in
            do throws(ConfigurationError) {
                try StartupChecks.writableFolder(folder, setting: "STATE_DIR")
            } catch {
                failures.withLock { $0.append(error.message) }
            }
        }
        let failed = failures.withLock { $0 }
        #expect(failed.count == 0, "\(failed.count) of 400 checks failed; the first: \(failed.first ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }
}
