/// What went wrong in the tests' own support code (a socket, a process, a directory), in words.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
