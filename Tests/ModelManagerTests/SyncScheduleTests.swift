import Foundation
import Testing

@testable import ModelManager

struct SyncScheduleTests {
    /// 2026-11-21 10:00:00 UTC.
    let morning = Date(timeIntervalSince1970: 1_795_255_200)

    @Test func theNextSyncIsOneIntervalAfterASuccess() {
        let schedule = SyncSchedule(interval: .seconds(60))
        #expect(schedule.nextSync(after: morning, consecutiveFailures: 0) == morning.addingTimeInterval(60))
    }

    @Test func failuresBackOffExponentiallyUpToTheIntervalAndTheCap() {
        let schedule = SyncSchedule(interval: .seconds(24 * 3600))
        #expect(schedule.backoff(afterFailures: 1) == .seconds(5))
        #expect(schedule.backoff(afterFailures: 2) == .seconds(10))
        #expect(schedule.backoff(afterFailures: 4) == .seconds(40))
        #expect(schedule.backoff(afterFailures: 30) == .seconds(300))
        #expect(schedule.nextSync(after: morning, consecutiveFailures: 3) == morning.addingTimeInterval(20))
        #expect(SyncSchedule(interval: .seconds(8)).backoff(afterFailures: 3) == .seconds(8))
    }

    @Test func syncAtIsTheNextDailyTimeInUTC() {
        let schedule = SyncSchedule(interval: .seconds(24 * 3600), dailyAtMinute: 11 * 60 + 30)
        #expect(schedule.nextSync(after: morning, consecutiveFailures: 0) == morning.addingTimeInterval(5400))
        let early = SyncSchedule.nextDailyTime(after: morning, minuteOfDay: 3 * 60)
        #expect(early == morning.addingTimeInterval(17 * 3600))
        #expect(SyncSchedule.nextDailyTime(after: morning, minuteOfDay: 10 * 60) == morning.addingTimeInterval(86_400))
    }
}
