import WasmParser

/// The first half of making any module movable: a rewrite of its binary, in place of what a
/// compiler would have to emit, so that a running guest reaches a safe point often.
///
/// - Every loop header and the entry of every function that calls another test a flag global
///   and, when it is set, call a stub function (``SafepointBody``). Binaryen
///   (``Binaryen/asyncify(_:stubIndex:unwindImports:)``) then turns the stub into the import
///   `ferry.safepoint`, where the host may unwind the stack. The host sets the flag from another
///   thread (``GuestInterrupt``): a loop that never calls the host, or recursion without loops,
///   comes to the host within one iteration or call. The test is two instructions per iteration
///   while nobody asks.
/// - Memory and every mutable global are exported (those not yet), so a snapshot can carry them.
/// - The flag is exported as `__ferry_safepoint`; `__ferry_unwind_buffer` and
///   `__ferry_unwind_size` say where the host put the buffer Asyncify saves the stack into (0
///   until the first capture).
///
/// Nothing else moves: the stub, its type and the new globals are appended, so no index in the
/// module changes, and every other byte is copied as it was.
struct SafepointRewriter {
    static let flagExport = "__ferry_safepoint"
    static let unwindBufferExport = "__ferry_unwind_buffer"
    static let unwindSizeExport = "__ferry_unwind_size"

    struct Output {
        var bytes: [UInt8]
        /// The stub's function index, for Binaryen to turn into the import.
        var stubIndex: UInt32
    }

    /// Why a module cannot be made movable.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    static func rewrite(_ bytes: [UInt8]) throws -> Output {
        var parts = try ModuleParts(bytes)
        let stubType = parts.typeCount
        let stubIndex = parts.stubIndex
        let flagGlobal = parts.flagGlobal

        var code = WasmBinary.vector(count: parts.codes.count + 1)
        for function in parts.codes {
            let body = function.rewritten(bytes)
            code += WasmBinary.u32(UInt32(body.count)) + body
        }
        code += [0x02, 0x00, 0x0B]  // the stub: no locals, end

        var exports: [(String, UInt8, UInt32)] = []
        var names = parts.exportNames
        func export(_ name: String, kind: UInt8, index: UInt32) {
            guard names.insert(name).inserted else { return }
            exports.append((name, kind, index))
        }
        if parts.definesMemory, !parts.memoryExported { export("memory", kind: 0x02, index: 0) }
        for index in parts.unexportedMutableGlobals {
            // A weak move starts the guest again with its data but a fresh stack: the host must
            // know which global is the stack pointer (wasm-ld's global 0 when the names are stripped).
            let isStackPointer =
                parts.globalNames[index].map { $0 == "__stack_pointer" }
                ?? (index == 0 && parts.importedGlobals == 0 && parts.definesMemory)
            export(isStackPointer ? "__stack_pointer" : "__ferry_global_\(index)", kind: 0x03, index: index)
        }
        export(Self.flagExport, kind: 0x03, index: flagGlobal)
        export(Self.unwindBufferExport, kind: 0x03, index: flagGlobal + 1)
        export(Self.unwindSizeExport, kind: 0x03, index: flagGlobal + 2)

        parts.append(to: 1, count: 1, [0x60, 0x00, 0x00])
        parts.append(to: 3, count: 1, WasmBinary.u32(stubType))
        let mutableI32 = { (value: UInt32) in [0x7F, 0x01, 0x41] + WasmBinary.s32(value) + [0x0B] }
        parts.append(to: 6, count: 3, mutableI32(0) + mutableI32(0) + mutableI32(0))
        parts.append(
            to: 7,
            count: exports.count,
            exports.flatMap { WasmBinary.name($0.0) + [$0.1] + WasmBinary.u32($0.2) }
        )
        parts.replace(10, with: code)
        return Output(bytes: parts.assemble(), stubIndex: stubIndex)
    }
}

/// A module cut into its sections, with what the rewrite needs to know of them.
private struct ModuleParts {
    let bytes: [UInt8]
    /// Each section: its id, and its contents' range; new contents by id replace or extend them.
    var sections: [(id: UInt8, contents: Range<Int>)] = []
    var replaced: [UInt8: [UInt8]] = [:]
    var appended: [UInt8: (count: Int, bytes: [UInt8])] = [:]
    var typeCount: UInt32 = 0
    var importedFunctions: UInt32 = 0
    var importedGlobals: UInt32 = 0
    var definedGlobals: UInt32 = 0
    var unexportedMutableGlobals: [UInt32] = []
    var exportNames: Set<String> = []
    /// Globals by index, from the name section when the module has one.
    var globalNames: [UInt32: String] = [:]
    var definesMemory = false
    var memoryExported = false
    var codes: [SafepointBody] = []
    /// The new global, after every other, and the stub, after every other function.
    var flagGlobal: UInt32 { self.importedGlobals + self.definedGlobals }
    var stubIndex: UInt32 { self.importedFunctions + UInt32(self.codes.count) }

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        var offset = 8
        while offset < bytes.count {
            let id = bytes[offset]
            let (size, next) = try WasmBinary.readU32(bytes, at: offset + 1)
            guard next + Int(size) <= bytes.count else { throw SafepointRewriter.Refusal(description: "truncated") }
            self.sections.append((id, next..<next + Int(size)))
            offset = next + Int(size)
        }
        var mutableGlobals: [UInt32] = []
        var exportedGlobals: Set<UInt32> = []
        var parser = WasmParser.Parser(bytes: bytes)
        while let payload = try parser.parseNext() {
            switch payload {
            case .typeSection(let groups):
                self.typeCount = UInt32(groups.reduce(0) { $0 + $1.types.count })
            case .importSection(let imports):
                for entry in imports {
                    if case .function = entry.descriptor { self.importedFunctions += 1 }
                    if case .global = entry.descriptor { self.importedGlobals += 1 }
                }
            case .memorySection(let memories):
                self.definesMemory = !memories.isEmpty
            case .globalSection(let globals):
                for (index, global) in globals.enumerated() where global.type.mutability == .variable {
                    mutableGlobals.append(self.importedGlobals + UInt32(index))
                }
                self.definedGlobals = UInt32(globals.count)
            case .exportSection(let exports):
                for entry in exports {
                    self.exportNames.insert(entry.name)
                    switch entry.descriptor {
                    case .memory(0): self.memoryExported = true
                    case .global(let index): exportedGlobals.insert(index)
                    default: break
                    }
                }
            case .codeSection(let codes):
                let (flag, stub) = (self.flagGlobal, self.importedFunctions + UInt32(codes.count))
                self.codes = try codes.map { try SafepointBody($0, bytes: bytes, flag: flag, stub: stub) }
            case .customSection(let section) where section.name == "name":
                var names = NameSectionParser(stream: StaticByteStreamSource(bytes: section.bytes))
                for case .globals(let map) in (try? names.parseAll()) ?? [] { self.globalNames = map }
            default:
                break
            }
        }
        self.unexportedMutableGlobals = mutableGlobals.filter { !exportedGlobals.contains($0) }
        // Each body's local declarations lie between its size and its instructions.
        if let code = self.sections.first(where: { $0.id == 10 }) {
            var (_, offset) = try WasmBinary.readU32(bytes, at: code.contents.lowerBound)
            for index in self.codes.indices {
                let (_, start) = try WasmBinary.readU32(bytes, at: offset)
                self.codes[index].locals = start..<self.codes[index].expression.lowerBound
                offset = self.codes[index].expression.upperBound
            }
        }
    }

    mutating func append(to id: UInt8, count: Int, _ bytes: [UInt8]) {
        guard count > 0 else { return }
        self.appended[id] = (count, bytes)
    }

    mutating func replace(_ id: UInt8, with contents: [UInt8]) {
        self.replaced[id] = contents
    }

    /// The module again, with the changes: a vector section that gains entries keeps its own
    /// first, and one the module lacked is put where the binary format orders it.
    func assemble() -> [UInt8] {
        var out = Array(self.bytes[0..<8])
        var pending = Set(self.replaced.keys).union(self.appended.keys)
        func emit(_ id: UInt8, existing: Range<Int>?) {
            var contents: [UInt8]
            if let replacement = self.replaced[id] {
                contents = replacement
            } else if let existing {
                contents = Array(self.bytes[existing])
            } else {
                contents = [0x00]
            }
            if let (count, bytes) = self.appended[id] {
                let (old, start) = (try? WasmBinary.readU32(contents, at: 0)) ?? (0, 1)
                contents = WasmBinary.u32(old + UInt32(count)) + contents[start...] + bytes
            }
            out += [id] + WasmBinary.u32(UInt32(contents.count)) + contents
            pending.remove(id)
        }
        for section in self.sections {
            if section.id != 0 {
                for id in pending.sorted(by: { Self.order($0) < Self.order($1) })
                where Self.order(id) < Self.order(section.id) {
                    emit(id, existing: nil)
                }
            }
            if pending.contains(section.id) {
                emit(section.id, existing: section.contents)
            } else {
                out += [section.id] + WasmBinary.u32(UInt32(section.contents.count)) + self.bytes[section.contents]
            }
        }
        for id in pending.sorted(by: { Self.order($0) < Self.order($1) }) { emit(id, existing: nil) }
        return out
    }

    /// Where a section goes: the tag section sits between memory and global, data count before code.
    private static func order(_ id: UInt8) -> Int {
        switch id {
        case 13: 55
        case 12: 95
        default: Int(id) * 10
        }
    }
}

/// The binary format's integers and names.
enum WasmBinary {
    static func u32(_ value: UInt32) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    /// A signed LEB128 of `value` read as an i32 (what `i32.const` takes).
    static func s32(_ value: UInt32) -> [UInt8] {
        var value = Int64(Int32(bitPattern: value))
        var out: [UInt8] = []
        while true {
            let byte = UInt8(value & 0x7F)
            value >>= 7
            if (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0) {
                out.append(byte)
                return out
            }
            out.append(byte | 0x80)
        }
    }

    static func vector(count: Int) -> [UInt8] { Self.u32(UInt32(count)) }

    static func name(_ text: String) -> [UInt8] { Self.u32(UInt32(text.utf8.count)) + Array(text.utf8) }

    /// An unsigned LEB128 at `offset`: its value and the offset after it.
    static func readU32(_ bytes: [UInt8], at offset: Int) throws -> (UInt32, Int) {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        var offset = offset
        while offset < bytes.count, shift < 35 {
            let byte = bytes[offset]
            result |= UInt32(byte & 0x7F) << shift
            offset += 1
            if byte & 0x80 == 0 { return (result, offset) }
            shift += 7
        }
        throw SafepointRewriter.Refusal(description: "a malformed integer at byte \(offset)")
    }
}
