import PluginRuntime

#if canImport(Glibc)
    import Glibc
#endif

// autoserve-worker --library PATH --entry-symbol NAME --folder PATH [--sandbox strict|required|off] [--tmp DIR]
//                  [--read PATH]... [--network allow]
// Started by the server (MODEL_ISOLATION=process), one per worker process of a model version; not for people.
var options: [String: [String]] = [:]
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard flag.hasPrefix("--"), let value = arguments.popFirst() else { break }
    options[flag, default: []].append(value)
}
guard let library = options["--library"]?.last, let entrySymbol = options["--entry-symbol"]?.last, let folder = options["--folder"]?.last,
    let sandbox = SandboxPolicy(options: options)
else {
    let usage =
        "usage: autoserve-worker --library PATH --entry-symbol NAME --folder PATH [--sandbox strict|required|off] [--tmp DIR] [--read PATH]... "
        + "[--network allow] (started by autoserve serve)\n"
    _ = usage.withCString { write(2, $0, strlen($0)) }
    exit(64)
}
WorkerMain.run(library: library, entrySymbol: entrySymbol, folder: folder, sandbox: sandbox)
