/// How a process without TLS recognises a peer that speaks it: the first bytes of a TLS record,
/// an alert (0x15, what a TLS server sends a plain client it refuses) or a handshake (0x16), of
/// version 3.x. Neither begins a FerryWire frame (its magic starts with 0x46) nor a migration
/// frame (types 1 to 12).
public enum TLSRecord {
    public static func begins(_ first: UInt8, _ second: UInt8) -> Bool {
        (first == 0x15 || first == 0x16) && second == 0x03
    }
}
