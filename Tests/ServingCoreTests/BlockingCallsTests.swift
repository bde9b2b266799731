import ServingCore
import Testing

/// A blocking call started from a cancelled task (a sync when the server stops) runs, and never takes the process
/// down: NIO's `runIfActive` throws `CancellationError` there, which once reached a `preconditionFailure`.
struct BlockingCallsTests {
    @Test func aCancelledTaskStillRunsItsBlockingCall() async throws {
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await BlockingCalls.run { () throws(CancellationError) -> Int in 6 * 7 }
        }
        #expect(try await task.value == 42)
    }
}

/// One HTML escaping for the index page and the drift report: every character that ends text or an attribute.
struct HTMLTests {
    @Test func escapesEveryCharacterThatEndsTextOrAnAttribute() {
        #expect(HTML.escaped(#"<a href='x' title="y">&</a>"#) == "&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;")
        #expect(HTML.escaped("plain é 🙂") == "plain é 🙂")
    }
}
