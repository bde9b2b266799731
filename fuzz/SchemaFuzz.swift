// libFuzzer target: the schema extraction from a model's Swift sources (`ModelInspector` and `SchemaBuilder`, compiled
// in with this file by fuzz/run.sh, with swift-syntax from the package's debug build).
//
// The sources come from the models repository, a stranger's input. The oracles:
// - any text ends, within the fuzzer's -timeout and -rss_limit_mb, in an entry point or a `ModelBuildError`;
// - the schemas it gives are finite and within the size bound, and every `$ref` names a definition that exists.
import Foundation
import ServingCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    let entry: ModelEntryPoint
    do throws(ModelBuildError) {
        entry = try ModelInspector().entryPoint(
            in: [.init(name: "Fuzz/etls.swift", text: text)], function: "transform_predict", typeName: nil, manifestLine: nil, model: "Fuzz")
    } catch {
        return 0
    }
    let schemas = entry.schemas
    let documents = [schemas.variables, schemas.output] + Array(schemas.definitions.values)
    let size = documents.reduce(0) { $0 + $1.jsonText.utf8.count }
    guard size <= SchemaBuilder.maximumBytes else { fail("the schemas take \(size) bytes", text) }
    for document in documents {
        for reference in references(in: document) {
            let name = reference.replacingOccurrences(of: "#/components/schemas/", with: "")
            guard schemas.definitions[name] != nil else { fail("$ref \(reference) names no definition", text) }
        }
    }
    return 0
}

/// Every `$ref` in a schema: a member `$ref` whose value is a string (a property may be named `$ref` too, through
/// `CodingKeys`: its value is that property's schema).
func references(in value: JSONValue) -> [String] {
    switch value {
    case .object(let members):
        members.flatMap { key, member -> [String] in
            if key == "$ref", case .string(let target) = member { return [target] }
            return references(in: member)
        }
    case .array(let items): items.flatMap(references(in:))
    default: []
    }
}

func fail(_ message: String, _ text: String) -> Never {
    FileHandle.standardError.write(Data("FUZZ FAILURE: \(message)\n".utf8))
    abort()
}

/// The one member of the manifest's type the inspector names in its messages (the manifest's reader, with Yams, is
/// not part of this target).
enum ModelManifest {
    static let fileName = "model.yaml"
}
