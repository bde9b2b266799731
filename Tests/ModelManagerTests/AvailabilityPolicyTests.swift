import Foundation
import Logging
import ModelSource
import PluginBuilder
import ServingCore
import Synchronization
import Testing

@testable import ModelManager

/// The availability policy against a fake adapter and fake runners: every transition, in milliseconds, with no
/// swiftc (the real builds are in `ModelManagerTests` and the server's suites).
@Suite
struct AvailabilityPolicyTests {
    /// A runner that answers its label; it can break, and says when it is unloaded.
    final class FakeRunner: ModelRunner {
        let label: String
        let broken = Mutex<String?>(nil)
        let released: @Sendable () -> Void

        init(label: String, released: @escaping @Sendable () -> Void) {
            self.label = label
            self.released = released
        }

        func unload() { released() }

        func predict(variables: [UInt8], explain: Bool, completion: @escaping @Sendable (Prediction) -> Void) {
            completion(.output(Array(#"{"label":"\#(label)"}"#.utf8)))
        }

        var brokenReason: String? { broken.withLock { $0 } }
    }

    /// What the fake adapter does with a version.
    enum Outcome: Sendable {
        case serves
        case buildFails(retryable: Bool)
        case loadFails
    }

    /// Adapts every version by its outcome; a version can be held at its load until the test lets it go.
    final class FakeAdapter: SourceAdapter {
        let outcomes = Mutex<[String: Outcome]>([:])
        let adapted = Mutex<[String]>([])
        let releasedLabels = Mutex<[String]>([])
        let loading = Mutex<Int>(0)
        let mostLoadingAtOnce = Mutex<Int>(0)
        let gates = Mutex<[String: CheckedContinuation<Void, Never>]>([:])
        let held = Mutex<Set<String>>([])
        /// The held versions as their loads start waiting, in that order.
        let arrivals = AsyncStream<String>.makeStream()

        func hold(_ version: String) { _ = held.withLock { $0.insert(version) } }

        /// Versions whose build waits until it is cancelled (a compile that a newer version supersedes).
        let heldBuilds = Mutex<Set<String>>([])
        let cancelledBuilds = Mutex<[String]>([])
        let buildArrivals = AsyncStream<String>.makeStream()

        func holdBuild(_ version: String) { _ = heldBuilds.withLock { $0.insert(version) } }

        /// The next held build as it starts waiting.
        func nextWaitingBuild() async -> String? {
            var iterator = buildArrivals.stream.makeAsyncIterator()
            return await iterator.next()
        }

        /// The next held version whose load waits.
        func nextWaiting() async -> String? {
            var iterator = arrivals.stream.makeAsyncIterator()
            return await iterator.next()
        }

        /// Lets a waiting version's load finish.
        func release(_ version: String) {
            gates.withLock { $0.removeValue(forKey: version) }?.resume()
        }

        func adapt(_ folder: ModelFolder) async throws(ModelBuildError) -> Loadable {
            adapted.withLock { $0.append(folder.version) }
            if heldBuilds.withLock({ $0.contains(folder.version) }) {
                buildArrivals.continuation.yield(folder.version)
                // As the compiler's process, killed when the build's task is cancelled.
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
                cancelledBuilds.withLock { $0.append(folder.version) }
                throw ModelBuildError(Diagnostic(file: folder.name.rawValue, message: "the compiler was killed"), retryable: true)
            }
            let outcome = outcomes.withLock { $0[folder.version] } ?? .serves
            if case .buildFails(let retryable) = outcome {
                throw ModelBuildError(Diagnostic(file: "\(folder.name)/etls.swift", line: 3, message: "compile error: \(folder.version)"), retryable: retryable)
            }
            return Loadable(typeName: "Fake", summary: "version \(folder.version)") { () throws(ModelBuildError) in
                let now = self.loading.withLock {
                    $0 += 1
                    return $0
                }
                self.mostLoadingAtOnce.withLock { $0 = max($0, now) }
                defer { self.loading.withLock { $0 -= 1 } }
                if self.held.withLock({ $0.contains(folder.version) }) {
                    await withCheckedContinuation { continuation in
                        self.gates.withLock { $0[folder.version] = continuation }
                        self.arrivals.continuation.yield(folder.version)
                    }
                }
                if case .loadFails = outcome { throw ModelBuildError(Diagnostic(file: folder.name.rawValue, message: "example 1 failed: \(folder.version)")) }
                return FakeRunner(label: folder.version) { [weak self] in self?.releasedLabels.withLock { $0.append(folder.version) } }
            }
        }
    }

    static func manager(_ adapter: FakeAdapter, parallelism: Int = 4, takenRoutes: Set<String> = []) -> AspiredVersionsManager {
        var configuration = ModelManagerConfiguration()
        configuration.buildParallelism = parallelism
        configuration.takenRoutes = takenRoutes
        return AspiredVersionsManager(adapter: adapter, configuration: configuration, metrics: Metrics(), logger: Logger(label: "test"), source: "fake")
    }

    static func snapshot(_ versions: [String: String], rejected: [String] = []) throws -> SourceSnapshot {
        SourceSnapshot(
            models: try versions.map { ModelFolder(name: try ModelName(validating: $0.key), version: $0.value, sourcePath: "/nowhere/\($0.key)") },
            rejected: rejected.map { RejectedFolder(folderName: $0, diagnostic: Diagnostic(file: $0, message: "not a model folder")) }
        )
    }

    /// Waits until `condition` holds (the models' tasks run on their own), failing after 10 s.
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw WaitTimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    struct WaitTimedOut: Error {
        var what: String
    }

    static func label(_ version: ServingVersion?) async -> String? {
        guard let version, case .output(let bytes) = await withCheckedContinuation({ done in version.predict(variables: []) { done.resume(returning: $0) } })
        else { return nil }
        return (try? JSONParser.parse(bytes))?["label"].flatMap { if case .string(let text) = $0 { text } else { nil } }
    }

    @Test func beforeTheFirstSyncNothingIsReadyAndAFailedReadSaysWhy() {
        let manager = Self.manager(FakeAdapter())
        #expect(!manager.snapshot().isReady)
        manager.record(SyncReport(id: 1, startedAt: Date(), finishedAt: Date(), succeeded: false, message: "the remote is down"))
        #expect(manager.snapshot().readiness.reason == "the first sync failed: the remote is down")
        #expect(manager.snapshot().lastSync?.succeeded == false)
    }

    @Test func aSourceWithNoFolderIsReady() async throws {
        let manager = Self.manager(FakeAdapter())
        await manager.apply(try Self.snapshot([:]))
        #expect(manager.snapshot().readiness == (true, "ready; the source has no model folder"))
    }

    @Test func aNewModelGoesFromLoadingToReady() async throws {
        let adapter = FakeAdapter()
        adapter.hold("v1")
        let manager = Self.manager(adapter)
        let sync = Task { await manager.apply(try Self.snapshot(["Churn": "v1"])) }
        #expect(await adapter.nextWaiting() == "v1")
        let loading = manager.snapshot()
        #expect(loading.models["Churn"]?.currentState == .loading)
        #expect(loading.models["Churn"]?.pendingVersion == "v1")
        #expect(loading.readiness == (false, "loading the first version of 1 of 1 model(s): Churn"))
        #expect(loading.models["Churn"]?.pending?.phase == .loading)
        adapter.release("v1")
        _ = try await sync.value
        let ready = manager.snapshot()
        #expect(ready.models["Churn"]?.currentState == .ready)
        #expect(ready.models["Churn"]?.pendingVersion == nil)
        #expect(await Self.label(ready.serving("Churn")) == "v1")
        #expect(ready.isReady)
    }

    @Test func theOldVersionServesUntilTheNewIsLoadedAndIsReleasedAfterItsLastRequest() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        adapter.hold("v2")
        let sync = Task { await manager.apply(try Self.snapshot(["Churn": "v2"])) }
        #expect(await adapter.nextWaiting() == "v2")
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v1", "v1 serves while v2 loads")
        #expect(manager.snapshot().models["Churn"]?.currentState == .ready)
        // A request in flight holds v1 across the swap.
        let inFlight = try #require(manager.snapshot().serving("Churn"))
        #expect(inFlight.hold())
        adapter.release("v2")
        _ = try await sync.value
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v2")
        #expect(await Self.label(inFlight) == "v1", "the request keeps the version it started on")
        #expect(adapter.releasedLabels.withLock { $0 }.isEmpty, "v1 is held by the request")
        #expect(inFlight.phase == .releasing)
        inFlight.letGo()
        #expect(adapter.releasedLabels.withLock { $0 } == ["v1"], "released after its last request")
        #expect(inFlight.phase == .released)
        // A request that read the registry before the swap and reaches v1 after its release is answered by v2.
        #expect(await Self.label(inFlight) == "v2")
    }

    @Test func aBrokenVersionNeverTakesAWorkingOneOffItsRoute() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        adapter.outcomes.withLock { $0["v2"] = .buildFails(retryable: false) }
        await manager.apply(try Self.snapshot(["Churn": "v2"]))
        let status = try #require(manager.snapshot().models["Churn"])
        #expect(status.currentState == .ready)
        #expect(await Self.label(status.serving) == "v1")
        #expect(status.lastError?.version == "v2")
        #expect(status.lastError?.diagnostic.line == 3)
        // The same broken version is not tried again; a new one is.
        await manager.apply(try Self.snapshot(["Churn": "v2"]))
        #expect(adapter.adapted.withLock { $0 } == ["v1", "v2"])
        await manager.apply(try Self.snapshot(["Churn": "v3"]))
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v3")
        #expect(manager.snapshot().models["Churn"]?.lastError == nil)
    }

    @Test func aFailureOfTheBuildItselfIsRetriedOnTheNextSync() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        adapter.outcomes.withLock { $0["v1"] = .buildFails(retryable: true) }
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        #expect(manager.snapshot().models["Churn"]?.currentState == .failed)
        adapter.outcomes.withLock { $0["v1"] = .serves }
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        #expect(manager.snapshot().models["Churn"]?.currentState == .ready)
        #expect(adapter.adapted.withLock { $0 } == ["v1", "v1"])
    }

    @Test func aFirstVersionThatFailsToLoadIsFailedAndTheOthersServe() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        adapter.outcomes.withLock { $0["bad"] = .loadFails }
        await manager.apply(try Self.snapshot(["Churn": "bad", "Iris": "good"]))
        let snapshot = manager.snapshot()
        #expect(snapshot.models["Churn"]?.currentState == .failed)
        #expect(snapshot.models["Churn"]?.currentError?.diagnostic.message == "example 1 failed: bad")
        #expect(snapshot.models["Iris"]?.currentState == .ready)
        #expect(snapshot.isReady, "one model serving is enough")
        #expect(snapshot.servingVersions.map(\.name.rawValue) == ["Iris"])
        #expect(snapshot.notServing.map(\.name) == ["Churn"])
    }

    @Test func everyModelFailedIsNotReady() async throws {
        let adapter = FakeAdapter()
        adapter.outcomes.withLock { $0["v1"] = .buildFails(retryable: false) }
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"], rejected: ["notes"]))
        let readiness = manager.snapshot().readiness
        #expect(!readiness.ready)
        #expect(readiness.reason.contains("every one of the 2 model folder(s) failed"))
        #expect(manager.snapshot().models["notes"]?.lastError?.diagnostic.message == "not a model folder")
    }

    @Test func aVersionWhoseRunnerBreaksIsFailedWithTheReason() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        let runner = try #require(manager.snapshot().serving("Churn")?.runner as? FakeRunner)
        runner.broken.withLock { $0 = "its workers fail on every start" }
        let status = try #require(manager.snapshot().models["Churn"])
        #expect(status.currentState == .failed)
        #expect(status.currentError?.diagnostic.message == "Churn: its workers fail on every start")
        #expect(status.currentError?.version == "v1")
        #expect(!manager.snapshot().isReady)
        // A new version replaces it.
        await manager.apply(try Self.snapshot(["Churn": "v2"]))
        #expect(manager.snapshot().models["Churn"]?.currentState == .ready)
    }

    @Test func aRemovedFolderStopsServingAndIsReleasedAfterItsLastRequest() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1", "Iris": "i1"]))
        let inFlight = try #require(manager.snapshot().serving("Churn"))
        #expect(inFlight.hold())
        await manager.apply(try Self.snapshot(["Iris": "i1"]))
        #expect(manager.snapshot().models["Churn"] == nil)
        #expect(adapter.releasedLabels.withLock { $0 }.isEmpty)
        #expect(await Self.label(inFlight) == "v1")
        inFlight.letGo()
        #expect(adapter.releasedLabels.withLock { $0 } == ["v1"])
        #expect(inFlight.phase == .released)
        #expect(adapter.adapted.withLock { $0 }.sorted() == ["i1", "v1"], "an unchanged folder is not adapted again")
    }

    @Test func aFolderOnAServerRouteIsFailed() async throws {
        let manager = Self.manager(FakeAdapter(), takenRoutes: ["healthz"])
        await manager.apply(try Self.snapshot(["healthz": "v1", "Iris": "i1"]))
        #expect(manager.snapshot().models["healthz"]?.currentState == .failed)
        #expect(manager.snapshot().models["healthz"]?.lastError?.diagnostic.message.contains("rename the folder or set baseUrl") == true)
        #expect(manager.snapshot().models["Iris"]?.currentState == .ready)
    }

    @Test func loadsRunAtMostBuildParallelismAtOnce() async throws {
        let adapter = FakeAdapter()
        let names = (1...6).map { "Model\($0)" }
        for name in names { adapter.hold(name) }
        let manager = Self.manager(adapter, parallelism: 2)
        let sync = Task { await manager.apply(try Self.snapshot(Dictionary(uniqueKeysWithValues: names.map { ($0, $0) }))) }
        for _ in names {
            // The next load starts only when one of the two running ends.
            let waiting = try #require(await adapter.nextWaiting())
            #expect(adapter.loading.withLock { $0 } <= 2)
            adapter.release(waiting)
        }
        #expect(try await sync.value == 6)
        #expect(adapter.mostLoadingAtOnce.withLock { $0 } == 2)
        #expect(manager.snapshot().servingVersions.count == 6)
    }

    @Test func releaseAllLetsEveryVersionGo() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1", "Iris": "i1"]))
        manager.releaseAll()
        #expect(adapter.releasedLabels.withLock { $0 }.sorted() == ["i1", "v1"])
    }

    // MARK: - The manager in TensorFlow Serving's shape: a sync records, each model's task brings it up

    @Test func aSyncReturnsAtOnceAndASlowLoadDoesNotDelayAnotherModelsNewVersion() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Quick": "q1", "Slow": "s1"]))
        adapter.hold("s2")
        // The sync returns while Slow's s2 is still loading.
        #expect(await manager.setAspiredVersions(try Self.snapshot(["Quick": "q1", "Slow": "s2"])) == 1)
        #expect(await adapter.nextWaiting() == "s2")
        #expect(await manager.setAspiredVersions(try Self.snapshot(["Quick": "q2", "Slow": "s2"])) == 1)
        try await Self.waitUntil("Quick serves q2") { manager.snapshot().serving("Quick")?.version == "q2" }
        let during = manager.snapshot()
        #expect(during.models["Slow"]?.pending?.phase == .loading, "s2 still loads")
        #expect(await Self.label(during.serving("Slow")) == "s1", "and s1 answers meanwhile")
        #expect(during.readiness.ready, "a slow new version keeps the server ready")
        adapter.release("s2")
        await manager.settled()
        #expect(await Self.label(manager.snapshot().serving("Slow")) == "s2")
    }

    /// Churn serving v1, and v2's build under way until it is cancelled.
    static func buildingV2() async throws -> (FakeAdapter, AspiredVersionsManager) {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        adapter.holdBuild("v2")
        await manager.setAspiredVersions(try Self.snapshot(["Churn": "v2"]))
        #expect(await adapter.nextWaitingBuild() == "v2")
        #expect(manager.snapshot().models["Churn"]?.pending?.phase == .building)
        return (adapter, manager)
    }

    @Test func aNewerVersionCancelsTheBuildOfAStaleOneWhichNeverServes() async throws {
        let (adapter, manager) = try await Self.buildingV2()
        await manager.setAspiredVersions(try Self.snapshot(["Churn": "v3"]))
        await manager.settled()
        #expect(adapter.cancelledBuilds.withLock { $0 } == ["v2"], "v2's compile was stopped")
        let status = try #require(manager.snapshot().models["Churn"])
        #expect(await Self.label(status.serving) == "v3")
        #expect(status.lastError == nil, "a superseded build is not a failure")
        #expect(adapter.releasedLabels.withLock { $0 } == ["v1"])
    }

    @Test func aStaleLoadThatEndsAfterANewerVersionWasAspiredIsReleasedAndNeverServes() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Churn": "v1"]))
        adapter.hold("v2")
        adapter.hold("v3")
        await manager.setAspiredVersions(try Self.snapshot(["Churn": "v2"]))
        #expect(await adapter.nextWaiting() == "v2")
        await manager.setAspiredVersions(try Self.snapshot(["Churn": "v3"]))
        adapter.release("v2")
        // v3 starts only after v2's load ended, and v2 was let go without taking the route.
        #expect(await adapter.nextWaiting() == "v3")
        #expect(adapter.releasedLabels.withLock { $0 } == ["v2"])
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v1")
        adapter.release("v3")
        await manager.settled()
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v3")
        #expect(adapter.releasedLabels.withLock { $0 } == ["v2", "v1"])
    }

    @Test func backToTheVersionServingCancelsTheOneUnderWay() async throws {
        let (adapter, manager) = try await Self.buildingV2()
        await manager.setAspiredVersions(try Self.snapshot(["Churn": "v1"]))
        await manager.settled()
        #expect(adapter.cancelledBuilds.withLock { $0 } == ["v2"])
        #expect(manager.snapshot().models["Churn"]?.pending == nil)
        #expect(await Self.label(manager.snapshot().serving("Churn")) == "v1")
    }

    @Test func readinessWaitsForEveryFolderOfTheFirstSyncQuickFailedAndSlow() async throws {
        let adapter = FakeAdapter()
        adapter.outcomes.withLock { $0["b1"] = .buildFails(retryable: false) }
        adapter.hold("s1")
        let manager = Self.manager(adapter)
        await manager.setAspiredVersions(try Self.snapshot(["Quick": "q1", "Broken": "b1", "Slow": "s1"]))
        #expect(await adapter.nextWaiting() == "s1")
        try await Self.waitUntil("Quick serves and Broken failed") {
            manager.snapshot().models["Quick"]?.currentState == .ready && manager.snapshot().models["Broken"]?.currentState == .failed
        }
        #expect(manager.snapshot().readiness == (false, "loading the first version of 1 of 3 model(s): Slow"))
        adapter.release("s1")
        await manager.settled()
        let ready = manager.snapshot()
        #expect(ready.readiness == (true, "ready"))
        #expect(ready.models["Slow"]?.currentState == .ready && ready.models["Broken"]?.currentState == .failed)
    }

    @Test func aFolderAddedLaterIsLoadingWithoutMakingTheServerUnready() async throws {
        let adapter = FakeAdapter()
        let manager = Self.manager(adapter)
        await manager.apply(try Self.snapshot(["Iris": "i1"]))
        adapter.hold("n1")
        await manager.setAspiredVersions(try Self.snapshot(["Iris": "i1", "New": "n1"]))
        #expect(await adapter.nextWaiting() == "n1")
        let snapshot = manager.snapshot()
        #expect(snapshot.models["New"]?.currentState == .loading)
        #expect(snapshot.readiness == (true, "ready"))
        adapter.release("n1")
        await manager.settled()
    }

    @Test func anImpossibleTransitionIsRefusedByTheTable() {
        #expect(VersionPhase.allows(.aspired, .building))
        #expect(VersionPhase.allows(.loading, .releasing))
        #expect(!VersionPhase.allows(.aspired, .serving), "a version serves only after it loaded")
        #expect(!VersionPhase.allows(.released, .serving))
        #expect(!VersionPhase.allows(.failed, .loading))
        #expect(!VersionPhase.allows(.serving, .released), "a serving version is released only after its last request")
    }
}

extension AspiredVersionsManager {
    /// `setAspiredVersions`, then waits until every model's task is done: the old synchronous shape, for the tests
    /// of what a sync ends with.
    @discardableResult
    func apply(_ snapshot: SourceSnapshot) async -> Int {
        let count = await setAspiredVersions(snapshot)
        await settled()
        return count
    }
}
