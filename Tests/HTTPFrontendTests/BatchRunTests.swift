import Foundation
import ServingCore
import Synchronization
import Testing

@testable import HTTPFrontend

/// `BatchRun` against a fake model whose answers come back in a shuffled order: the window bounds the rows in flight,
/// and the answer keeps exactly the longest run of first rows that fits, whatever the order of arrival.
struct BatchRunTests {
    /// A model that holds every row it gets until the test answers them, in an order the test picks.
    final class HeldModel: Sendable {
        let held = Mutex<[(row: Int, answer: @Sendable (Prediction) -> Void)]>([])
        let mostInFlight = Mutex(0)

        func send(_ bytes: [UInt8], _ answer: @escaping @Sendable (Prediction) -> Void) {
            let row = Int(String(decoding: bytes, as: UTF8.self))!
            held.withLock { held in
                held.append((row, answer))
                mostInFlight.withLock { $0 = max($0, held.count) }
            }
        }

        /// Answers one held row, chosen by `pick` among those held; false when none is.
        func answerOne(size: (Int) -> Int, pick: (Int) -> Int) -> Bool {
            guard
                let (row, answer) = held.withLock({ held -> (Int, @Sendable (Prediction) -> Void)? in
                    guard !held.isEmpty else { return nil }
                    return held.remove(at: pick(held.count))
                })
            else { return false }
            answer(.output(Array(repeating: UInt8(ascii: "x"), count: size(row))))
            return true
        }
    }

    @Test(arguments: 0..<20)
    func theAnswerKeepsTheFirstRowsThatFit(round: Int) throws {
        var random = SystemRandomNumberGenerator()
        let count = Int.random(in: 1...300, using: &random)
        let sizes = (0..<count).map { _ in Int.random(in: 1...100, using: &random) }
        let cap = Int.random(in: 1...(sizes.reduce(0, +) + 50), using: &random)
        let lower = Int.random(in: 1...16, using: &random)
        let window = lower...(lower + Int.random(in: 0...16, using: &random))
        let model = HeldModel()
        let result = Mutex<[BatchRun.Outcome]?>(nil)
        // Every fifth row is refused before it reaches a model, as a row that is not an object is.
        let rows: [BatchRun.Outcome] = (0..<count).map { row in
            row % 5 == 4 ? .failure(APIError(status: 400, code: "invalid_rows", message: "not an object")) : .success(Array("\(row)".utf8))
        }
        BatchRun(
            rows: rows, window: window, initialWindow: Int.random(in: 1...40, using: &random), queueTime: .milliseconds(100), maxAnswerBytes: cap,
            model: "Fake", send: model.send
        ) { outcomes, _ in
            result.withLock { $0 = outcomes }
        }.start()
        while model.answerOne(size: { sizes[$0] }, pick: { Int.random(in: 0..<$0, using: &random) }) {}
        let outcomes = try #require(result.withLock { $0 })
        #expect(model.mostInFlight.withLock { $0 } <= window.upperBound)
        // The longest run of first rows whose outputs fit.
        var fits = 0
        var total = 0
        while fits < count {
            if rows[fits].isOutput {
                guard total + sizes[fits] <= cap else { break }
                total += sizes[fits]
            }
            fits += 1
        }
        for (row, outcome) in outcomes.enumerated() {
            switch (outcome, row < fits, rows[row].isOutput) {
            case (.success(let output), true, true): #expect(output.count == sizes[row])
            case (.failure(let error), _, false): #expect(error.code == "invalid_rows")
            case (.failure(let error), false, true): #expect(error.code == "answer_too_large" && error.status.code == 413)
            default: Issue.record("row \(row) of \(count) (cap \(cap), \(fits) fit): \(outcome)")
            }
        }
    }

    /// A worker that refuses rows past its backlog (`model_overloaded`) while rows of the batch are in flight holds the
    /// batch back: the refused rows are sent again as answers come, and every row is answered.
    @Test func rowsRefusedAsBehindAreSentAgainAsAnswersCome() throws {
        let model = HeldModel()
        let refusals = Mutex(0)
        let result = Mutex<[BatchRun.Outcome]?>(nil)
        let rows: [BatchRun.Outcome] = (0..<500).map { .success(Array("\($0)".utf8)) }
        BatchRun(rows: rows, window: 64...1024, initialWindow: 64, queueTime: .milliseconds(100), maxAnswerBytes: 1 << 20, model: "Fake") { bytes, answer in
            // A backlog of ten rows: past it, refused at once, inside the send, as the worker's connection does.
            if model.held.withLock({ $0.count }) >= 10 {
                refusals.withLock { $0 += 1 }
                answer(.failure(PredictionFailure(.overloaded, "behind")))
            } else {
                model.send(bytes, answer)
            }
        } finish: { outcomes, _ in
            result.withLock { $0 = outcomes }
        }.start()
        while model.answerOne(size: { _ in 8 }, pick: { _ in 0 }) {}
        let outcomes = try #require(result.withLock { $0 })
        #expect(refusals.withLock { $0 } > 0)
        #expect(outcomes.count == 500 && outcomes.allSatisfy(\.isOutput))
    }

    /// A model that refuses every row at once (inside the send) does not make the batch recurse a row deep.
    @Test func refusalsInsideTheSendDoNotRecurse() throws {
        let result = Mutex<[BatchRun.Outcome]?>(nil)
        let rows = [BatchRun.Outcome](repeating: .success(Array("{}".utf8)), count: 200_000)
        BatchRun(rows: rows, window: 64...1024, initialWindow: 64, queueTime: .milliseconds(100), maxAnswerBytes: 1 << 20, model: "Fake") { _, answer in
            answer(.failure(PredictionFailure(.overloaded, "behind")))
        } finish: { outcomes, _ in
            result.withLock { $0 = outcomes }
        }.start()
        let outcomes = try #require(result.withLock { $0 })
        #expect(outcomes.count == 200_000)
        #expect(outcomes.allSatisfy { if case .failure(let error) = $0 { error.status.code == 503 } else { false } })
    }
}

extension Result where Success == [UInt8], Failure == APIError {
    fileprivate var isOutput: Bool {
        if case .success = self { true } else { false }
    }
}
