/// Walks `--flag value` pairs, handing each to `take`, which answers false for a flag it does not
/// know: each benchmark's options, parsed one way.
func parseFlags(_ arguments: [String], _ take: (_ flag: String, _ value: String) throws -> Bool) throws {
    var rest = arguments[...]
    while let flag = rest.popFirst() {
        guard let value = rest.popFirst() else { throw Failure("\(flag) needs a value") }
        guard try take(flag, value) else { throw Failure("unknown option \(flag)") }
    }
}

/// Parses options that all take a number: `defaults` names each with its default; the numbers given.
func parseNumberFlags(_ arguments: [String], defaults: [String: Int]) throws -> [String: Int] {
    var numbers = defaults
    try parseFlags(arguments) { flag, value in
        guard numbers[flag] != nil else { return false }
        guard let number = Int(value) else { throw Failure("\(flag) needs a number") }
        numbers[flag] = number
        return true
    }
    return numbers
}
