import ArgumentParser
import PluginRuntime

#if canImport(Glibc)
    import Glibc
#endif

extension AutoServeCommand {
    /// Runs a program confined (docs/operations.md, "The sandbox"): the server compiles a model's code with
    /// `autoserve confine --read … --write … -- swiftc …`, so that the compiler reads the toolchain, the system's
    /// libraries, the SDK and the version's folder, writes its build folder, and reaches no network. Landlock and the
    /// seccomp filter outlive `execve`: the driver, the frontend and the linker it runs are all confined. Not for
    /// people: the server runs it.
    struct Confine: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "confine", abstract: "Run a program confined to the paths given (the server runs the compiler so).", shouldDisplay: false)

        @Option(help: "A path the program may read and execute (repeatable).") var read: [String] = []
        @Option(help: "A path the program may write (repeatable).") var write: [String] = []
        @Option(help: "The largest file it may write, in bytes.") var fileSizeLimit: Int = 4 << 30
        @Argument(parsing: .captureForPassthrough, help: "The program and its arguments, after --.") var command: [String] = []

        func run() throws {
            let command = command.first == "--" ? Array(command.dropFirst()) : command
            guard let program = command.first else { throw ValidationError("name the program to run after --") }
            do {
                _ = try WorkerSandbox.confine(read: read, write: write, network: false, programs: true, fileSizeLimit: fileSizeLimit)
            } catch {
                throw ValidationError("cannot confine \(program): \(error.message)")
            }
            let argv = command.map { strdup($0) } + [nil]
            execv(program, argv)
            throw ValidationError("cannot run \(program): \(String(cString: strerror(errno)))")
        }
    }
}
