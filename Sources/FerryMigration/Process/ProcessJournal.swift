import CFerryLinux
import FerryGuest
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a node with a data directory keeps of each of its processes, so that a process survives
/// the node's crash (`kill -9`) and never runs twice: its spec and claim, and the last state it
/// was captured in here — when it arrived, or when it began to leave. A process that never moved
/// has its spec only and starts again from the beginning.
///
/// Files, in `DATA/journal`: `NAME.json` (the entry), `NAME.state` (the execution state, a
/// ``GuestSnapshot`` without memory), `NAME.memory` (linear memory, raw, checked by CRC-32C) and
/// `NAME.layers` (its writable layers as they were then).
/// Written without fsync: a killed node loses nothing of them, a machine that loses power may.
final class ProcessJournal: Sendable {
    struct Entry: Codable, Sendable {
        var spec: ProcessSpec
        var epoch: UInt64
        /// The lease the node held (or holds) the process's claim under.
        var lease: UInt64
        var moves: Int
        var cpuMilliseconds: Double
        /// Whether a captured state goes with the entry.
        var captured: Bool
        /// What `ferry.go` returns if the guest was held in it: 0 arrived here, -1 it stays.
        var goResult: Int32
        /// A weak arrival starts again at `ferry_arrive`; anything else goes on where it stopped.
        var restarts: Bool
        /// Where the process's output file starts in its whole output.
        var logBase: Int
        var memoryChecksum: UInt32 = 0
    }

    let directory: String

    init?(dataDirectory: String?) {
        guard let dataDirectory else { return nil }
        self.directory = dataDirectory + "/journal"
        try? FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
    }

    /// Records `entry`, with the execution state and memory when captured.
    func write(
        _ entry: Entry,
        state: GuestSnapshot? = nil,
        memory: UnsafeRawBufferPointer? = nil,
        layers: [Int: PackedTree] = [:]
    ) throws {
        var entry = entry
        let base = "\(self.directory)/\(entry.spec.name)"
        if let state, let memory {
            entry.captured = true
            entry.memoryChecksum = ferry_crc32c(0, memory.baseAddress, memory.count)
            try Self.write(state.serialized(), to: base + ".state")
            try Self.write(memory, to: base + ".memory")
            try Self.write(Array(try JSONEncoder().encode(layers)), to: base + ".layers")
        }
        // The entry last, renamed into place: it names only state that is whole.
        try Self.write(Array(try JSONEncoder().encode(entry)), to: base + ".json")
    }

    /// Updates the claim an entry names (after the node claimed the process again).
    func update(_ name: String, epoch: UInt64, lease: UInt64) {
        guard var entry = self.entry(name) else { return }
        entry.epoch = epoch
        entry.lease = lease
        try? Self.write(Array(try JSONEncoder().encode(entry)), to: "\(self.directory)/\(name).json")
    }

    func remove(_ name: String) {
        for suffix in [".json", ".state", ".memory", ".layers"] { unlink("\(self.directory)/\(name)\(suffix)") }
    }

    func entry(_ name: String) -> Entry? {
        FileManager.default.contents(atPath: "\(self.directory)/\(name).json").flatMap {
            try? JSONDecoder().decode(Entry.self, from: $0)
        }
    }

    /// Every entry, with its captured state (memory included) when it has one. An entry whose
    /// state is damaged is skipped, with the reason.
    func entries() -> [(entry: Entry, state: GuestSnapshot?, layers: [Int: PackedTree], problem: String?)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { file in
            guard let entry = self.entry(String(file.dropLast(5))) else { return nil }
            guard entry.captured else { return (entry, nil, [:], nil) }
            let base = "\(self.directory)/\(entry.spec.name)"
            do {
                guard let state = FileManager.default.contents(atPath: base + ".state"),
                    let memory = FileManager.default.contents(atPath: base + ".memory")
                else { throw GuestSnapshotError.truncated(have: 0) }
                var snapshot = try GuestSnapshot(serialized: [UInt8](state))
                snapshot.memory = [UInt8](memory)
                let checksum = snapshot.memory.withUnsafeBytes { ferry_crc32c(0, $0.baseAddress, $0.count) }
                guard checksum == entry.memoryChecksum else { throw GuestSnapshotError.checksumMismatch }
                let layers = try FileManager.default.contents(atPath: base + ".layers").map {
                    try JSONDecoder().decode([Int: PackedTree].self, from: $0)
                }
                return (entry, snapshot, layers ?? [:], nil)
            } catch {
                return (entry, nil, [:], "\(error)")
            }
        }
    }

    private static func write(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try Self.write($0, to: path) }
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ProcessError("cannot write the journal file \(temporary): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            guard written > 0 else {
                throw ProcessError("cannot write the journal file \(temporary): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
        guard rename(temporary, path) == 0 else {
            throw ProcessError("cannot rename the journal file \(temporary): \(String(cString: strerror(errno)))")
        }
    }
}
