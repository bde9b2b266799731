import PluginRuntime
public import ServingCore

/// A model instance living in the server's own process (`MODEL_ISOLATION=inprocess`).
///
/// The instance is created once per loaded version by the model's `init(path:)`; calls run on the
/// `ModelCallPool`'s threads, never on an event loop. Releasing the last reference (the version is replaced
/// and its requests in flight are done) destroys the instance; the library stays.
public final class InProcessModel: ModelRunner, @unchecked Sendable {
    let instance: PluginInstance

    init(_ instance: PluginInstance) {
        self.instance = instance
    }

    deinit {
        instance.destroy()
    }

    public func predict(variables: [UInt8], completion: @escaping @Sendable (Prediction) -> Void) {
        ModelCallPool.shared.run { completion(self.predictNow(variables: variables)) }
    }

    /// The call itself, on the caller's thread.
    public func predictNow(variables: [UInt8]) -> Prediction {
        let (status, bytes) = instance.call(variables: variables)
        return Self.prediction(status: status, bytes: bytes)
    }

    /// Maps a status code of the C ABI to a prediction.
    static func prediction(status: Int32, bytes: [UInt8]) -> Prediction {
        switch status {
        case 0: return .output(bytes)
        case 1: return .failure(PredictionFailure(.invalidVariables, String(decoding: bytes, as: UTF8.self)))
        case 2: return .failure(PredictionFailure(.invalidInput, String(decoding: bytes, as: UTF8.self)))
        case 3: return .failure(PredictionFailure(.modelError, String(decoding: bytes, as: UTF8.self)))
        default: return .failure(PredictionFailure(.modelError, "the plugin answered with unknown status \(status)"))
        }
    }
}
