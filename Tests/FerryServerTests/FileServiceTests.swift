import Testing

@testable import FerryServer

@Suite struct RequestPathTests {
    @Test(arguments: [
        ("/", "."), ("/a.txt", "a.txt"), ("/dir/./b", "dir/b"), ("//a//b/", "a/b"),
        ("/a%20b.txt?x=1#f", "a b.txt"), ("http://example.com/x/y", "x/y"), ("/%E2%82%AC", "€"),
    ])
    func resolvesPathsUnderTheRoot(target: String, path: String) throws {
        #expect(try RequestPath.resolve(target).get() == path)
    }

    @Test(arguments: [
        ("/../etc/passwd", 403), ("/a/../../etc/passwd", 403), ("/a/..", 403),
        ("/%2e%2e/etc/passwd", 403), ("/%2E%2E%2Fetc%2Fpasswd", 403), ("/..%2f..%2fetc/passwd", 403),
        ("/a\\..\\b", 403), ("/a%5c..%5cb", 403), ("http://h/../x", 403),
        ("/bad%zz", 400), ("/trunc%4", 400), ("/nul%00byte", 400), ("relative", 400), ("*", 400),
    ])
    func refusesEveryWayOut(target: String, status: Int) {
        switch RequestPath.resolve(target) {
        case .success(let path): Issue.record("\(target) resolved to \(path)")
        case .failure(let refusal): #expect(refusal.status.code == status)
        }
    }
}

@Suite struct ByteRangeTests {
    @Test(arguments: [
        ("bytes=0-9", ByteRange.range(0..<10)), ("bytes=90-", .range(90..<100)), ("bytes=-10", .range(90..<100)),
        ("bytes=95-200", .range(95..<100)), ("bytes=-500", .range(0..<100)), ("bytes=100-", .unsatisfiable),
        ("bytes=200-300", .unsatisfiable), ("bytes=-0", .unsatisfiable), ("bytes=5-1", .none),
        ("bytes=0-1,5-6", .none), ("items=0-1", .none), ("bytes=x-y", .none),
    ])
    func parsesSingleRanges(header: String, expected: ByteRange) {
        #expect(ByteRange.parse(header, size: 100) == expected)
    }
}
