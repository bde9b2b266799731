import AutoServeModel
import Foundation
public import Logging

/// Writes one logfmt line per event to standard error (through `LogWriter`, off the caller's thread):
/// `ts=… level=… label=… msg="…" key=value`.
///
/// One line per event, every value quoted where it needs to be, so that log shippers split fields without
/// guessing. Secrets never reach a log line: callers log names of settings, never their values.
public struct LogfmtLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        var line = "ts=\(Self.timestamp()) level=\(event.level) label=\(label) msg=\(Self.quote(event.message.description))"
        for key in fields.keys.sorted() {
            line += " \(key)=\(Self.quote(fields[key]!.description))"
        }
        line += "\n"
        LogWriter.standardError.append(line)
    }

    static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    static func quote(_ value: String) -> String {
        let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "=") && $0 < 0x7F }
        if plain { return value }
        return JSON.quoted(value)
    }
}
