import Foundation
import ModelManager
import PluginBuilder
import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// Says on standard error what `autoserve check` and `autoserve score --models-dir` build while they build, so that a
/// first run on a fresh state folder (the model SDK and every model compiled: tens of seconds) never shows a blank
/// terminal. On a terminal one line is rewritten in place; otherwise (CI logs) a line is printed each time a model
/// moves to another phase.
struct BuildProgress: Sendable {
    /// What one model is doing, as the manager's index says it.
    enum Phase: Equatable, Sendable {
        case waiting, building, loading, ready, failed

        var word: String {
            switch self {
            case .waiting: "waiting"
            case .building: "building"
            case .loading: "loading"
            case .ready: "ready"
            case .failed: "failed"
            }
        }
    }

    let command: String
    let terminal: Bool
    let write: @Sendable (String) -> Void

    init(command: String, terminal: Bool = isatty(STDERR_FILENO) == 1, write: @escaping @Sendable (String) -> Void = Self.standardError) {
        self.command = command
        self.terminal = terminal
        self.write = write
    }

    static func standardError(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    static func phases(_ snapshot: RegistrySnapshot) -> [String: Phase] {
        snapshot.models.mapValues { status in
            switch status.pending?.phase {
            case .building: return .building
            case .loading: return .loading
            case .aspired, .serving, .releasing, .released, .failed: return .waiting
            case nil: return status.serving != nil && status.lastError == nil ? .ready : status.lastError != nil ? .failed : .waiting
            }
        }
    }

    /// The one line a terminal shows: what is under way, and the counts.
    static func line(_ phases: [String: Phase], elapsed: Duration) -> String {
        let building = phases.filter { $0.value == .building }.keys.sorted()
        let loading = phases.filter { $0.value == .loading }.keys.sorted()
        var parts: [String] = []
        if !building.isEmpty { parts.append("building \(building.joined(separator: ", "))") }
        if !loading.isEmpty { parts.append("loading \(loading.joined(separator: ", "))") }
        let done = phases.values.filter { $0 == .ready || $0 == .failed }.count
        parts.append("\(done) of \(phases.count) done")
        let failed = phases.values.filter { $0 == .failed }.count
        if failed > 0 { parts.append("\(failed) failed") }
        parts.append("\(Int(elapsed.components.seconds)) s")
        return parts.joined(separator: " · ")
    }

    /// Reports until the task is cancelled, from `manager`'s index every quarter second.
    func watch(_ manager: ModelManager, sdkCached: Bool) -> Task<Void, Never> {
        if !sdkCached {
            write("\(command): compiling the model SDK first (once per state folder and toolchain; about 10 s on 2 cores)\n")
        }
        return Task {
            let started = ContinuousClock.now
            var last: [String: Phase] = [:]
            var shown = ""
            func report() {
                let phases = Self.phases(manager.snapshot())
                if terminal {
                    let line = Self.line(phases, elapsed: .now - started)
                    // Written when it changes (the seconds count): the line is rewritten in place.
                    if !phases.isEmpty, line != shown {
                        write("\r\u{1B}[K\(command): \(line)")
                        shown = line
                    }
                } else {
                    for name in phases.keys.sorted() where phases[name] != last[name] && phases[name] != .waiting {
                        write("\(command): \(name) \(phases[name]!.word)\n")
                    }
                }
                last = phases
            }
            while !Task.isCancelled {
                report()
                try? await Task.sleep(for: .milliseconds(250))
            }
            // Once more when the builds are over: the last phases, then the report on a line of its own.
            report()
            if !shown.isEmpty { write("\r\u{1B}[K") }
        }
    }
}
