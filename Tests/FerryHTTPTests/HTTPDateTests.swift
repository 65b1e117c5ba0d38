import FerryHTTP
import Testing

@Suite struct HTTPDateTests {
    @Test func anIMFFixdateRoundTrips() {
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
    }

    /// Clients write these fields: numbers out of range are not a date, and never a crash.
    @Test func outOfRangeFieldsAreNotADate() {
        for text in [
            "Sun, 06 Nov 99999999999 08:49:37 GMT", "Sun, 99999999999 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 99999999999:49:37 GMT", "Sun, 06 Nov 1994 08:-1:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
        ] {
            #expect(HTTPDate.parse(text) == nil, "\(text)")
        }
    }
}
