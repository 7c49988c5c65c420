import QuernCore

/// `cnn`: convolutional classifiers on images, LeNet-style: conv2d, max/avg pooling,
/// batch norm, flatten, dense layers. Input is NCHW; records carry the pixels of one
/// image, channel by channel, row by row.
///
/// config.json:
/// ```json
/// {"model_type": "cnn", "input_shape": [1, 8, 8],
///  "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "activation": "relu"},
///             {"type": "maxpool2d", "kernel_size": 2},
///             {"type": "flatten"},
///             {"type": "linear", "out_features": 10}],
///  "id2label": {"0": "0", ...}}
/// ```
/// Weights: `layers.{i}.weight` (`[out, in, k, k]` for conv2d, `[out, in]` for linear),
/// `layers.{i}.bias`; batch norm adds `running_mean` / `running_var`.
public enum CNN: ModelFamily {
    public static let modelType = "cnn"
    public static var provides: [Any.Type] { [(any TabularModel).self, (any LayerStackSource).self] }

    public static func config(_ o: JSONObject) throws -> StackConfig {
        let c = try StackConfig.decode(o, family: modelType)
        guard c.inputShape.count == 3 else {
            throw QuernError(.modelInvalid, "config.json: a cnn takes \"input_shape\": [channels, height, width]")
        }
        return c
    }

    public static func load(_ files: ModelFiles, options: ModelOptions) throws -> any Model {
        try LayerStackFamily.load(files, config: config(files.config), options: options)
    }
}
