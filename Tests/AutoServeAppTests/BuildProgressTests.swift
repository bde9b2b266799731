import Testing

@testable import AutoServeApp

/// The line a terminal shows while `check` or `score --models-dir` builds.
struct BuildProgressTests {
    @Test func theLineSaysWhatIsUnderWayAndTheCounts() {
        let line = BuildProgress.line(
            ["Iris": .building, "Churn": .building, "Echo": .loading, "Old": .ready, "Bad": .failed, "Next": .waiting], elapsed: .seconds(12.7))
        #expect(line == "building Churn, Iris · loading Echo · 2 of 6 done · 1 failed · 12 s")
        #expect(BuildProgress.line(["Iris": .ready], elapsed: .zero) == "1 of 1 done · 0 s")
    }
}
