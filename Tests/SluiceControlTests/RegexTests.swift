import SluiceCore
import Testing

/// The byte regex subset: what matches, and which patterns are rejected with which message.
@Suite struct RegexTests {
    @Test(arguments: [
        // pattern, input, matches
        ("abc", "xxabcxx", true),
        ("abc", "ab", false),
        ("^abc", "abcd", true),
        ("^abc", "xabc", false),
        ("abc$", "xxabc", true),
        ("abc$", "abcx", false),
        ("^$", "", true),
        ("^$", "a", false),
        ("", "anything", true),
        ("a.c", "abc", true),
        ("a.c", "ac", false),
        ("^a*$", "", true),
        ("^a*$", "aaaa", true),
        ("^a*$", "aab", false),
        ("^a+$", "", false),
        ("^a+$", "aaa", true),
        ("^colou?r$", "color", true),
        ("^colou?r$", "colour", true),
        ("^colou?r$", "colouur", false),
        ("^(cat|dog)s?$", "dogs", true),
        ("^(cat|dog)s?$", "cats", true),
        ("^(cat|dog)s?$", "cow", false),
        ("^(?:ab)+$", "ababab", true),
        ("^(?:ab)+$", "ababa", false),
        ("^[a-z0-9_-]+$", "user_42-x", true),
        ("^[a-z0-9_-]+$", "User", false),
        ("^[^0-9]+$", "abc", true),
        ("^[^0-9]+$", "ab1", false),
        ("^\\d+$", "2024", true),
        ("^\\d+$", "20x4", false),
        ("^\\w+$", "a_B9", true),
        ("^\\w+$", "a-b", false),
        ("\\s", "a b", true),
        ("\\s", "ab", false),
        ("^\\S+$", "ab", true),
        ("^\\D+$", "ab", true),
        ("^\\W$", "-", true),
        ("^[\\d.]+$", "1.2.3", true),
        ("^[\\d.]+$", "1.2a", false),
        ("\\.", "a.b", true),
        ("\\.", "ab", false),
        ("^a|b$", "ax", true),
        ("^a|b$", "xb", true),
        ("^a|b$", "xa", false),
        ("^(a|)$", "", true),
        ("^(a*)*$", "aaaa", true),
        ("^(a*)*b$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", false),
        ("(?i)^mozilla", "MOZILLA/5.0", true),
        ("(?i)^[a-c]+$", "AbC", true),
        ("^Mozilla", "mozilla", false),
        ("^curl/[0-9]+\\.", "curl/8.4.0", true),
        ("^[]a]+$", "]a]", true),
        ("^[a-]+$", "a-a", true),
        ("\\t", "a\tb", true),
    ])
    func matches(pattern: String, input: String, expected: Bool) throws {
        let regex = try ByteRegex.compile(pattern)
        #expect(regex.matches(Array(input.utf8)) == expected, "/\(pattern)/ on \"\(input)\"")
    }

    @Test(arguments: [
        ("(abc", "missing `)`", 0),
        ("abc)", "unbalanced `)`", 3),
        ("*a", "nothing to repeat", 0),
        ("a|*", "nothing to repeat", 2),
        ("^*", "nothing to repeat", 1),
        ("[abc", "missing `]`", 0),
        ("a]", "unbalanced `]`", 1),
        ("[z-a]", "range out of order", 1),
        ("a{2}", "counted repetition", 1),
        ("\\b", "unsupported escape `\\b`", 0),
        ("\\1", "unsupported escape `\\1`", 0),
        ("abc\\", "lone `\\`", 3),
        ("(?=a)", "unsupported group syntax", 0),
    ])
    func rejects(pattern: String, message: String, offset: Int) {
        do {
            _ = try ByteRegex.compile(pattern)
            Issue.record("/\(pattern)/ compiled")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.offset == offset)
        }
    }

    @Test func largePatternsAreRejected() {
        let big = String(repeating: "(a|b)", count: 80)
        #expect(throws: ByteRegex.SyntaxError.self) { try ByteRegex.compile(big) }
        #expect((try? ByteRegex.compile(String(repeating: "ab", count: 100))) != nil)
    }

    @Test func linearTimeOnPathologicalInput() throws {
        // Exponential for backtracking engines; a single pass here.
        let regex = try ByteRegex.compile("^(a|a)*(a|a)*(a|a)*b$")
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: 100_000)
        #expect(!regex.matches(input))
    }
}
