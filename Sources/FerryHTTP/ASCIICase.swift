extension UInt8 {
    /// The byte in lower case if it is an ASCII capital, else itself: header names, tokens and
    /// DNS labels fold only A to Z (`| 0x20` alone would also turn `_` into DEL and `^` into `~`).
    @inline(__always)
    public var asciiLowercased: UInt8 {
        self &- UInt8(ascii: "A") < 26 ? self | 0x20 : self
    }
}
