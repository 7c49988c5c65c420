import QuernCore
import QuernNN

/// `training.svg`: loss (left) and accuracy (right) per epoch, training and validation,
/// as a self-contained SVG any browser opens. Plain SVG text, no dependencies.
enum TrainingPlot {
    /// `best`: the epoch whose weights were published, marked with a dashed line.
    static func svg(_ history: [EpochRecord], title: String, best: Int? = nil) -> String {
        let panelW = 360.0, panelH = 240.0, margin = 48.0, gap = 40.0
        let width = margin * 2 + panelW * 2 + gap, height = panelH + margin * 2 + 24
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(margin)" y="20" font-size="14" font-weight="bold">\(escape(title))</text>

            """
        let epochs = history.map { Double($0.epoch) }
        let losses = history.map(\.trainLoss) + history.compactMap(\.validationLoss)
        let maxLoss = max(losses.filter(\.isFinite).max() ?? 1, 1e-9)
        out += panel(
            x: margin, y: margin, w: panelW, h: panelH, label: "loss", yMax: maxLoss, epochs: epochs, best: best,
            legendLow: false,
            series: [
                ("train", history.map(\.trainLoss), "#1f77b4"),
                ("validation", history.map { $0.validationLoss ?? .nan }, "#ff7f0e")
            ])
        out += panel(
            x: margin + panelW + gap, y: margin, w: panelW, h: panelH, label: "accuracy", yMax: 1, epochs: epochs,
            best: best, legendLow: true,
            series: [
                ("train", history.map(\.trainAccuracy), "#1f77b4"),
                ("validation", history.map { $0.validationAccuracy ?? .nan }, "#ff7f0e")
            ])
        return out + "</svg>\n"
    }

    /// Curves start high for loss and low for accuracy: the legend goes where they are not.
    static func panel(
        x: Double, y: Double, w: Double, h: Double, label: String, yMax: Double, epochs: [Double],
        best: Int?, legendLow: Bool, series: [(String, [Double], String)]
    ) -> String {
        let first = epochs.first ?? 1, last = max(epochs.last ?? 1, first + 1)
        func px(_ e: Double) -> Double { x + (e - first) / (last - first) * w }
        func py(_ v: Double) -> Double { y + h - min(max(v / yMax, 0), 1) * h }
        var s =
            "<g>\n<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"none\" stroke=\"#999\"/>\n"
        for t in 0...4 {
            let v = yMax * Double(t) / 4
            s += "<line x1=\"\(f(x))\" y1=\"\(f(py(v)))\" x2=\"\(f(x + w))\" y2=\"\(f(py(v)))\" stroke=\"#eee\"/>"
            s +=
                "<text x=\"\(f(x - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label == "accuracy" ? String(format: "%.2f", v) : String(format: "%.3g", v))</text>\n"
        }
        for e in epochs where epochs.count <= 20 || Int(e) % max(1, epochs.count / 10) == 0 {
            s += "<text x=\"\(f(px(e)))\" y=\"\(f(y + h + 16))\" text-anchor=\"middle\">\(Int(e))</text>"
        }
        s += "\n<text x=\"\(f(x + w / 2))\" y=\"\(f(y + h + 34))\" text-anchor=\"middle\">epoch</text>"
        s += "<text x=\"\(f(x))\" y=\"\(f(y - 8))\">\(label)</text>\n"
        if let best {
            s +=
                "<line x1=\"\(f(px(Double(best))))\" y1=\"\(f(y))\" x2=\"\(f(px(Double(best))))\" y2=\"\(f(y + h))\" stroke=\"#2ca02c\" stroke-dasharray=\"4 3\"/>"
            s += "<text x=\"\(f(px(Double(best)) + 4))\" y=\"\(f(y + h / 2))\" fill=\"#2ca02c\">best</text>\n"
        }
        for (i, (name, values, color)) in series.enumerated() {
            let points = zip(epochs, values).filter { $0.1.isFinite }.map { "\(f(px($0.0))),\(f(py($0.1)))" }
            guard !points.isEmpty else { continue }
            s +=
                "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
            for p in points {
                let xy = p.split(separator: ",")
                s += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>"
            }
            let ly = legendLow ? y + h - 30 + Double(i) * 16 : y + 14 + Double(i) * 16
            s +=
                "\n<line x1=\"\(f(x + w - 110))\" y1=\"\(f(ly - 4))\" x2=\"\(f(x + w - 90))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            s += "<text x=\"\(f(x + w - 84))\" y=\"\(f(ly))\">\(name)</text>\n"
        }
        return s + "</g>\n"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
