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
