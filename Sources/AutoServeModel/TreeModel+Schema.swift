extension TreeModel {
    /// The JSON Schema of a row (docs/http-api.md, "OpenAPI"): one optional member per feature, `null` or absent when missing;
    /// a number (or a boolean, read as 0/1), or for a categorical feature one of its categories by name when the
    /// model file keeps them (XGBoost refuses another; LightGBM scores it as missing), else its code.
    public var variablesSchema: JSON {
        var properties: [String: JSON] = [:]
        for feature in features {
            if feature.categorical, feature.codes != nil, !feature.categoryList.isEmpty {
                let categories = JSON.array(feature.categoryList.map(JSON.string))
                if refusesUnseenCategories {
                    properties[feature.name] = ["type": ["string", "null"], "enum": .array(feature.categoryList.map(JSON.string) + [.null])]
                } else {
                    // LightGBM scores a category it never saw as missing: any string is a valid row.
                    properties[feature.name] = [
                        "type": ["string", "null"], "examples": categories,
                        "description": "One of the training categories; another one scores as missing, as LightGBM does",
                    ]
                }
            } else if feature.categorical {
                properties[feature.name] = ["type": ["integer", "null"]]
            } else {
                properties[feature.name] = ["type": ["number", "boolean", "null"]]
            }
        }
        return ["type": "object", "properties": .object(properties)]
    }

    /// The JSON Schema of an answer, as `predict` writes it for this model's task and `output`.
    public var outputSchema: JSON {
        let number: JSON = ["type": "number"]
        let perClass: JSON = ["type": "object", "properties": .object(Dictionary(uniqueKeysWithValues: classNames.map { ($0, number) }))]
        let member: (String, JSON)
        switch (task, output) {
        case (.regression, .raw), (.binary, .raw): member = ("raw", number)
        case (.regression, _): member = ("prediction", number)
        case (.binary, .probability): member = ("probability", number)
        case (.multiclass, .raw): member = ("raw", perClass)
        case (.multiclass, .probability): member = ("probabilities", perClass)
        case (_, .class): member = ("class", ["type": "string", "enum": .array(classNames.map(JSON.string))])
        }
        return ["type": "object", "properties": .object([member.0: member.1]), "required": [.string(member.0)]]
    }
}
