import WasmParser

/// Where one function body gets its safe points, as edits of its bytes.
///
/// A loop is wrapped so that its own body stays free of calls:
///
/// ```
/// block T                     ;; done
///   loop                      ;; outer
///     block                   ;; slow
///       loop T                ;; the original loop
///         global.get $flag
///         br_if 1             ;; to slow
///         ...its body...      ;; branches that leave it reach 3 labels further out
///       end
///       br 2                  ;; to done, with the loop's result
///     end
///     call $safepoint         ;; the stack is unwound here, and rewound to here
///     br 0                    ;; back into the loop, at the header it left
///   end
///   unreachable
/// end
/// ```
///
/// Asyncify guards every stretch of code without calls in a function that can unwind; with the
/// call outside the original loop, that guard is met once per entry into the loop instead of once
/// per iteration, and the loop runs as it did. (With the call inside, the same SHA-256 ran 35%
/// slower.) A loop whose block type names a function type (it may take parameters) keeps the
/// simple form, `global.get $flag; if; call $safepoint; end` at its header. A function that calls
/// others tests the flag on entry too, so recursion without loops reaches safe points as well.
struct SafepointBody {
    struct Edit {
        var at: Int
        var removing = 0
        var inserting: [UInt8]
    }

    /// The body's local declarations, and its instructions to the final `end`.
    var locals: Range<Int> = 0..<0
    var expression: Range<Int>
    var edits: [Edit] = []

    init(_ code: Code, bytes: [UInt8], flag: UInt32, stub: UInt32) throws {
        self.expression = code.expression.indices
        let testFlag = [0x23] + WasmBinary.u32(flag)
        let callStub = [0x10] + WasmBinary.u32(stub)
        var parser = ExpressionParser(code: code)
        let base = code.expression.startIndex - parser.offset
        var scanner = InstructionScanner()
        // One entry per label in scope, the function's own first: whether it is a wrapped loop.
        var wrapped = [false]
        var calls = false
        while true {
            let start = base + parser.offset
            guard let visit = try parser.parse() else { break }
            visit(visitor: &scanner)
            let end = base + parser.offset
            switch scanner.last {
            case .block, .if:
                wrapped.append(false)
            case .loop(let blockType):
                if case .funcType = blockType {
                    wrapped.append(false)
                    self.edits.append(Edit(at: end, inserting: testFlag + [0x04, 0x40] + callStub + [0x0B]))
                } else {
                    wrapped.append(true)
                    let type = Array(bytes[(start + 1)..<end])
                    self.edits.append(Edit(at: start, inserting: [0x02] + type + [0x03, 0x40, 0x02, 0x40]))
                    self.edits.append(Edit(at: end, inserting: testFlag + [0x0D, 0x01]))
                }
            case .end:
                if wrapped.removeLast() {
                    self.edits.append(
                        Edit(at: end, inserting: [0x0C, 0x02, 0x0B] + callStub + [0x0C, 0x00, 0x0B, 0x00, 0x0B])
                    )
                }
            case .br(let depth), .brIf(let depth):
                let moved = Self.depth(depth, labels: wrapped)
                if moved != depth {
                    let opcode = bytes[start]
                    self.edits.append(
                        Edit(at: start, removing: end - start, inserting: [opcode] + WasmBinary.u32(moved))
                    )
                }
            case .brTable(let table):
                let targets = table.labelIndices.map { Self.depth($0, labels: wrapped) }
                let fallback = Self.depth(table.defaultIndex, labels: wrapped)
                if targets != table.labelIndices || fallback != table.defaultIndex {
                    var replacement: [UInt8] = [0x0E] + WasmBinary.vector(count: targets.count)
                    for target in targets { replacement += WasmBinary.u32(target) }
                    replacement += WasmBinary.u32(fallback)
                    self.edits.append(Edit(at: start, removing: end - start, inserting: replacement))
                }
            case .call, .callIndirect:
                calls = true
            default:
                break
            }
        }
        if let unsupported = scanner.unsupported {
            throw SafepointRewriter.Refusal(
                description:
                    "it uses \(unsupported), which Ferry cannot yet make resumable (Asyncify does not support it)"
            )
        }
        if calls {
            self.edits.insert(
                Edit(at: self.expression.lowerBound, inserting: testFlag + [0x04, 0x40] + callStub + [0x0B]),
                at: 0
            )
        }
    }

    /// A branch `depth` labels out, as it must read once the wrapped loops it leaves each put
    /// three labels between it and its target.
    private static func depth(_ depth: UInt32, labels: [Bool]) -> UInt32 {
        let target = labels.count - 1 - Int(depth)
        guard target >= 0 else { return depth }
        let crossed = labels[(target + 1)...].filter { $0 }.count
        return depth + UInt32(3 * crossed)
    }

    /// The body again, with its edits: local declarations, then the edited instructions.
    func rewritten(_ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes[self.locals])
        var copied = self.expression.lowerBound
        // Edits were made in the order of the code; at one offset they stay in that order.
        for edit in self.edits.enumerated().sorted(by: { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) })
            .map(\.element)
        {
            body += bytes[copied..<edit.at]
            body += edit.inserting
            copied = edit.at + edit.removing
        }
        body += bytes[copied..<self.expression.upperBound]
        return body
    }
}

/// Remembers the last instruction, and refuses what Asyncify cannot unwind through.
struct InstructionScanner: AnyInstructionVisitor {
    typealias VisitorError = Never
    var binaryOffset = 0
    var last: Instruction = .nop
    var unsupported: String?

    mutating func visit(_ instruction: Instruction) {
        self.last = instruction
        switch instruction {
        case .throw, .throwRef, .tryTable: self.unsupported = self.unsupported ?? "exception handling"
        case .returnCall, .returnCallIndirect, .returnCallRef: self.unsupported = self.unsupported ?? "tail calls"
        case .callRef, .refAsNonNull, .brOnNull, .brOnNonNull:
            self.unsupported = self.unsupported ?? "typed function references"
        case .refI31, .i31GetS, .i31GetU, .structNew, .structNewDefault, .structGet, .structGetS, .structGetU,
            .structSet, .arrayNew, .arrayNewDefault, .arrayNewFixed, .arrayGet, .arrayGetS, .arrayGetU, .arraySet,
            .arrayLen, .refEq, .anyConvertExtern, .externConvertAny, .arrayNewData, .arrayNewElem, .arrayFill,
            .arrayCopy, .arrayInitData, .arrayInitElem, .refTest, .refCast, .brOnCast, .brOnCastFail:
            self.unsupported = self.unsupported ?? "garbage-collected types"
        default: break
        }
    }
}
