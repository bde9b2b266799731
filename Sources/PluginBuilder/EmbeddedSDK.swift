/// The model SDK's sources, embedded in the server binary at build time.
///
/// Plugins are compiled against these, not against `Sources/AutoServeModel`, so a server that runs without
/// its source tree (the Docker image) still builds models. `SDK/` holds links to the SDK's files.
public enum EmbeddedSDK {
    /// File name → Swift source, one entry per file of `Sources/AutoServeModel`.
    public static let files: [String: String] = [
        "Explanation.swift": String(decoding: PackageResources.Explanation_swift_txt, as: UTF8.self),
        "JSON.swift": String(decoding: PackageResources.JSON_swift_txt, as: UTF8.self),
        "JSON+Codable.swift": String(decoding: PackageResources.JSON_Codable_swift_txt, as: UTF8.self),
        "JSON+Literals.swift": String(decoding: PackageResources.JSON_Literals_swift_txt, as: UTF8.self),
        "JSON+Serialization.swift": String(decoding: PackageResources.JSON_Serialization_swift_txt, as: UTF8.self),
        "ModelError.swift": String(decoding: PackageResources.ModelError_swift_txt, as: UTF8.self),
        "PluginSupport.swift": String(decoding: PackageResources.PluginSupport_swift_txt, as: UTF8.self),
        "TreeLanes.swift": String(decoding: PackageResources.TreeLanes_swift_txt, as: UTF8.self),
        "TreeModel.swift": String(decoding: PackageResources.TreeModel_swift_txt, as: UTF8.self),
        "TreeSHAP.swift": String(decoding: PackageResources.TreeSHAP_swift_txt, as: UTF8.self),
        "TreeModel+Explain.swift": String(decoding: PackageResources.TreeModel_Explain_swift_txt, as: UTF8.self),
        "TreeModel+LightGBM.swift": String(decoding: PackageResources.TreeModel_LightGBM_swift_txt, as: UTF8.self),
        "TreeModel+Row.swift": String(decoding: PackageResources.TreeModel_Row_swift_txt, as: UTF8.self),
        "TreeModel+Schema.swift": String(decoding: PackageResources.TreeModel_Schema_swift_txt, as: UTF8.self),
        "TreeModel+XGBoost.swift": String(decoding: PackageResources.TreeModel_XGBoost_swift_txt, as: UTF8.self),
        "VariablesDecoder.swift": String(decoding: PackageResources.VariablesDecoder_swift_txt, as: UTF8.self),
    ]
}
