extension Result where Failure == any Error {
    /// The outcome of an async body, to check an error's text after the call.
    public init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
