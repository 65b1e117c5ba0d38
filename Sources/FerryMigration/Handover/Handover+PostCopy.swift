/// Post-copy at the source: after the commit the process runs at the target, and its pages still
/// here go to it, each once: those it asks for (it waits for them) before the rest, which are
/// pushed in order from the last one asked for, where it is likely to touch next.
extension Handover {
    /// Pages pushed in one frame: small enough that a page asked for waits little behind it.
    static let pushPages = 32

    /// Post-copy's first pages, sent with the state: the guest's first wasm page (its data and,
    /// as clang lays memory out, its stack) and its unwound call stack, which the rewind reads
    /// at once.
    static func neededFirst(stack: Range<Int>?) -> [Range<Int>] {
        var first = [0..<65536]
        if let stack {
            let page = WrittenPages.pageSize
            first.append(stack.lowerBound / page * page..<(stack.upperBound + page - 1) / page * page)
        }
        return Self.union(first, [])
    }

    /// Sends every page of `runs` from `memory` (held still) once, the offsets in `wanted` and
    /// those asked for meanwhile first; then waits for the target to say it has them all.
    func push(_ runs: [Range<Int>], from memory: UnsafeRawBufferPointer, wanted: [Int]) throws {
        guard let socket = self.socket else { return }
        let page = WrittenPages.pageSize
        let count = memory.count / page
        var unsent = [Bool](repeating: false, count: count)
        var left = 0
        for run in runs {
            for index in run.lowerBound / page..<min(count, run.upperBound / page) where !unsent[index] {
                unsent[index] = true
                left += 1
            }
        }
        let total = left
        var asked = wanted
        var cursor = 0
        var pushed = 0
        while left > 0 {
            while socket.hasInput {
                asked.append(try MigrationSocket.wanted(try socket.receive(.want).1))
            }
            var start: Int
            var most = Self.pushPages
            if !asked.isEmpty {
                start = asked.removeFirst() / page
                // Sent already (it is on its way), or not this memory's: nothing to do.
                guard start >= 0, start < count, unsent[start] else { continue }
                most = 1
                self.copied.pagesOnDemand += 1
            } else {
                while !unsent[cursor] { cursor = (cursor + 1) % count }
                start = cursor
            }
            var end = start
            while end < count, end - start < most, unsent[end] {
                unsent[end] = false
                end += 1
            }
            left -= end - start
            cursor = end % count
            try socket.sendPages(
                at: start * page,
                UnsafeRawBufferPointer(rebasing: memory[(start * page)..<(end * page)])
            )
            self.copied.pagesSent += end - start
            pushed += 1
            if pushed == 1 { HandoverPhase.reached(.postCopy, on: .source) }
            self.progress((total - left) * page, total * page)
        }
        // Pages asked for while their push was on its way are answered by the push.
        while try socket.receive(.want, .complete).0 == .want {}
    }

    /// The parts of `runs` inside `within`.
    static func intersection(_ runs: [Range<Int>], _ within: [Range<Int>]) -> [Range<Int>] {
        Self.union(
            runs.flatMap { run in
                within.compactMap { part in run.overlaps(part) ? run.clamped(to: part) : nil }
            },
            []
        )
    }

    /// `runs` without the parts in `taken`.
    static func subtracting(_ taken: [Range<Int>], from runs: [Range<Int>]) -> [Range<Int>] {
        var rest = runs
        for cut in taken {
            rest = rest.flatMap { run -> [Range<Int>] in
                guard run.overlaps(cut) else { return [run] }
                return [run.lowerBound..<cut.lowerBound, cut.upperBound..<run.upperBound].filter { !$0.isEmpty }
            }
        }
        return rest
    }
}
