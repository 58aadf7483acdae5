// What toml++ (under TOMLKit) asserts on instead of reporting (and, built with NDEBUG,
// assumes never happens), refused before it sees the text, with the line: a control
// character other than tab (TOML allows none), a non-ASCII character outside a string or
// comment (bare keys and values are ASCII), and a table header whose first key does not
// start like one (tomlplusplus#301: "[[[1]]]", "[" alone). All found by `make fuzz`.
// A line starting with "[" is taken for a header: our schema has no nested arrays.
enum TOMLPrecheck {
    private enum Context { case code, comment, basic, literal, multilineBasic, multilineLiteral }

    static func check(_ text: String, file: String) throws(ConfigError) {
        let scalars = Array(text.unicodeScalars)
        var context = Context.code
        var line = 1
        var index = 0
        var lineStart = true  // only blanks so far on this line
        func opens(_ quote: Unicode.Scalar) -> Bool {
            index + 2 < scalars.count && scalars[index + 1] == quote && scalars[index + 2] == quote
        }
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\n" {
                line += 1
                // A comment or a one-line string ends with its line (toml++ reports the latter).
                if context != .multilineBasic && context != .multilineLiteral { context = .code }
            } else if (scalar.value < 0x20 && scalar != "\t" && scalar != "\r") || scalar.value == 0x7F {
                throw ConfigError(file: file, line: line, message: "control character 0x\(String(scalar.value, radix: 16)) (TOML allows only tab)")
            }
            switch context {
            case .code where lineStart && scalar == "[":
                var key = index + 1
                if key < scalars.count && scalars[key] == "[" { key += 1 }
                while key < scalars.count && (scalars[key] == " " || scalars[key] == "\t") { key += 1 }
                guard key < scalars.count, Self.startsKey(scalars[key]) else {
                    throw ConfigError(file: file, line: line, message: "a table header needs a key (a bare key or a quoted one)")
                }
                index = key - 1
            case .code:
                if scalar == "#" {
                    context = .comment
                } else if scalar == "\"" || scalar == "'" {
                    let multiline = opens(scalar)
                    context = scalar == "\"" ? (multiline ? .multilineBasic : .basic) : (multiline ? .multilineLiteral : .literal)
                    if multiline { index += 2 }
                } else if !scalar.isASCII {
                    throw ConfigError(file: file, line: line, message: "non-ASCII character outside a string or comment")
                }
            case .basic, .multilineBasic:
                if scalar == "\\" && index + 1 < scalars.count && scalars[index + 1] != "\n" {
                    index += 1  // the escaped character, whatever it is
                } else if scalar == "\"" && (context == .basic || opens("\"")) {
                    index += context == .basic ? 0 : 2
                    context = .code
                }
            case .literal, .multilineLiteral:
                if scalar == "'" && (context == .literal || opens("'")) {
                    index += context == .literal ? 0 : 2
                    context = .code
                }
            case .comment:
                break
            }
            lineStart = scalar == "\n" || (lineStart && (scalar == " " || scalar == "\t"))
            index += 1
        }
    }

    /// A bare key's characters (A-Za-z0-9_-) or a quote.
    private static func startsKey(_ scalar: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(scalar) || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
            || scalar == "_" || scalar == "-" || scalar == "\"" || scalar == "'"
    }
}
