import Testing

@testable import PluginLoader

/// The table of a worker's unanswered requests: ids are unique, never 0, and a stale id completes nothing.
struct PendingRequestsTests {
    @Test func idsFindTheirValueOnceAndAreNeverZero() {
        var table = PendingRequests<String>()
        let ids = ["a", "b", "c"].map { table.insert($0) }
        #expect(Set(ids).count == 3)
        #expect(!ids.contains(0))
        #expect(table.count == 3)
        #expect(table.remove(ids[1]) == "b")
        #expect(table.remove(ids[1]) == nil)
        #expect(table.count == 2)
        #expect(table.remove(ids[0]) == "a")
        #expect(table.remove(ids[2]) == "c")
        #expect(table.count == 0)
    }

    @Test func anAnswerToAnExpiredRequestDoesNotCompleteTheRequestThatReusedItsSlot() {
        var table = PendingRequests<String>()
        let expired = table.insert("first")
        #expect(table.removeAll { $0 == "first" } == ["first"])
        let reused = table.insert("second")
        #expect(reused != expired)
        #expect(reused & 0xFFFF_FFFF == expired & 0xFFFF_FFFF, "the slot is reused")
        #expect(table.remove(expired) == nil)
        #expect(table.remove(reused) == "second")
    }

    @Test func removeAllTakesOnlyWhatItSelects() {
        var table = PendingRequests<Int>()
        let ids = (1...6).map { table.insert($0) }
        #expect(table.removeAll { $0.isMultiple(of: 2) }.sorted() == [2, 4, 6])
        #expect(table.count == 3)
        #expect(table.remove(ids[0]) == 1)
        #expect(table.remove(ids[1]) == nil)
        #expect(table.remove(ids[2]) == 3)
        #expect(table.remove(ids[3]) == nil)
        #expect(table.remove(12_345) == nil, "an id beyond the table")
    }
}
