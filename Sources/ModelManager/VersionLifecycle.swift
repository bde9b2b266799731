public import Foundation

/// Where one version of a model is in its life, with every transition allowed in `allows(_:_:)`; the manager moves
/// a version only through `VersionLifecycle.move(to:)`, and any other move is a bug that stops the server
/// (`preconditionFailure`), as SwiftNIO's `HTTPServerPipelineHandler` does with its states.
///
/// ```
/// aspired ─▶ building ─▶ loading ─▶ serving ─▶ releasing ─▶ released
///    │          │  │         │  │                  ▲
///    │          │  └▶ failed │  └▶ failed          │
///    └──────────┴────────────┴───── superseded ────┘ (a newer version of the model was aspired to meanwhile)
/// ```
///
/// `aspired`: the source lists it and the model's task has not started on it (it may wait for a build slot).
/// `building`: exported, read, generated and compiled. `loading`: `init(path:)` and the examples. `serving`: it takes
/// the model's route. `releasing`: no new request reaches it; its workers stop once its last request is done.
/// `failed`: its build or load failed; the version serving before (if any) still serves.
public enum VersionPhase: String, Sendable, Codable {
    case aspired, building, loading, serving, releasing, released, failed

    /// Whether a version may move from `current` to `next`.
    static func allows(_ current: VersionPhase, _ next: VersionPhase) -> Bool {
        switch (current, next) {
        case (.aspired, .building), (.aspired, .released): true
        case (.building, .loading), (.building, .failed), (.building, .released): true
        case (.loading, .serving), (.loading, .failed), (.loading, .releasing): true
        case (.serving, .releasing), (.releasing, .released): true
        default: false
        }
    }
}

/// One version's phase and since when it is in it.
public struct VersionLifecycle: Sendable {
    public let version: String
    public private(set) var phase: VersionPhase
    public private(set) var since: Date

    init(aspired version: String, at date: Date = Date()) {
        self.version = version
        phase = .aspired
        since = date
    }

    /// A version already serving (one made outside the manager: tests, `autoserve score`).
    init(serving version: String, at date: Date = Date()) {
        self.version = version
        phase = .serving
        since = date
    }

    /// Moves to `next`; a move the lifecycle does not allow is a bug.
    mutating func move(to next: VersionPhase, at date: Date = Date()) {
        guard VersionPhase.allows(phase, next) else {
            preconditionFailure("version \(version): \(phase) → \(next) is not a transition of a model version's lifecycle")
        }
        phase = next
        since = date
    }
}
