/// HTTP-date (RFC 9110 §5.6.7) to and from seconds since the Unix epoch, without Foundation so it
/// can run for every `Date`, `Expires` and `Last-Modified` the edge sees.
///
/// Not `FerryHTTP.HTTPDate`, which reads only IMF-fixdate in whole seconds through `timegm`: a cache
/// must also accept the two obsolete formats, and reckons in `Double` seconds without the C library.
///
/// Recipients must accept all three formats:
/// - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
/// - RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
/// - asctime: `Sun Nov  6 08:49:37 1994`
public enum HTTPDateParsing {
    /// The epoch seconds of `text`, or nil when it is not a valid HTTP-date. The weekday name must be
    /// a real one but is not checked against the date. An RFC 850 two-digit year is read as 1970–2069,
    /// a fixed window close to §5.6.7's "not more than 50 years in the future" without a clock.
    public static func parse(_ text: String) -> Double? {
        var scanner = Scanner(HeaderFields.trimmingWhitespace(text.utf8))
        guard let weekday = scanner.letters(), let dayIndex = weekdayIndex(weekday) else { return nil }
        if scanner.skip(",") {
            guard scanner.skip(" ") else { return nil }
            if weekday.count == 3 {
                return imfFixdate(&scanner)
            } else if weekday.count == longWeekdays[dayIndex].utf8.count {
                return rfc850(&scanner)
            }
            return nil
        }
        guard weekday.count == 3, scanner.skip(" ") else { return nil }
        return asctime(&scanner)
    }

    /// IMF-fixdate, the format to send (RFC 9110 §5.6.7). Times outside 1970–9999 are clamped.
    public static func format(_ seconds: Double) -> String {
        let whole = Int(min(max(seconds.isNaN ? 0 : seconds, 0), 253_402_300_799).rounded(.down))
        let days = whole >= 0 ? whole / 86_400 : (whole - 86_399) / 86_400
        let secondOfDay = whole - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (index 4).
        return "\(shortWeekdays[weekday]), \(twoDigits(day)) \(months[month - 1]) \(year) "
            + "\(twoDigits(secondOfDay / 3600)):\(twoDigits(secondOfDay / 60 % 60)):\(twoDigits(secondOfDay % 60)) GMT"
    }

    // MARK: - Formats

    private static func imfFixdate(_ scanner: inout Scanner) -> Double? {
        guard let day = scanner.digits(exactly: 2), scanner.skip(" "),
            let month = month(scanner.letters()), scanner.skip(" "),
            let year = scanner.digits(exactly: 4), scanner.skip(" "),
            let time = timeOfDay(&scanner), scanner.skip(" "), scanner.skip("GMT"), scanner.isAtEnd
        else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    private static func rfc850(_ scanner: inout Scanner) -> Double? {
        guard let day = scanner.digits(exactly: 2), scanner.skip("-"),
            let month = month(scanner.letters()), scanner.skip("-"),
            let shortYear = scanner.digits(exactly: 2), scanner.skip(" "),
            let time = timeOfDay(&scanner), scanner.skip(" "), scanner.skip("GMT"), scanner.isAtEnd
        else { return nil }
        let year = shortYear >= 70 ? 1900 + shortYear : 2000 + shortYear
        return epoch(year: year, month: month, day: day, time: time)
    }

    private static func asctime(_ scanner: inout Scanner) -> Double? {
        guard let month = month(scanner.letters()), scanner.skip(" ") else { return nil }
        let day: Int?
        if scanner.skip(" ") {
            day = scanner.digits(exactly: 1)
        } else {
            day = scanner.digits(exactly: 2)
        }
        guard let day, scanner.skip(" "), let time = timeOfDay(&scanner), scanner.skip(" "),
            let year = scanner.digits(exactly: 4), scanner.isAtEnd
        else { return nil }
        return epoch(year: year, month: month, day: day, time: time)
    }

    private static func timeOfDay(_ scanner: inout Scanner) -> Int? {
        guard let hour = scanner.digits(exactly: 2), scanner.skip(":"),
            let minute = scanner.digits(exactly: 2), scanner.skip(":"),
            let second = scanner.digits(exactly: 2),
            hour < 24, minute < 60, second <= 60  // 60: a leap second
        else { return nil }
        return hour * 3600 + minute * 60 + second
    }

    private static func epoch(year: Int, month: Int, day: Int, time: Int) -> Double? {
        guard day >= 1, day <= daysIn(month: month, year: year) else { return nil }
        return Double(days(fromCivilYear: year, month: month, day: day) * 86_400 + time)
    }

    // MARK: - Calendar (proleptic Gregorian, Howard Hinnant's algorithms)

    static func days(fromCivilYear year: Int, month: Int, day: Int) -> Int {
        let year = month <= 2 ? year - 1 : year
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static let shortWeekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let longWeekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The weekday's index if `name` is its three-letter or full name (the grammar is case-sensitive).
    private static func weekdayIndex(_ name: [UInt8]) -> Int? {
        let text = String(decoding: name, as: UTF8.self)
        return shortWeekdays.firstIndex(of: text) ?? longWeekdays.firstIndex(of: text)
    }

    private static func month(_ name: [UInt8]?) -> Int? {
        guard let name, name.count == 3 else { return nil }
        return months.firstIndex(of: String(decoding: name, as: UTF8.self)).map { $0 + 1 }
    }

    private static func twoDigits(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }

    /// A cursor over the bytes of a date.
    private struct Scanner {
        let bytes: Substring.UTF8View
        var index: Substring.UTF8View.Index

        init(_ bytes: Substring.UTF8View) {
            self.bytes = bytes
            self.index = bytes.startIndex
        }

        var isAtEnd: Bool { self.index == self.bytes.endIndex }

        /// Consumes `literal` if the input continues with it.
        mutating func skip(_ literal: StaticString) -> Bool {
            var cursor = self.index
            for byte in UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount) {
                guard cursor < self.bytes.endIndex, self.bytes[cursor] == byte else { return false }
                cursor = self.bytes.index(after: cursor)
            }
            self.index = cursor
            return true
        }

        mutating func letters() -> [UInt8]? {
            var letters: [UInt8] = []
            while self.index < self.bytes.endIndex {
                let byte = self.bytes[self.index]
                guard (byte | 0x20) >= UInt8(ascii: "a"), (byte | 0x20) <= UInt8(ascii: "z") else { break }
                letters.append(byte)
                self.index = self.bytes.index(after: self.index)
            }
            return letters.isEmpty ? nil : letters
        }

        mutating func digits(exactly count: Int) -> Int? {
            var value = 0
            var cursor = self.index
            for _ in 0..<count {
                guard cursor < self.bytes.endIndex else { return nil }
                let byte = self.bytes[cursor]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                cursor = self.bytes.index(after: cursor)
            }
            self.index = cursor
            return value
        }
    }
}
