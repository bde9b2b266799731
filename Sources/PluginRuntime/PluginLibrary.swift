#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The version of the C ABI between the server and its plugins (mirrors `_AutoServePlugin.abiVersion`).
public enum PluginABI {
    public static let version: UInt32 = 1
}

/// A plugin that could not be loaded or initialised.
/// The status codes of the plugins' C ABI, as the server reads them: the SDK's `_AutoServePlugin.Status` returns
/// the same numbers (the SDK is compiled into each plugin and cannot import this module; a test holds the two equal).
public enum PluginStatus: Int32, Sendable {
    /// The buffer holds the output object.
    case ok = 0
    /// The variables did not decode into the model's type; the buffer holds why.
    case invalidVariables = 1
    /// The model threw `ModelError.invalidInput`; the buffer holds its message.
    case invalidInput = 2
    /// The model threw another error; the buffer holds its message.
    case modelError = 3
    /// The model cannot explain the row's score; the buffer holds why.
    case explainUnsupported = 4
}

public struct PluginLoadError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// A plugin's shared library, opened with `dlopen` and never closed.
///
/// `dlclose` of a Swift library crashes the host later (the runtime keeps its type metadata), so a library
/// stays mapped for the life of the process; each version has its own file, so nothing is ever reused.
/// `@unchecked Sendable`: it holds only C function pointers, which never change and may be called from any thread.
public struct PluginLibrary: @unchecked Sendable {
    typealias ABIFunction = @convention(c) () -> UInt32
    typealias CreateFunction = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> UnsafeMutableRawPointer?
    typealias PredictFunction =
        @convention(c) (
            UnsafeMutableRawPointer, UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>
        ) -> Int32
    typealias DestroyFunction = @convention(c) (UnsafeMutableRawPointer) -> Void

    let create: CreateFunction
    let predict: PredictFunction
    /// The model's explanations (docs/explanations.md): absent from a plugin of a model that does not explain.
    let explain: PredictFunction?
    let destroy: DestroyFunction

    /// Opens the library and resolves the four entry points of the C ABI under `entrySymbol`.
    public static func open(path: String, entrySymbol: String) throws(PluginLoadError) -> PluginLibrary {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw PluginLoadError("dlopen failed: \(reason)")
        }
        func symbol<T>(_ suffix: String, as _: T.Type) throws(PluginLoadError) -> T {
            guard let address = dlsym(handle, "\(entrySymbol)_\(suffix)") else {
                throw PluginLoadError("the plugin has no symbol \(entrySymbol)_\(suffix); it was not built by this server's generator")
            }
            return unsafeBitCast(address, to: T.self)
        }
        let abi = try symbol("abi", as: ABIFunction.self)()
        guard abi == PluginABI.version else {
            throw PluginLoadError("the plugin speaks C ABI version \(abi), this server speaks \(PluginABI.version); rebuild it")
        }
        return PluginLibrary(
            create: try symbol("create", as: CreateFunction.self),
            predict: try symbol("predict", as: PredictFunction.self),
            explain: dlsym(handle, "\(entrySymbol)_explain").map { unsafeBitCast($0, to: PredictFunction.self) },
            destroy: try symbol("destroy", as: DestroyFunction.self)
        )
    }

    /// Runs the model's `init(path:)` once: the instance, or the error it threw.
    public func instantiate(folder: String) throws(PluginLoadError) -> PluginInstance {
        var error: UnsafeMutablePointer<CChar>?
        guard let instance = create(folder, &error) else {
            let message = error.map { String(cString: $0) } ?? "init(path:) failed"
            free(error)
            throw PluginLoadError(message)
        }
        return PluginInstance(library: self, instance: instance)
    }
}

/// One model instance made by a plugin's `init(path:)`, called through the C ABI. `@unchecked Sendable`: the
/// instance pointer never changes, and the model contract lets `transform_predict` run on several threads at once
/// (docs/models.md, "Writing a model folder").
public struct PluginInstance: @unchecked Sendable {
    let library: PluginLibrary
    let instance: UnsafeMutableRawPointer

    /// The plugin's raw answer: its status code and the output or message bytes; with `explain`, the output holds the
    /// explanation too (`_explanation`).
    public func call(variables: [UInt8], explain: Bool = false) -> (Int32, [UInt8]) {
        var output: UnsafeMutablePointer<UInt8>?
        var outputCount = 0
        guard let function = explain ? library.explain : library.predict else {
            return (PluginStatus.explainUnsupported.rawValue, Array("the model's plugin has no explanations".utf8))
        }
        let status = variables.withUnsafeBufferPointer { input in
            function(instance, input.baseAddress, input.count, &output, &outputCount)
        }
        guard let output else { return (3, Array("the plugin returned no output".utf8)) }
        defer { free(output) }
        return (status, Array(UnsafeBufferPointer(start: output, count: outputCount)))
    }

    /// Releases the instance; the library stays mapped.
    public func destroy() {
        library.destroy(instance)
    }
}
