#if canImport(Glibc)
import Glibc
#endif

/// The small site `ferry up` serves when no root is given, written from text embedded here so the
/// node needs no files from the checkout.
enum DemoSite {
    struct Error: Swift.Error, CustomStringConvertible {
        var description: String
    }

    static let index = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>Ferry</title></head>
        <body>
        <h1>Ferry node</h1>
        <p>This page comes from Ferry's file server. Try <code>big.bin</code> (8 MiB) with a Range
        header, or fetch it slowly and cancel it through the control endpoint.</p>
        </body></html>

        """

    /// Writes the demo site to a fresh temporary directory and returns its path.
    static func write() throws -> String {
        var template = Array("/tmp/ferry-demo-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Error(
                description:
                    "cannot create a directory for the demo site under /tmp: \(String(cString: strerror(errno)))"
            )
        }
        let root = String(cString: made)
        try self.write(Array(index.utf8), to: root + "/index.html")
        try self.write(Array("Hello from Ferry.\n".utf8), to: root + "/hello.txt")
        var big = [UInt8](repeating: 0, count: 8 << 20)
        for index in big.indices { big[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        try self.write(big, to: root + "/big.bin")
        return root
    }

    private static func write(_ bytes: [UInt8], to path: String) throws {
        guard let file = fopen(path, "wb") else {
            throw Error(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else {
            throw Error(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
