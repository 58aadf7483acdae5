// Plots as SVG text: line charts (linear or log axes, optional steps and dashes) and
// grouped bar charts, each drawn into a panel of a figure. No dependency: the report must
// render on a machine with nothing but the toolchain.
import Foundation

struct Series {
    var name: String
    var points: [(x: Double, y: Double)]
    var color: String
    var dashed = false
    /// Holds each value until the next sample (counters read over time).
    var steps = false
}

struct Axis {
    var label: String
    var log = false
    var minimum: Double? = nil
    var maximum: Double? = nil
}

protocol Panel {
    var title: String { get }
    func draw(in frame: Frame) -> String
}

/// Where a panel draws: its outer box, and inside it the plot area.
struct Frame {
    var x: Double, y: Double, width: Double, height: Double
    var plotLeft: Double { x + 64 }
    var plotRight: Double { x + width - 16 }
    var plotTop: Double { y + 30 }
    var plotBottom: Double { y + height - 42 }
}

/// A figure: panels stacked vertically, one SVG document.
struct Figure {
    var width = 720.0
    var panelHeight = 360.0
    var panels: [any Panel]

    func render() -> String {
        let height = panelHeight * Double(panels.count)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>

            """
        for (i, panel) in panels.enumerated() {
            svg += panel.draw(in: Frame(x: 0, y: panelHeight * Double(i), width: width, height: panelHeight))
        }
        return svg + "</svg>\n"
    }
}

func svgEscape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

private func n(_ value: Double) -> String { String(format: "%.1f", value) }

/// The 1, 2 or 5 x 10^k step giving about `count` ticks over [low, high].
func tickStep(_ low: Double, _ high: Double, count: Int = 5) -> Double {
    let raw = (high - low) / Double(count)
    let magnitude = pow(10, floor(log10(raw)))
    return [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
}

/// `high` rounded up to a whole tick step, so that the top tick is above every value.
func niceCeiling(_ low: Double, _ high: Double) -> Double {
    guard high > low else { return low + 1 }
    let step = tickStep(low, high)
    return ceil(high / step) * step
}

func linearTicks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
    guard high > low else { return [low] }
    let step = tickStep(low, high, count: count)
    var ticks: [Double] = []
    var tick = ceil(low / step) * step
    while tick <= high + step * 1e-9 {
        ticks.append(tick)
        tick += step
    }
    return ticks
}

/// A tick label: 1e3-style powers on log axes, short numbers elsewhere.
func tickLabel(_ value: Double, log: Bool) -> String {
    if log {
        let exponent = Int(log10(value).rounded())
        return exponent >= 0 && exponent <= 3 ? String(Int(value)) : "1e\(exponent)"
    }
    if value == value.rounded() && abs(value) < 1e7 { return String(Int(value)) }
    return String(format: "%g", value)
}

struct LineChart: Panel {
    var title: String
    var x: Axis
    var y: Axis
    var series: [Series]

    /// `headroom` leaves the top of a linear axis free for the legend box.
    private func range(_ axis: Axis, _ values: [Double], headroom: Double = 1) -> (Double, Double) {
        let positive = axis.log ? values.filter { $0 > 0 } : values
        var low = axis.minimum ?? (positive.min() ?? 0), high = axis.maximum ?? (positive.max() ?? 1)
        if axis.log {
            low = pow(10, floor(log10(max(low, 1e-12))))
            high = pow(10, ceil(log10(max(high, low * 10))))
        } else {
            if axis.minimum == nil { low = min(low, 0) }
            if axis.maximum == nil { high = niceCeiling(low, high * headroom) }
        }
        return (low, high)
    }

    func draw(in frame: Frame) -> String {
        let (xLow, xHigh) = range(x, series.flatMap { $0.points.map(\.x) })
        let (yLow, yHigh) = range(y, series.flatMap { $0.points.map(\.y) }, headroom: 1.2 + 0.08 * Double(series.count))
        func scale(_ v: Double, _ axis: Axis, _ low: Double, _ high: Double, _ from: Double, _ to: Double) -> Double {
            let t = axis.log ? (log10(max(v, low)) - log10(low)) / (log10(high) - log10(low)) : (v - low) / (high - low)
            return from + t * (to - from)
        }
        let px = { (v: Double) in scale(v, x, xLow, xHigh, frame.plotLeft, frame.plotRight) }
        let py = { (v: Double) in scale(v, y, yLow, yHigh, frame.plotBottom, frame.plotTop) }
        var svg = "<g>\n<text x=\"\(n(frame.x + frame.width / 2))\" y=\"\(n(frame.y + 18))\" text-anchor=\"middle\" "
            + "font-size=\"14\" font-weight=\"bold\">\(svgEscape(title))</text>\n"
        svg += "<rect x=\"\(n(frame.plotLeft))\" y=\"\(n(frame.plotTop))\" width=\"\(n(frame.plotRight - frame.plotLeft))\" "
            + "height=\"\(n(frame.plotBottom - frame.plotTop))\" fill=\"none\" stroke=\"#444\"/>\n"
        let xTicks = x.log ? decades(xLow, xHigh) : linearTicks(xLow, xHigh)
        let yTicks = y.log ? decades(yLow, yHigh) : linearTicks(yLow, yHigh)
        for tick in xTicks {
            let at = px(tick)
            svg += "<line x1=\"\(n(at))\" y1=\"\(n(frame.plotTop))\" x2=\"\(n(at))\" y2=\"\(n(frame.plotBottom))\" stroke=\"#ddd\"/>"
                + "<text x=\"\(n(at))\" y=\"\(n(frame.plotBottom + 15))\" text-anchor=\"middle\">\(tickLabel(tick, log: x.log))</text>\n"
        }
        for tick in yTicks {
            let at = py(tick)
            svg += "<line x1=\"\(n(frame.plotLeft))\" y1=\"\(n(at))\" x2=\"\(n(frame.plotRight))\" y2=\"\(n(at))\" stroke=\"#ddd\"/>"
                + "<text x=\"\(n(frame.plotLeft - 5))\" y=\"\(n(at + 4))\" text-anchor=\"end\">\(tickLabel(tick, log: y.log))</text>\n"
        }
        svg += "<text x=\"\(n((frame.plotLeft + frame.plotRight) / 2))\" y=\"\(n(frame.plotBottom + 34))\" text-anchor=\"middle\">"
            + "\(svgEscape(x.label))</text>\n"
        let midY = (frame.plotTop + frame.plotBottom) / 2
        svg += "<text transform=\"translate(\(n(frame.x + 16)),\(n(midY))) rotate(-90)\" text-anchor=\"middle\">\(svgEscape(y.label))</text>\n"
        for line in series where !line.points.isEmpty {
            var coordinates: [String] = []
            for (i, point) in line.points.enumerated() {
                if line.steps && i > 0 { coordinates.append("\(n(px(point.x))),\(n(py(line.points[i - 1].y)))") }
                coordinates.append("\(n(px(point.x))),\(n(py(point.y)))")
            }
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"6,4\"" : "") "
                + "points=\"\(coordinates.joined(separator: " "))\"/>\n"
            if !line.steps && line.points.count <= 40 {
                for point in line.points {
                    svg += "<circle cx=\"\(n(px(point.x)))\" cy=\"\(n(py(point.y)))\" r=\"3\" fill=\"\(line.color)\"/>"
                }
                svg += "\n"
            }
        }
        svg += legend(series.map { ($0.name, $0.color, $0.dashed) }, frame)
        return svg + "</g>\n"
    }

    private func decades(_ low: Double, _ high: Double) -> [Double] {
        var ticks: [Double] = []
        var tick = low
        while tick <= high * 1.0001 {
            ticks.append(tick)
            tick *= 10
        }
        return ticks
    }
}

/// Bars in groups (one group per category, one bar per series), values on a linear axis
/// from zero, each bar labelled with its value.
struct BarChart: Panel {
    var title: String
    var yLabel: String
    var categories: [String]
    var series: [(name: String, color: String, values: [Double?])]

    func draw(in frame: Frame) -> String {
        // Headroom above the tallest bar for its label and the legend box.
        let high = niceCeiling(0, 1.4 * max(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 1, 1))
        let py = { (v: Double) in frame.plotBottom - v / high * (frame.plotBottom - frame.plotTop) }
        var svg = "<g>\n<text x=\"\(n(frame.x + frame.width / 2))\" y=\"\(n(frame.y + 18))\" text-anchor=\"middle\" "
            + "font-size=\"14\" font-weight=\"bold\">\(svgEscape(title))</text>\n"
        for tick in linearTicks(0, high) {
            svg += "<line x1=\"\(n(frame.plotLeft))\" y1=\"\(n(py(tick)))\" x2=\"\(n(frame.plotRight))\" y2=\"\(n(py(tick)))\" stroke=\"#ddd\"/>"
                + "<text x=\"\(n(frame.plotLeft - 5))\" y=\"\(n(py(tick) + 4))\" text-anchor=\"end\">\(tickLabel(tick, log: false))</text>\n"
        }
        let groupWidth = (frame.plotRight - frame.plotLeft) / Double(max(categories.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        for (c, category) in categories.enumerated() {
            let groupLeft = frame.plotLeft + groupWidth * Double(c) + groupWidth * 0.1
            for (s, bars) in series.enumerated() {
                guard c < bars.values.count, let value = bars.values[c] else { continue }
                let left = groupLeft + barWidth * Double(s)
                svg += "<rect x=\"\(n(left))\" y=\"\(n(py(value)))\" width=\"\(n(barWidth - 2))\" height=\"\(n(frame.plotBottom - py(value)))\" "
                    + "fill=\"\(bars.color)\"/><text x=\"\(n(left + barWidth / 2))\" y=\"\(n(py(value) - 4))\" text-anchor=\"middle\" "
                    + "font-size=\"11\">\(value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value))</text>\n"
            }
            svg += "<text x=\"\(n(groupLeft + groupWidth * 0.4))\" y=\"\(n(frame.plotBottom + 15))\" text-anchor=\"middle\">"
                + "\(svgEscape(category))</text>\n"
        }
        svg += "<line x1=\"\(n(frame.plotLeft))\" y1=\"\(n(frame.plotBottom))\" x2=\"\(n(frame.plotRight))\" y2=\"\(n(frame.plotBottom))\" stroke=\"#444\"/>\n"
        let midY = (frame.plotTop + frame.plotBottom) / 2
        svg += "<text transform=\"translate(\(n(frame.x + 16)),\(n(midY))) rotate(-90)\" text-anchor=\"middle\">\(svgEscape(yLabel))</text>\n"
        svg += legend(series.map { ($0.name, $0.color, false) }, frame)
        return svg + "</g>\n"
    }
}

/// Names and colours in a box at the plot area's top left.
private func legend(_ entries: [(name: String, color: String, dashed: Bool)], _ frame: Frame) -> String {
    let width = 14 + 7 * Double(entries.map(\.name.count).max() ?? 0) + 30
    var svg = "<rect x=\"\(n(frame.plotLeft + 8))\" y=\"\(n(frame.plotTop + 8))\" width=\"\(n(width))\" "
        + "height=\"\(n(Double(entries.count) * 16 + 8))\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n"
    for (i, entry) in entries.enumerated() {
        let y = frame.plotTop + 20 + Double(i) * 16
        svg += "<line x1=\"\(n(frame.plotLeft + 14))\" y1=\"\(n(y - 4))\" x2=\"\(n(frame.plotLeft + 36))\" y2=\"\(n(y - 4))\" "
            + "stroke=\"\(entry.color)\" stroke-width=\"3\"\(entry.dashed ? " stroke-dasharray=\"6,4\"" : "")/>"
            + "<text x=\"\(n(frame.plotLeft + 42))\" y=\"\(n(y))\">\(svgEscape(entry.name))</text>\n"
    }
    return svg
}
