import Foundation
import Yams

/// A YAML configuration file read for a Ferry part (the switch, the superserver, the
/// redirector): its top-level settings as ``ConfigurationValue``s that know their file, line and
/// field, so that every refusal says where it is.
public struct ConfigurationFile {
    public let file: String
    /// The top-level mapping's entries, in the file's order.
    public let settings: [(key: ConfigurationValue, value: ConfigurationValue)]
    /// The whole document, for refusals about the file as a whole.
    public let root: ConfigurationValue

    /// Reads `path`.
    public static func load(path: String) throws(ConfigurationError) -> ConfigurationFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(file: path, message: "cannot read it: \(error.localizedDescription)")
        }
        return try Self.parse(text, file: path)
    }

    /// Parses `text`; `file` names it in errors. The document must be a mapping of settings.
    public static func parse(
        _ text: String,
        file: String = "configuration"
    ) throws(ConfigurationError)
        -> ConfigurationFile
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(file: file, line: Self.line(of: error), message: "not YAML: \(error)")
        } catch {
            throw ConfigurationError(file: file, message: "not YAML: \(error)")
        }
        let document = ConfigurationValue(root ?? Node(""), file: file, field: nil)
        guard let root, root.mapping != nil else {
            throw document.refused("the file must be a mapping of settings")
        }
        return ConfigurationFile(file: file, settings: try document.entries(), root: document)
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }
}

/// A configuration read from a YAML file: it says how to read itself from the parsed file, and
/// gets loading from a path and parsing from text.
public protocol ConfigurationFileContents {
    static func read(_ file: ConfigurationFile) throws(ConfigurationError) -> Self
}

extension ConfigurationFileContents {
    /// Reads and checks a configuration file.
    public static func load(path: String) throws(ConfigurationError) -> Self {
        try Self.read(ConfigurationFile.load(path: path))
    }

    /// Parses and checks configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String = "configuration") throws(ConfigurationError) -> Self {
        try Self.read(ConfigurationFile.parse(text, file: file))
    }
}
