/// The requests a worker has not answered yet, by id.
///
/// A slot array rather than a dictionary: `/all` sends a row to every model, so this is on the request path
/// once per model, and a slot costs no hashing. An id carries its slot and the slot's generation, so an answer
/// that comes after its request expired (and the slot was reused) completes nothing. Ids are never 0, the id
/// of the worker's hello.
struct PendingRequests<Value> {
    private var slots: [Slot] = []
    private var free: [Int] = []
    private(set) var count = 0

    private struct Slot {
        var generation: UInt32 = 0
        var value: Value?
    }

    /// Stores `value` and returns its id.
    mutating func insert(_ value: Value) -> UInt64 {
        let index: Int
        if let reused = free.popLast() {
            index = reused
        } else {
            index = slots.count
            slots.append(Slot())
        }
        slots[index].generation &+= 1
        if slots[index].generation == 0 { slots[index].generation = 1 }
        slots[index].value = value
        count += 1
        return UInt64(slots[index].generation) << 32 | UInt64(index)
    }

    /// Takes the value `id` names, if it is still waiting.
    mutating func remove(_ id: UInt64) -> Value? {
        let index = Int(id & 0xFFFF_FFFF)
        guard index < slots.count, slots[index].generation == UInt32(id >> 32), let value = slots[index].value else { return nil }
        slots[index].value = nil
        free.append(index)
        count -= 1
        return value
    }

    /// Changes the value `id` names, if it is still waiting.
    mutating func modify(_ id: UInt64, _ body: (inout Value) -> Void) {
        let index = Int(id & 0xFFFF_FFFF)
        guard index < slots.count, slots[index].generation == UInt32(id >> 32), slots[index].value != nil else { return }
        body(&slots[index].value!)
    }

    /// Takes every value that `shouldRemove` selects.
    mutating func removeAll(where shouldRemove: (Value) -> Bool) -> [Value] {
        var removed: [Value] = []
        for index in slots.indices {
            guard let value = slots[index].value, shouldRemove(value) else { continue }
            slots[index].value = nil
            free.append(index)
            removed.append(value)
        }
        count -= removed.count
        return removed
    }
}
