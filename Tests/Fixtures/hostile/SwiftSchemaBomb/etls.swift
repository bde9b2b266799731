import AutoServeModel
import Foundation

struct S0: Decodable { var a: S1?; var b: S1? }
struct S1: Decodable { var a: S2?; var b: S2? }
struct S2: Decodable { var a: S3?; var b: S3? }
struct S3: Decodable { var a: S4?; var b: S4? }
struct S4: Decodable { var a: S5?; var b: S5? }
struct S5: Decodable { var a: S6?; var b: S6? }
struct S6: Decodable { var a: S7?; var b: S7? }
struct S7: Decodable { var a: S8?; var b: S8? }
struct S8: Decodable { var a: S9?; var b: S9? }
struct S9: Decodable { var a: S10?; var b: S10? }
struct S10: Decodable { var a: S11?; var b: S11? }
struct S11: Decodable { var a: S12?; var b: S12? }
struct S12: Decodable { var a: S13?; var b: S13? }
struct S13: Decodable { var a: S14?; var b: S14? }
struct S14: Decodable { var a: S15?; var b: S15? }
struct S15: Decodable { var a: S16?; var b: S16? }
struct S16: Decodable { var a: S17?; var b: S17? }
struct S17: Decodable { var a: S18?; var b: S18? }
struct S18: Decodable { var a: S19?; var b: S19? }
struct S19: Decodable { var a: S20?; var b: S20? }
struct S20: Decodable { var a: S21?; var b: S21? }
struct S21: Decodable { var a: S22?; var b: S22? }
struct S22: Decodable { var a: S23?; var b: S23? }
struct S23: Decodable { var a: S24?; var b: S24? }
struct S24: Decodable { var a: S25?; var b: S25? }
struct S25: Decodable { var a: S26?; var b: S26? }
struct S26: Decodable { var a: S27?; var b: S27? }
struct S27: Decodable { var a: S28?; var b: S28? }
struct S28: Decodable { var a: S29?; var b: S29? }
struct S29: Decodable { var a: S30?; var b: S30? }
struct S30: Decodable { var x: Double? }

struct Model {
    init(path: String) {}
    func transform_predict(_ variables: S0) -> [String: JSON] { ["ok": true] }
}
