import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// Binaryen's Asyncify, in process: `libbinaryen.so` from Debian's `binaryen` package, loaded when
/// first needed, so that Ferry builds and runs without it.
enum Binaryen {
    /// Nil when the library loads; otherwise what to tell the user.
    static let unavailableReason: String? = {
        var reason = [CChar](repeating: 0, count: 256)
        guard ferry_binaryen_available(&reason, reason.count) == 0 else { return nil }
        let detail = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "Binaryen's library is not installed (\(detail)); install Debian's binaryen package"
    }()

    /// Turns function `stubIndex` into the import `ferry.safepoint` and runs Asyncify so that the
    /// module can unwind at `unwindImports` (`module.name` each), then optimizes.
    static func asyncify(_ module: [UInt8], stubIndex: UInt32, unwindImports: [String]) throws -> [UInt8] {
        if let reason = Self.unavailableReason { throw SafepointRewriter.Refusal(description: reason) }
        var size = 0
        var reason = [CChar](repeating: 0, count: 512)
        let output = module.withUnsafeBufferPointer { input in
            ferry_binaryen_asyncify(
                input.baseAddress,
                input.count,
                stubIndex,
                unwindImports.joined(separator: ","),
                &size,
                &reason,
                reason.count
            )
        }
        guard let output else {
            let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SafepointRewriter.Refusal(description: "Binaryen could not instrument it: \(text)")
        }
        defer { free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
