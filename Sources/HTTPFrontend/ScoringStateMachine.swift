import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// The scoring handler's state and decisions, apart from the channel, as NIO's `HTTPServerPipelineHandler` keeps
/// its own: each event (a request part, an answer, a read, writability, a stop, a parse error, a response of
/// Hummingbird's going out) changes the state and returns the actions the handler then performs in order. Nothing
/// here touches a channel, so every sequence of events is testable as values (`ScoringStateMachineTests`).
///
/// Responses keep the order of requests: while Hummingbird owes an answer on this connection every request goes to
/// it, and while a row is being scored the next request parts wait in `held` (and reading stops).
struct ScoringStateMachine {
    enum State {
        case idle
        /// A scoring request whose body is being read (into `body`); `tooLarge` once it passed the limit (the body is
        /// then dropped).
        case reading(route: ScoringRoute, tooLarge: Bool, requestID: String)
        /// The current request goes to Hummingbird, up to its end.
        case passing
        /// A row is with its model; further parts wait in `held`.
        case scoring
    }

    enum Action: Equatable {
        /// Pass the part on to Hummingbird.
        case forward(HTTPRequestPart)
        /// Score the body (`nil`: it was over the limit) with the model `route` names; its answer comes back as
        /// `answered()`.
        case score(route: ScoringRoute, body: ByteBuffer?, requestID: String)
        /// Write this answer (the JSON error body of a request that could not be parsed) with `Connection: close`.
        case writeParseError(Scoring.Answer)
        /// Ask the channel for more bytes.
        case read
        /// Tell Hummingbird that the parts replayed make a whole read.
        case readComplete
        /// Tell Hummingbird to answer the request it holds, then close (a stop).
        case quiesceHummingbird
        case close
    }

    private(set) var state = State.idle
    /// The body of the request being read: out of `state`, so that each part is appended in place, never to a copy.
    private var body = ByteBuffer()
    /// Responses Hummingbird still owes on this connection.
    private(set) var owed = 0
    private var held = CircularBuffer<HTTPRequestPart>()
    /// A read was asked for while reading was paused.
    private var readRequested = false
    /// The connection closes once the row in flight is answered (a parse error came in meanwhile).
    private var closeWhenAnswered = false
    /// The server is stopping: the requests received are answered, then the connection closes.
    private var stopping = false
    let maxBodyBytes: Int
    /// The scoring route of a request head (`Scoring.scoringRoute`), `nil` for a request Hummingbird answers.
    let route: (HTTPRequest) -> ScoringRoute?

    /// The most a request's declared length reserves before its bytes come.
    static let reservedBodyBytes = 4 << 20

    init(maxBodyBytes: Int, route: @escaping (HTTPRequest) -> ScoringRoute?) {
        self.maxBodyBytes = maxBodyBytes
        self.route = route
    }

    var isScoring: Bool {
        if case .scoring = state { return true }
        return false
    }

    /// A request part from the decoder: at most one action (no array on the request path).
    mutating func received(_ part: HTTPRequestPart) -> Action? {
        if isScoring {
            held.append(part)
            return nil
        }
        return handle(part)
    }

    private mutating func handle(_ part: HTTPRequestPart) -> Action? {
        switch (state, part) {
        case (.idle, .head(let head)):
            guard owed == 0, let route = route(head) else {
                owed += 1
                state = .passing
                return .forward(part)
            }
            let requestID = RequestID.of(head.headerFields[.requestID])
            let declared = head.headerFields[.contentLength].flatMap(Int.init)
            let tooLarge = (declared ?? 0) > maxBodyBytes
            // The body is read into one buffer of the declared length (up to `reservedBodyBytes`: a declared length is
            // only a promise), so that a large batch is not copied at each doubling.
            body = ByteBufferAllocator().buffer(capacity: tooLarge ? 0 : min(declared ?? 0, Self.reservedBodyBytes))
            state = .reading(route: route, tooLarge: tooLarge, requestID: requestID)
            return nil
        case (.reading(let route, var tooLarge, let requestID), .body(var chunk)):
            if !tooLarge, body.readableBytes + chunk.readableBytes > maxBodyBytes {
                tooLarge = true
                body = ByteBuffer()
                state = .reading(route: route, tooLarge: tooLarge, requestID: requestID)
            }
            if !tooLarge { body.writeBuffer(&chunk) }
            return nil
        case (.reading(let route, let tooLarge, let requestID), .end):
            state = .scoring
            let scored = body
            body = ByteBuffer()
            return .score(route: route, body: tooLarge ? nil : scored, requestID: requestID)
        case (.passing, .end):
            state = .idle
            return .forward(part)
        default:
            // The rest of a request Hummingbird takes; or a head inside a request, or a body before any head, which
            // the decoder never sends: Hummingbird answers them as it does.
            return .forward(part)
        }
    }

    /// The row in flight has its answer: the handler writes it (with `Connection: close` when `closing`), then
    /// performs `then`, the request parts that came meanwhile and what follows; `then` is empty on a quiet
    /// connection (no array on the request path). `isWritable` is the channel's.
    mutating func answered(isWritable: Bool) -> (closing: Bool, then: [Action]) {
        let closing = closeWhenAnswered && !stopping
        state = .idle
        if closing {
            held.removeAll()
            return (true, [.close])
        }
        var actions: [Action] = []
        // While the server stops, the requests already received are answered too (with `Connection: close`).
        var replayed = false
        while let part = held.popFirst() {
            replayed = true
            if let action = handle(part) { actions.append(action) }
            if isScoring { break }
        }
        // Hummingbird's side takes what it was given at the end of a read.
        if replayed { actions.append(.readComplete) }
        if isScoring { return (false, actions) }
        if stopping {
            // Hummingbird answers the requests it was given (all of one, or part), then closes; with nothing owed, close
            // now.
            let hummingbirdOwes: Bool
            if case .passing = state { hummingbirdOwes = true } else { hummingbirdOwes = owed > 0 }
            actions.append(hummingbirdOwes ? .quiesceHummingbird : .close)
            return (false, actions)
        }
        if readRequested, isWritable {
            readRequested = false
            actions.append(.read)
        }
        return (false, actions)
    }

    /// The channel asks to read: reading pauses while a row is scored and while the client does not read its
    /// answers (the channel is not writable), so a client that sends rows and never reads costs a bounded buffer.
    mutating func readCalled(isWritable: Bool) -> Action? {
        if isScoring || !isWritable {
            readRequested = true
            return nil
        }
        return .read
    }

    mutating func writabilityChanged(isWritable: Bool) -> Action? {
        guard isWritable, readRequested, !isScoring else { return nil }
        readRequested = false
        return .read
    }

    /// A graceful stop: returns whether the event goes on to Hummingbird (it does when no scoring request is under
    /// way; else the connection closes once that request is answered).
    mutating func quiesce() -> Bool {
        switch state {
        case .reading, .scoring:
            stopping = true
            return false
        case .idle, .passing:
            return true
        }
    }

    /// The decoder could not parse a request: when no answer is due on the connection, the JSON error body, then
    /// close; with a row in flight, its answer first. `nil` leaves the error to Hummingbird.
    mutating func parseError(error: any Error) -> [Action]? {
        switch state {
        case .idle, .reading:
            guard owed == 0 else { return nil }
            state = .idle
            held.removeAll()
            var answer = APIError(
                status: 400, code: "invalid_http",
                message: "the request is not valid HTTP/1.1 (\(error)); check the request line, the headers and the body's framing"
            ).answer
            // A request that could not be read has no id of its own: the server makes one (docs/operations.md, "The inference log").
            answer.headers[.requestID] = RequestID.make()
            return [.writeParseError(answer), .close]
        case .scoring:
            held.removeAll()
            closeWhenAnswered = true
            return []
        case .passing:
            return nil
        }
    }

    /// Hummingbird's answer ended (`.end` going out).
    mutating func responseEnded() {
        owed = max(0, owed - 1)
    }
}
