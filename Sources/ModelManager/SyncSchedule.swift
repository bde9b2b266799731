public import Foundation
import ServingCore

/// When the next sync is due: `SYNC_INTERVAL` after the last one, daily at `SYNC_AT` (UTC), and sooner
/// after a failure, backing off exponentially so a broken remote is retried without being hammered.
public struct SyncSchedule: Sendable, Hashable {
    public var interval: Duration
    /// Minutes after midnight UTC of the daily sync, if any.
    public var dailyAtMinute: Int?
    public var initialBackoff: Duration = .seconds(5)
    public var maximumBackoff: Duration = .seconds(300)

    public init(interval: Duration, dailyAtMinute: Int? = nil) {
        self.interval = interval
        self.dailyAtMinute = dailyAtMinute
    }

    /// The time of the next sync after one that finished at `finished`.
    public func nextSync(after finished: Date, consecutiveFailures: Int) -> Date {
        var next = finished.addingTimeInterval(interval.seconds)
        if consecutiveFailures > 0 {
            next = min(next, finished.addingTimeInterval(backoff(afterFailures: consecutiveFailures).seconds))
        }
        if let dailyAtMinute {
            next = min(next, Self.nextDailyTime(after: finished, minuteOfDay: dailyAtMinute))
        }
        return next
    }

    /// 5 s, 10 s, 20 s … up to `maximumBackoff`, never longer than the interval.
    public func backoff(afterFailures failures: Int) -> Duration {
        let doublings = min(max(failures - 1, 0), 20)
        let seconds = initialBackoff.seconds * pow(2, Double(doublings))
        return .milliseconds(Int(min(seconds, maximumBackoff.seconds, interval.seconds) * 1000))
    }

    /// The first `HH:MM` UTC strictly after `date`.
    public static func nextDailyTime(after date: Date, minuteOfDay: Int) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let midnight = calendar.startOfDay(for: date)
        let today = midnight.addingTimeInterval(TimeInterval(minuteOfDay * 60))
        return today > date ? today : today.addingTimeInterval(86_400)
    }
}
