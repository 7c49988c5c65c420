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
/// Layers may also be `batchnorm`, `dropout` or `activation` entries (see `LayerSpec`).
/// Weights: `layers.{i}.weight` `[out, in]`, `layers.{i}.bias` `[out]`.
public enum MLP {
    public static func config(_ data: [UInt8]) throws -> StackConfig {
        let c = try StackConfig.decode(data, family: "mlp")
        guard c.inputShape.count == 1 else {
            throw QuernError(.modelInvalid, "config.json: an mlp takes \"input_size\" (a number of features)")
        }
        for (i, s) in c.specs.enumerated() {
            switch s {
            case .linear, .dropout, .batchNorm, .activation: continue
            default: throw QuernError(.modelInvalid, "config.json layers[\(i)]: an mlp has linear, batchnorm, dropout and activation layers only; use model_type \"cnn\" for images")
            }
        }
        return c
    }
}
