import Testing

@testable import FerryCDN

@Suite struct HTTPDateParsingTests {
    /// RFC 9110 §5.6.7's example instant, Sun, 06 Nov 1994 08:49:37 GMT.
    let example: Double = 784_111_777

    @Test(arguments: [
        "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "  Sun, 06 Nov 1994 08:49:37 GMT ",
    ])
    func allThreeFormatsParseToTheSameInstant(text: String) {
        #expect(HTTPDateParsing.parse(text) == example)
    }

    @Test func formatWritesIMFFixdate() {
        #expect(HTTPDateParsing.format(example) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateParsing.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateParsing.format(t0) == "Tue, 14 Nov 2023 22:13:20 GMT")
    }

    @Test(arguments: [0, 951_782_400, 1_709_164_800, 1_709_251_199, 4_102_444_800, t0])
    func formatAndParseRoundTrip(seconds: Double) {
        #expect(HTTPDateParsing.parse(HTTPDateParsing.format(seconds)) == seconds)
    }

    @Test func leapDaysAreValidOnlyInLeapYears() {
        #expect(HTTPDateParsing.parse("Thu, 29 Feb 2024 00:00:00 GMT") == 1_709_164_800)
        #expect(HTTPDateParsing.parse("Tue, 29 Feb 2000 00:00:00 GMT") != nil)
        #expect(HTTPDateParsing.parse("Thu, 29 Feb 2100 00:00:00 GMT") == nil)
        #expect(HTTPDateParsing.parse("Wed, 29 Feb 2023 00:00:00 GMT") == nil)
    }

    @Test func rfc850TwoDigitYearsFallIn1970To2069() {
        #expect(HTTPDateParsing.parse("Thursday, 01-Jan-70 00:00:00 GMT") == 0)
        #expect(HTTPDateParsing.parse("Friday, 01-Jan-27 00:00:00 GMT") == 1_798_761_600)
    }

    @Test(arguments: [
        "", "0", "-1", "tomorrow", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT junk", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT", "Sunday, 06 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
    ])
    func invalidDatesAreRejected(text: String) {
        #expect(HTTPDateParsing.parse(text) == nil)
    }
}
