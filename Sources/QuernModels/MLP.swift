import QuernCore

/// `mlp`: dense layers on a feature vector, with optional input standardisation
/// `(x − mean) / scale` stored with the weights (`normalizer.*`).
///
/// config.json:
/// ```json
/// {"model_type": "mlp", "input_size": 64, "num_labels": 10,
///  "layers": [{"out_features": 64, "activation": "relu"}, {"out_features": 10}],
///  "id2label": {"0": "zero", ...}, "feature_names": [...], "problem_type": "single_label_classification"}
/// ```
/// Layers may also be `batchnorm`, `dropout` or `activation` entries (see `LayerSpecs`).
/// Weights: `layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`.
public enum MLP: ModelFamily {
    public static let modelType = "mlp"
    public static var provides: [Any.Type] { [(any TabularModel).self, (any LayerStackSource).self] }
    /// The layer types an mlp may list: the rest need images.
    static let layerTypes = ["linear", "batchnorm", "dropout", "activation"]

    public static func config(_ o: JSONObject) throws -> StackConfig {
        let c = try StackConfig.decode(o, family: modelType)
        guard c.inputShape.count == 1 else {
            throw QuernError(.modelInvalid, "config.json: an mlp takes \"input_size\" (a number of features)")
        }
        for (i, layer) in c.layers.enumerated()
        where !layerTypes.contains(layer.json.objectValue?["type"]?.stringValue ?? "") {
            throw QuernError(
                .modelInvalid,
                "config.json layers[\(i)]: an mlp has linear, batchnorm, dropout and activation layers only; use model_type \"cnn\" for images"
            )
        }
        return c
    }

    /// A new mlp's config (a head trained on embeddings, a test network).
    public static func config(inputSize: Int, layers: [any LayerSpec], labels: [String]) -> StackConfig {
        StackConfig(family: modelType, inputShape: [inputSize], layers: layers, labels: labels)
    }

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        try LayerStackFamily.load(files, config: config(files.config), options: options)
    }
}
