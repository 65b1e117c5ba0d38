import Foundation

/// A labelled image data set as Ferry ships it (`Examples/digits/digits.bin`, from scikit-learn's
/// digits): rows of 64 pixels (0 to 16, an 8×8 image) and a label (0 to 9), 65 bytes each. The
/// same bytes are a node's data set for the softmax guest.
public struct LabeledImages: Sendable, Equatable {
    public static let features = 64
    public static let classes = 10
    public static let rowBytes = features + 1

    /// The rows, back to back.
    public let bytes: [UInt8]

    public var count: Int { self.bytes.count / Self.rowBytes }

    public init(bytes: [UInt8]) throws {
        guard bytes.count % Self.rowBytes == 0 else {
            throw ProcessError(
                "a data set of \(bytes.count) bytes is not whole rows of \(Self.rowBytes) bytes (64 pixels and a label)"
            )
        }
        for row in stride(from: 0, to: bytes.count, by: Self.rowBytes) {
            guard bytes[row + Self.features] < Self.classes,
                bytes[row..<(row + Self.features)].allSatisfy({ $0 <= 16 })
            else {
                throw ProcessError(
                    "row \(row / Self.rowBytes) of the data set is not 64 pixels of 0 to 16 and a label of 0 to 9"
                )
            }
        }
        self.bytes = bytes
    }

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProcessError("cannot read the data set \(path)")
        }
        try self.init(bytes: [UInt8](data))
    }

    public func label(_ row: Int) -> Int { Int(self.bytes[row * Self.rowBytes + Self.features]) }

    public func pixels(_ row: Int) -> ArraySlice<UInt8> {
        self.bytes[(row * Self.rowBytes)..<(row * Self.rowBytes + Self.features)]
    }

    /// The rows at `indices`, as a data set of their own.
    public func subset(_ indices: [Int]) -> LabeledImages {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(indices.count * Self.rowBytes)
        for index in indices { bytes += self.bytes[(index * Self.rowBytes)..<((index + 1) * Self.rowBytes)] }
        // Rows of a valid set are valid.
        return try! LabeledImages(bytes: bytes)
    }
}
