import AutoServeModel
import Foundation

final class S0 { var a: S1?; var b: S1? }
final class S1 { var a: S2?; var b: S2? }
final class S2 { var a: S3?; var b: S3? }
final class S3 { var a: S4?; var b: S4? }
final class S4 { var a: S5?; var b: S5? }
final class S5 { var a: S6?; var b: S6? }
final class S6 { var a: S7?; var b: S7? }
final class S7 { var a: S8?; var b: S8? }
final class S8 { var a: S9?; var b: S9? }
final class S9 { var a: S10?; var b: S10? }
final class S10 { var a: S11?; var b: S11? }
final class S11 { var a: S12?; var b: S12? }
final class S12 { var a: S13?; var b: S13? }
final class S13 { var a: S14?; var b: S14? }
final class S14 { var a: S15?; var b: S15? }
final class S15 { var a: S16?; var b: S16? }
final class S16 { var a: S17?; var b: S17? }
final class S17 { var a: S18?; var b: S18? }
final class S18 { var a: S19?; var b: S19? }
final class S19 { var a: S20?; var b: S20? }
final class S20 { var a: S21?; var b: S21? }
final class S21 { var a: S22?; var b: S22? }
final class S22 { var a: S23?; var b: S23? }
final class S23 { var a: S24?; var b: S24? }
final class S24 { var a: S25?; var b: S25? }
final class S25 { var a: S26?; var b: S26? }
final class S26 { var a: S27?; var b: S27? }
final class S27 { var a: S28?; var b: S28? }
final class S28 { var a: S29?; var b: S29? }
final class S29 { var a: S30?; var b: S30? }
final class S30 { var x: Double? }

struct Model {
    init(path: String) {}
    func transform_predict(_ variables: S0) -> [String: JSON] { ["ok": true] }
}
