/// The error a model throws to reject a row it cannot score.
///
/// `invalidInput` answers the request with 422 and the message, which should say what is wrong with the
/// row and what the model accepts. Any other error thrown by a model answers 500.
public enum ModelError: Error, Sendable {
    case invalidInput(String)
}
