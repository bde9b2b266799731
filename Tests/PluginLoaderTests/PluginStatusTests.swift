import AutoServeModel
import PluginRuntime
import ServingCore
import Testing

@testable import PluginLoader

/// The server reads the status codes the SDK's glue returns: the two lists of the C ABI stay equal.
@Test func theServerAndTheSDKShareTheStatusCodes() {
    let pairs: [(PluginStatus, _AutoServePlugin.Status)] = [
        (.ok, .ok), (.invalidVariables, .invalidVariables), (.invalidInput, .invalidInput), (.modelError, .modelError),
        (.explainUnsupported, .explainUnsupported),
    ]
    for (server, sdk) in pairs { #expect(server.rawValue == sdk.rawValue, "\(server) and \(sdk)") }
    #expect(PluginStatus(rawValue: 5) == nil, "a code the SDK does not return")
    guard case .failure(let failure) = Prediction(status: PluginStatus.invalidInput.rawValue, bytes: Array("no".utf8)) else {
        Issue.record("an invalid input is a failure")
        return
    }
    #expect(failure.status == 422)
    #expect(failure.message == "no")
    guard case .failure(let unsupported) = Prediction(status: PluginStatus.explainUnsupported.rawValue, bytes: Array("no counts".utf8)) else {
        Issue.record("a model that cannot explain is a failure")
        return
    }
    #expect(unsupported.status == 400 && unsupported.code == "explain_unsupported" && unsupported.message == "no counts")
}
