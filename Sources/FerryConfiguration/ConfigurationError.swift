/// A configuration file that cannot be used, with where and why: `FILE:LINE: FIELD: message`.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var field: String?
    public var message: String

    public init(file: String, line: Int? = nil, field: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String {
        var place = self.file
        if let line { place += ":\(line)" }
        if let field { place += ": \(field)" }
        return "\(place): \(self.message)"
    }
}
