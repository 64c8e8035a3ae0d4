/// A small, linear-time regular expression over bytes, for header, cookie and query matchers.
///
/// Supported subset (anything else is rejected when the config is loaded):
/// - literals (any byte other than `\ . [ ] ( ) | * + ? ^ $ { }`), and `\` followed by a
///   punctuation character for that character literally; `\t`, `\n`, `\r`;
/// - `.` (any byte);
/// - classes `[abc]`, `[a-z0-9_]`, negated `[^...]`, with `\d \w \s` inside;
/// - `\d` (`[0-9]`), `\w` (`[A-Za-z0-9_]`), `\s` (space, `\t \n \r \f \v`) and their negations `\D \W \S`;
/// - anchors `^` (start of the value) and `$` (end of the value);
/// - quantifiers `*`, `+`, `?` (greedy or not makes no difference: only "does it match" is asked);
/// - alternation `|` and groups `( )` (also written `(?: )`; nothing is captured);
/// - a leading `(?i)` makes the whole pattern ASCII case-insensitive.
///
/// Not supported: counted repetition `{m,n}`, backreferences, lookaround, `\b`, Unicode classes.
/// A pattern matches when it matches anywhere in the value (search, as `grep` does); anchor it with
/// `^...$` to require the whole value. Patterns compile to a Thompson NFA of at most 256 states,
/// simulated with fixed-size bit sets: time is linear in the input, and matching allocates nothing.
///
/// Hostile patterns are refused while they are parsed, before any tree is built past the limit:
/// groups nest at most `maxNesting` deep (the parser and code generator recurse once per group
/// and per stacked quantifier), the NFA state count is counted as each item is read (so a
/// pattern of a million alternatives fails at the 256th state, not after building the tree), and
/// a pattern is at most `maxPatternBytes` long.
package struct ByteRegex: Sendable {
    /// The pattern as written in the config.
    package let pattern: String
    /// NFA instructions; the last one is `.match`.
    let insts: [Inst]
    /// Byte sets referenced by `.consume` instructions.
    let sets: [ByteSet]
    /// Number of NFA states (instructions, the final `match` included).
    package var stateCount: Int { insts.count }
    /// Epsilon closures: `closures[context * insts.count + pc]` is the set of consuming and
    /// matching states reachable from `pc` without input; context bit 0 = at start, bit 1 = at end.
    let closures: [StateSet]
    /// True when no thread can start after position 0 (the pattern begins with `^` on every branch).
    let anchoredAtStart: Bool

    /// Largest number of NFA states a pattern may compile to.
    package static let maxStates = StateSet.capacity
    /// Deepest nesting of groups (and of quantifiers stacked on one item, `a**`) a pattern may have.
    package static let maxNesting = 32
    /// Longest pattern, in bytes.
    package static let maxPatternBytes = 4096

    /// One NFA instruction.
    struct Inst: Sendable {
        /// Consume one byte in a set; fork; jump; assert start/end of input; accept.
        enum Op: UInt8, Sendable { case consume, split, jump, assertStart, assertEnd, match }
        /// The operation.
        var op: Op
        /// `.consume`: index into `sets`; `.split`, `.jump`: first target.
        var x: Int32
        /// `.split`: second target.
        var y: Int32
    }

    /// Why a pattern was rejected: a message and the byte offset in the pattern.
    package struct SyntaxError: Error, Sendable, Equatable {
        /// What is wrong, e.g. "unbalanced `)`".
        package var message: String
        /// Byte offset into the pattern where the problem was found.
        package var offset: Int
    }

    /// Compiles `pattern`, or throws a `SyntaxError` naming what is unsupported or malformed.
    package static func compile(_ pattern: String) throws(SyntaxError) -> ByteRegex {
        guard pattern.utf8.count <= maxPatternBytes else {
            throw SyntaxError(message: "pattern is too long (\(pattern.utf8.count) bytes, at most \(maxPatternBytes))",
                              offset: maxPatternBytes)
        }
        var parser = Parser(bytes: Array(pattern.utf8))
        let tree = try parser.parseAll()
        var gen = CodeGen()
        gen.emit(tree)
        gen.insts.append(Inst(op: .match, x: 0, y: 0))
        assert(gen.insts.count == parser.states + 1, "the parser's state count disagrees with the code generator")
        guard gen.insts.count <= maxStates else {
            throw SyntaxError(
                message: "pattern is too large (\(gen.insts.count) NFA states, at most \(maxStates))",
                offset: 0)
        }
        let closures = computeClosures(gen.insts)
        let count = gen.insts.count
        return ByteRegex(
            pattern: pattern, insts: gen.insts, sets: gen.sets, closures: closures,
            anchoredAtStart: closures[0 * count].isEmpty)
    }

    /// True when the pattern matches somewhere in `input`. Allocation-free.
    package func matches(_ input: UnsafeRawBufferPointer) -> Bool {
        insts.withUnsafeBufferPointer { insts in
            sets.withUnsafeBufferPointer { sets in
                closures.withUnsafeBufferPointer { closures in
                    Self.run(insts: insts, sets: sets, closures: closures,
                             anchoredAtStart: anchoredAtStart, input: input)
                }
            }
        }
    }

    /// True when the pattern matches somewhere in `input` (convenience for tests and tools).
    package func matches(_ input: [UInt8]) -> Bool {
        input.withUnsafeBytes { matches($0) }
    }

    private static func run(
        insts: UnsafeBufferPointer<Inst>, sets: UnsafeBufferPointer<ByteSet>,
        closures: UnsafeBufferPointer<StateSet>, anchoredAtStart: Bool, input: UnsafeRawBufferPointer
    ) -> Bool {
        let n = input.count
        let count = insts.count
        let matchPC = count - 1
        var current = StateSet()
        var i = 0
        while true {
            let context = (i == 0 ? 1 : 0) | (i == n ? 2 : 0)
            if i == 0 || !anchoredAtStart {
                current.formUnion(closures[context * count])
            }
            if current.contains(matchPC) { return true }
            if i == n || (current.isEmpty && anchoredAtStart) { return false }
            let byte = input[i]
            let nextContext = i + 1 == n ? 2 : 0
            var next = StateSet()
            for w in 0..<StateSet.words {
                var bits = current[word: w]
                while bits != 0 {
                    let pc = w &* 64 &+ bits.trailingZeroBitCount
                    bits &= bits &- 1
                    let inst = insts[pc]
                    if inst.op == .consume && sets[Int(inst.x)].contains(byte) {
                        next.formUnion(closures[nextContext * count + pc + 1])
                    }
                }
            }
            current = next
            i += 1
        }
    }

    private static func computeClosures(_ insts: [Inst]) -> [StateSet] {
        let count = insts.count
        var result = [StateSet](repeating: StateSet(), count: 4 * count)
        var stack: [Int] = []
        for context in 0..<4 {
            for start in 0..<count {
                var visited = [Bool](repeating: false, count: count)
                var set = StateSet()
                stack.removeAll(keepingCapacity: true)
                stack.append(start)
                while let pc = stack.popLast() {
                    if visited[pc] { continue }
                    visited[pc] = true
                    let inst = insts[pc]
                    switch inst.op {
                    case .consume, .match: set.insert(pc)
                    case .split: stack.append(Int(inst.y)); stack.append(Int(inst.x))
                    case .jump: stack.append(Int(inst.x))
                    case .assertStart: if context & 1 != 0 { stack.append(pc + 1) }
                    case .assertEnd: if context & 2 != 0 { stack.append(pc + 1) }
                    }
                }
                result[context * count + start] = set
            }
        }
        return result
    }
}

// MARK: - Sets

/// A set of byte values (256 bits).
struct ByteSet: Sendable, Equatable {
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    /// The set of every byte.
    static var all: ByteSet { var s = ByteSet(); s.w0 = ~0; s.w1 = ~0; s.w2 = ~0; s.w3 = ~0; return s }

    /// True when `byte` is in the set.
    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return w0 & bit != 0
        case 1: return w1 & bit != 0
        case 2: return w2 & bit != 0
        default: return w3 & bit != 0
        }
    }

    /// Adds `byte`.
    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    /// Adds every byte in `lower...upper`.
    mutating func insert(_ lower: UInt8, through upper: UInt8) {
        var b = lower
        while true {
            insert(b)
            if b == upper { break }
            b += 1
        }
    }

    /// Adds every byte of `other`.
    mutating func formUnion(_ other: ByteSet) {
        w0 |= other.w0; w1 |= other.w1; w2 |= other.w2; w3 |= other.w3
    }

    /// The complement.
    var inverted: ByteSet {
        var s = ByteSet(); s.w0 = ~w0; s.w1 = ~w1; s.w2 = ~w2; s.w3 = ~w3; return s
    }

    /// True when the set is empty.
    var isEmpty: Bool { (w0 | w1 | w2 | w3) == 0 }

    /// The set with both ASCII cases of every letter in it.
    var caseFolded: ByteSet {
        var s = self
        for b in UInt8(ascii: "A")...UInt8(ascii: "Z") where contains(b) || contains(b | 0x20) {
            s.insert(b); s.insert(b | 0x20)
        }
        return s
    }
}

/// A set of NFA states (at most 256), stored inline so simulation never allocates.
struct StateSet: Sendable {
    /// Number of 64-bit words.
    static let words = 4
    /// Largest state count representable.
    static let capacity = 256
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    /// Word `i` of the bit set.
    @inline(__always)
    subscript(word i: Int) -> UInt64 {
        switch i {
        case 0: return w0
        case 1: return w1
        case 2: return w2
        default: return w3
        }
    }

    /// True when state `pc` is in the set.
    @inline(__always)
    func contains(_ pc: Int) -> Bool { self[word: pc >> 6] & (UInt64(1) << UInt64(pc & 63)) != 0 }

    /// Adds state `pc`.
    mutating func insert(_ pc: Int) {
        let bit = UInt64(1) << UInt64(pc & 63)
        switch pc >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    /// Adds every state of `other`.
    @inline(__always)
    mutating func formUnion(_ other: StateSet) {
        w0 |= other.w0; w1 |= other.w1; w2 |= other.w2; w3 |= other.w3
    }

    /// True when the set is empty.
    var isEmpty: Bool { (w0 | w1 | w2 | w3) == 0 }
}

// MARK: - Parsing

extension ByteRegex {
    /// Syntax tree of a pattern.
    fileprivate indirect enum Node {
        case set(ByteSet)
        case empty
        case concat([Node])
        case alternation([Node])
        case star(Node)
        case plus(Node)
        case optional(Node)
        case startAnchor
        case endAnchor
    }

    /// Recursive-descent parser over the pattern's bytes.
    fileprivate struct Parser {
        let bytes: [UInt8]
        var pos = 0
        var caseInsensitive = false
        /// Groups open around the current position.
        var depth = 0
        /// NFA states the items read so far compile to (the final `match` not counted): each
        /// node adds its own instructions (`CodeGen`), so the running sum is the exact total.
        var states = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func parseAll() throws(SyntaxError) -> Node {
            if bytes.starts(with: Array("(?i)".utf8)) {
                caseInsensitive = true
                pos = 4
            }
            let node = try parseAlternation()
            if pos < bytes.count {
                // Only an unmatched `)` stops the top-level alternation early.
                throw SyntaxError(message: "unbalanced `)`", offset: pos)
            }
            return node
        }

        private func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

        /// Counts `n` more NFA states for the item at `offset`; throws once the pattern can no
        /// longer fit (the `match` state needs one more).
        private mutating func addStates(_ n: Int, at offset: Int) throws(SyntaxError) {
            states += n
            guard states < ByteRegex.maxStates else {
                throw SyntaxError(message: "pattern is too large (more than \(ByteRegex.maxStates) NFA states)", offset: offset)
            }
        }

        private mutating func parseAlternation() throws(SyntaxError) -> Node {
            var branches = [try parseConcat()]
            while peek() == UInt8(ascii: "|") {
                // Every branch but the last costs a split and a jump.
                try addStates(2, at: pos)
                pos += 1
                branches.append(try parseConcat())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        private mutating func parseConcat() throws(SyntaxError) -> Node {
            var items: [Node] = []
            while let c = peek(), c != UInt8(ascii: "|"), c != UInt8(ascii: ")") {
                var atom = try parseAtom()
                var stacked = 0
                while let q = peek(), q == UInt8(ascii: "*") || q == UInt8(ascii: "+") || q == UInt8(ascii: "?") {
                    switch atom {
                    case .startAnchor, .endAnchor: throw SyntaxError(message: "nothing to repeat", offset: pos)
                    default: break
                    }
                    // Stacked quantifiers nest the tree like groups do.
                    stacked += 1
                    guard depth + stacked <= ByteRegex.maxNesting else {
                        throw SyntaxError(message: "too many quantifiers on one item (at most \(ByteRegex.maxNesting))", offset: pos)
                    }
                    switch q {
                    case UInt8(ascii: "*"): atom = .star(atom); try addStates(2, at: pos)
                    case UInt8(ascii: "+"): atom = .plus(atom); try addStates(1, at: pos)
                    default: atom = .optional(atom); try addStates(1, at: pos)
                    }
                    pos += 1
                }
                items.append(atom)
            }
            switch items.count {
            case 0: return .empty
            case 1: return items[0]
            default: return .concat(items)
            }
        }

        private mutating func parseAtom() throws(SyntaxError) -> Node {
            let start = pos
            let c = bytes[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "("):
                if bytes[pos...].starts(with: Array("?:".utf8)) {
                    pos += 2
                } else if peek() == UInt8(ascii: "?") {
                    throw SyntaxError(message: "unsupported group syntax `(?` (only `(?:` and a leading `(?i)`)", offset: start)
                }
                guard depth < ByteRegex.maxNesting else {
                    throw SyntaxError(message: "groups nest too deep (at most \(ByteRegex.maxNesting) levels)", offset: start)
                }
                depth += 1
                let inner = try parseAlternation()
                depth -= 1
                guard peek() == UInt8(ascii: ")") else { throw SyntaxError(message: "missing `)`", offset: start) }
                pos += 1
                return inner
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
                throw SyntaxError(message: "nothing to repeat before `\(Character(Unicode.Scalar(c)))`", offset: start)
            case UInt8(ascii: "{"), UInt8(ascii: "}"):
                throw SyntaxError(
                    message: "counted repetition `{m,n}` is not supported (write the item out, or use `*`, `+`, `?`; `\\{` for a literal brace)",
                    offset: start)
            case UInt8(ascii: "]"):
                throw SyntaxError(message: "unbalanced `]` (write `\\]` for a literal bracket)", offset: start)
            case UInt8(ascii: "^"): try addStates(1, at: start); return .startAnchor
            case UInt8(ascii: "$"): try addStates(1, at: start); return .endAnchor
            case UInt8(ascii: "."): try addStates(1, at: start); return .set(.all)
            case UInt8(ascii: "["):
                let set = fold(try parseClass(start: start))
                try addStates(1, at: start)
                return .set(set)
            case UInt8(ascii: "\\"):
                let set = fold(try parseEscape(start: start))
                try addStates(1, at: start)
                return .set(set)
            default:
                try addStates(1, at: start)
                var s = ByteSet()
                s.insert(c)
                return .set(fold(s))
            }
        }

        private func fold(_ set: ByteSet) -> ByteSet { caseInsensitive ? set.caseFolded : set }

        /// Parses the escape after a `\` (already consumed).
        private mutating func parseEscape(start: Int) throws(SyntaxError) -> ByteSet {
            guard let e = peek() else { throw SyntaxError(message: "pattern ends with a lone `\\`", offset: start) }
            pos += 1
            var s = ByteSet()
            switch e {
            case UInt8(ascii: "d"), UInt8(ascii: "D"):
                s.insert(UInt8(ascii: "0"), through: UInt8(ascii: "9"))
                return e == UInt8(ascii: "d") ? s : s.inverted
            case UInt8(ascii: "w"), UInt8(ascii: "W"):
                s.insert(UInt8(ascii: "0"), through: UInt8(ascii: "9"))
                s.insert(UInt8(ascii: "a"), through: UInt8(ascii: "z"))
                s.insert(UInt8(ascii: "A"), through: UInt8(ascii: "Z"))
                s.insert(UInt8(ascii: "_"))
                return e == UInt8(ascii: "w") ? s : s.inverted
            case UInt8(ascii: "s"), UInt8(ascii: "S"):
                for b in [UInt8(ascii: " "), 9, 10, 11, 12, 13] { s.insert(b) }
                return e == UInt8(ascii: "s") ? s : s.inverted
            case UInt8(ascii: "t"): s.insert(9)
            case UInt8(ascii: "n"): s.insert(10)
            case UInt8(ascii: "r"): s.insert(13)
            default:
                let isAlnum = (e >= 0x30 && e <= 0x39) || (e | 0x20 >= 0x61 && e | 0x20 <= 0x7a)
                guard !isAlnum, e < 0x80 else {
                    throw SyntaxError(message: "unsupported escape `\\\(Character(Unicode.Scalar(e)))`", offset: start)
                }
                s.insert(e)
            }
            return s
        }

        /// Parses a class after `[` (already consumed).
        private mutating func parseClass(start: Int) throws(SyntaxError) -> ByteSet {
            var set = ByteSet()
            var negated = false
            if peek() == UInt8(ascii: "^") { negated = true; pos += 1 }
            var first = true
            while true {
                guard let c = peek() else { throw SyntaxError(message: "missing `]`", offset: start) }
                if c == UInt8(ascii: "]") && !first { pos += 1; break }
                first = false
                let itemStart = pos
                pos += 1
                let low: UInt8
                if c == UInt8(ascii: "\\") {
                    let escaped = try parseEscape(start: itemStart)
                    guard let single = Self.single(escaped) else { set.formUnion(escaped); continue }
                    low = single
                } else {
                    low = c
                }
                // A range `a-z` (a `-` just before `]` is a literal).
                if peek() == UInt8(ascii: "-"), pos + 1 < bytes.count, bytes[pos + 1] != UInt8(ascii: "]") {
                    pos += 1
                    var high = bytes[pos]
                    let highStart = pos
                    pos += 1
                    if high == UInt8(ascii: "\\") {
                        guard let single = Self.single(try parseEscape(start: highStart)) else {
                            throw SyntaxError(message: "a class like `\\d` cannot end a range", offset: highStart)
                        }
                        high = single
                    }
                    guard low <= high else {
                        throw SyntaxError(message: "range out of order in class", offset: itemStart)
                    }
                    set.insert(low, through: high)
                } else {
                    set.insert(low)
                }
            }
            return negated ? set.inverted : set
        }

        /// The only byte of a one-byte set, else nil.
        private static func single(_ set: ByteSet) -> UInt8? {
            var found: UInt8?
            for b in 0...255 where set.contains(UInt8(b)) {
                if found != nil { return nil }
                found = UInt8(b)
            }
            return found
        }
    }

    /// Emits Thompson NFA instructions for a syntax tree.
    fileprivate struct CodeGen {
        var insts: [Inst] = []
        var sets: [ByteSet] = []

        mutating func emit(_ node: Node) {
            switch node {
            case .empty: break
            case .startAnchor: insts.append(Inst(op: .assertStart, x: 0, y: 0))
            case .endAnchor: insts.append(Inst(op: .assertEnd, x: 0, y: 0))
            case .set(let s):
                let index: Int
                if let existing = sets.firstIndex(of: s) { index = existing } else { index = sets.count; sets.append(s) }
                insts.append(Inst(op: .consume, x: Int32(index), y: 0))
            case .concat(let items):
                for item in items { emit(item) }
            case .alternation(let branches):
                // split L1, next; L1: a; jmp end; next: split L2, ... ; last: z; end:
                var jumps: [Int] = []
                for (n, branch) in branches.enumerated() {
                    if n < branches.count - 1 {
                        let split = insts.count
                        insts.append(Inst(op: .split, x: Int32(split + 1), y: 0))
                        emit(branch)
                        jumps.append(insts.count)
                        insts.append(Inst(op: .jump, x: 0, y: 0))
                        insts[split].y = Int32(insts.count)
                    } else {
                        emit(branch)
                    }
                }
                for j in jumps { insts[j].x = Int32(insts.count) }
            case .star(let inner):
                // L1: split L2, L3; L2: inner; jmp L1; L3:
                let split = insts.count
                insts.append(Inst(op: .split, x: Int32(split + 1), y: 0))
                emit(inner)
                insts.append(Inst(op: .jump, x: Int32(split), y: 0))
                insts[split].y = Int32(insts.count)
            case .plus(let inner):
                // L1: inner; split L1, L3; L3:
                let start = insts.count
                emit(inner)
                insts.append(Inst(op: .split, x: Int32(start), y: Int32(insts.count + 1)))
            case .optional(let inner):
                // split L1, L2; L1: inner; L2:
                let split = insts.count
                insts.append(Inst(op: .split, x: Int32(split + 1), y: 0))
                emit(inner)
                insts[split].y = Int32(insts.count)
            }
        }
    }
}
