import AutoServeModel
import Foundation

/// Turns a listing into the model's feature vector: log area, age, rooms and a one-hot neighbourhood.
struct HouseFeatures {
    struct Input: Decodable {
        var area_sqm: Double
        var year_built: Int
        var rooms: Int
        var neighbourhood: String
    }

    static let neighbourhoods = ["centre", "harbour", "suburb"]
    static let referenceYear = 2025

    let vector: [Double]

    init(_ input: Input) throws {
        guard input.area_sqm > 0 else { throw ModelError.invalidInput("area_sqm must be above 0") }
        guard (1800...Self.referenceYear).contains(input.year_built) else {
            throw ModelError.invalidInput("year_built must be between 1800 and \(Self.referenceYear)")
        }
        guard let district = Self.neighbourhoods.firstIndex(of: input.neighbourhood) else {
            throw ModelError.invalidInput("neighbourhood must be one of \(Self.neighbourhoods.joined(separator: ", "))")
        }
        let oneHot = Self.neighbourhoods.indices.map { $0 == district ? 1.0 : 0.0 }
        vector = [log(input.area_sqm), Double(Self.referenceYear - input.year_built), Double(input.rooms)] + oneHot
    }
}
