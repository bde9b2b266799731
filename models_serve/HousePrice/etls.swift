import AutoServeModel
import Foundation

/// House-price regression: features are built in Features.swift, coefficients come from coefficients.json.
struct HousePrice {
    let coefficients: Coefficients

    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path + "/coefficients.json"))
        coefficients = try JSONDecoder().decode(Coefficients.self, from: data)
    }

    func transform_predict(_ variables: HouseFeatures.Input) throws -> [String: JSON] {
        let features = try HouseFeatures(variables)
        let price = coefficients.predict(features.vector)
        return [
            "price": .number((price / 100).rounded() * 100),
            "price_per_sqm": .number((price / variables.area_sqm).rounded()),
            "features_used": .number(Double(features.vector.count)),
        ]
    }
}
