import FerryEndpoints
import FerryPosix
import Yams

/// One value of a configuration file, with the typed readers every Ferry configuration uses;
/// each refusal names the file, the line and the field.
public struct ConfigurationValue {
    public let node: Node
    public let file: String
    /// The setting or field this value belongs to.
    public let field: String?

    init(_ node: Node, file: String, field: String?) {
        self.node = node
        self.file = file
        self.field = field
    }

    /// The line it starts on.
    public var line: Int? { self.node.mark?.line }

    /// A refusal of this value, placed at its line.
    public func refused(_ message: String) -> ConfigurationError {
        ConfigurationError(file: self.file, line: self.line, field: self.field, message: message)
    }

    /// The value as text, whatever scalar it is; `nil` when it is a list or mapping.
    public var text: String? { self.node.scalar?.string }

    /// A non-empty string.
    public func string() throws(ConfigurationError) -> String {
        guard let text = self.text, !text.isEmpty else { throw self.refused("must be a non-empty string") }
        return text
    }

    /// A list of strings.
    public func strings() throws(ConfigurationError) -> [String] {
        var strings: [String] = []
        for item in try self.list() {
            guard let text = item.text else { throw item.refused("each entry must be a string") }
            strings.append(text)
        }
        return strings
    }

    /// A list of values.
    public func list() throws(ConfigurationError) -> [ConfigurationValue] {
        guard let items = self.node.sequence else { throw self.refused("must be a list") }
        return items.map { ConfigurationValue($0, file: self.file, field: self.field) }
    }

    /// The entries of a mapping, keys and values, in the file's order; each value's field is its key.
    public func entries() throws(ConfigurationError) -> [(key: ConfigurationValue, value: ConfigurationValue)] {
        guard let mapping = self.node.mapping else { throw self.refused("must be a mapping") }
        return mapping.map { key, value in
            let name = key.string ?? ""
            return (
                ConfigurationValue(key, file: self.file, field: name),
                ConfigurationValue(value, file: self.file, field: name)
            )
        }
    }

    /// A whole number within `range`.
    public func integer(in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = self.node.int, range.contains(value) else {
            throw self.refused(
                range.upperBound == .max
                    ? "must be a whole number >= \(range.lowerBound)"
                    : "must be a whole number in \(range.lowerBound)...\(range.upperBound)"
            )
        }
        return value
    }

    /// A positive number of seconds, fractions allowed, at most a year.
    public func seconds() throws(ConfigurationError) -> Duration {
        guard let number = self.node.float ?? self.node.int.map(Double.init),
            let duration = Duration(positiveSeconds: number)
        else {
            throw self.refused(
                "must be a number of seconds above 0 and at most \(Int(Duration.longestSeconds)) (a year)"
            )
        }
        return duration
    }

    /// One of an enumeration's raw values.
    public func choice<Choice: RawRepresentable & CaseIterable>(
        _ type: Choice.Type
    ) throws(ConfigurationError)
        -> Choice where Choice.RawValue == String
    {
        let text = try self.string()
        guard let value = Choice(rawValue: text) else {
            let allowed = Choice.allCases.map(\.rawValue).joined(separator: ", ")
            throw self.refused("'\(text)' is not one of \(allowed)")
        }
        return value
    }

    /// The text made into a `T` by `make`; refused as not being `expected` when it gives `nil`.
    public func parsed<T>(_ expected: String, _ make: (String) -> T?) throws(ConfigurationError) -> T {
        let text = try self.string()
        guard let value = make(text) else { throw self.refused("must be \(expected), got '\(text)'") }
        return value
    }

    /// An address to listen on: `HOST:PORT`, where port 0 asks for any free port.
    public func listenAddress() throws(ConfigurationError) -> ServiceEndpoint {
        try self.parsed("HOST:PORT") { ServiceEndpoint($0, allowingAnyPort: true) }
    }

    /// An address to connect to: `HOST:PORT` with a port in 1...65535.
    public func address() throws(ConfigurationError) -> ServiceEndpoint {
        try self.parsed("HOST:PORT") { ServiceEndpoint($0) }
    }
}
