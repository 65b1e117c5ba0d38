import FerryHTTP
import Testing

@Suite struct ByteRangeTests {
    @Test(arguments: [
        ("bytes=0-9", ByteRange.range(0..<10)), ("bytes=90-", .range(90..<100)), ("bytes=-10", .range(90..<100)),
        ("bytes=95-200", .range(95..<100)), ("bytes=-500", .range(0..<100)), ("bytes=100-", .unsatisfiable),
        ("bytes=200-300", .unsatisfiable), ("bytes=-0", .unsatisfiable), ("bytes=5-1", .none),
        ("bytes=0-1,5-6", .none), ("items=0-1", .none), ("bytes=x-y", .none),
        ("bytes=0-9223372036854775807", .range(0..<100)),
    ])
    func parsesSingleRanges(header: String, expected: ByteRange) {
        #expect(ByteRange.parse(header, size: 100) == expected)
    }
}
