import Foundation
import Synchronization

/// The webhook deliveries accepted lately (their ids, from `X-GitHub-Delivery`, `X-Gitea-Delivery` or
/// `X-Gitlab-Event-UUID`), each with the sync it started: a delivery seen again within `window` starts nothing.
///
/// Bounded: past `capacity` ids, the oldest are forgotten first.
final class WebhookDeliveries: Sendable {
    let window: TimeInterval
    let capacity: Int
    private let accepted = Mutex<[String: (sync: Int, at: Date)]>([:])

    init(window: TimeInterval = 3600, capacity: Int = 10_000) {
        self.window = window
        self.capacity = capacity
    }

    /// The sync an earlier delivery with this id started, if it came within the window.
    func seen(_ id: String) -> Int? {
        accepted.withLock { accepted in
            guard let entry = accepted[id], Date().timeIntervalSince(entry.at) < window else { return nil }
            return entry.sync
        }
    }

    func record(_ id: String, sync: Int) {
        let now = Date()
        accepted.withLock { accepted in
            accepted[id] = (sync, now)
            guard accepted.count > capacity else { return }
            accepted = accepted.filter { now.timeIntervalSince($0.value.at) < window }
            while accepted.count > capacity, let oldest = accepted.min(by: { $0.value.at < $1.value.at }) {
                accepted[oldest.key] = nil
            }
        }
    }
}
