// swift-tools-version:6.1
import PackageDescription

/// One set of settings for every target, so the whole package builds the same way.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "autoserve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "autoserve", targets: ["autoserve"]),
        // The worker process of MODEL_ISOLATION=process: small, so that each worker costs little memory.
        .executable(name: "autoserve-worker", targets: ["autoserve-worker"]),
        // The model SDK: model authors depend on it to unit-test their folders in their own packages.
        .library(name: "AutoServeModel", targets: ["AutoServeModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swiftlang/swift-syntax", from: "602.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The model SDK (README, "Writing a model folder"): the JSON value type and ModelError. Compiled into plugins at run time.
        .target(name: "AutoServeModel", swiftSettings: swiftSettings),
        // Value types every stage shares: names, versions, JSON values, diagnostics, metrics.
        .target(
            name: "ServingCore",
            dependencies: [
                "CSystemShims",
                "AutoServeModel",
                .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // libgit2, found with pkg-config; `make` installs libgit2-dev when it is missing.
        .systemLibrary(name: "CLibGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        // The variadic git_libgit2_opts, which Swift cannot call.
        .target(name: "CGitShims", dependencies: ["CLibGit2"]),
        // prctl and timerfd, for the worker process.
        .target(name: "CSystemShims"),
        // The plugins' C ABI (dlopen) and the worker process: no Foundation, no dependency, so workers stay small.
        .target(name: "PluginRuntime", dependencies: ["CSystemShims"], swiftSettings: swiftSettings),
        .executableTarget(name: "autoserve-worker", dependencies: ["PluginRuntime"], swiftSettings: swiftSettings),
        // Source: finds the model folders and their versions, exports each version read-only.
        .target(
            name: "ModelSource",
            dependencies: ["ServingCore", "CLibGit2", "CGitShims", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // SourceAdapter: manifest, code generation (swift-syntax), swiftc plugin builds.
        .target(
            name: "PluginBuilder",
            dependencies: [
                "ServingCore", "PluginRuntime", "AutoServeModel", "CSystemShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftParser", package: "swift-syntax"),
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.embedInCode("SDK")],
            swiftSettings: swiftSettings
        ),
        // Loader: dlopen, the C ABI, examples.
        .target(
            name: "PluginLoader",
            dependencies: [
                "ServingCore", "PluginBuilder", "PluginRuntime", "CSystemShims", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Manager: states, versions, availability-preserving swaps.
        .target(
            name: "ModelManager",
            dependencies: [
                "ServingCore", "ModelSource",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Frontend: the HTTP routes (Hummingbird 2).
        .target(
            name: "HTTPFrontend",
            dependencies: [
                "ServingCore", "ModelManager", "AutoServeModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // `autoserve drift`: PSI and Kolmogorov–Smirnov between two sets of rows, as text, JSON or HTML.
        .target(name: "DriftReport", dependencies: ["AutoServeModel", "ServingCore"], swiftSettings: swiftSettings),
        // Configuration and the assembly of the stages into one application.
        .target(
            name: "AutoServeApp",
            dependencies: [
                "ServingCore", "ModelSource", "PluginBuilder", "PluginLoader", "PluginRuntime", "CSystemShims", "ModelManager", "HTTPFrontend", "DriftReport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "autoserve",
            dependencies: [
                "AutoServeApp", "ServingCore", "PluginLoader", "DriftReport", "HTTPFrontend",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AutoServeModelTests", dependencies: ["AutoServeModel"], swiftSettings: swiftSettings),
        .testTarget(name: "ServingCoreTests", dependencies: ["ServingCore"], swiftSettings: swiftSettings),
        .testTarget(name: "DriftReportTests", dependencies: ["DriftReport", "AutoServeModel"], swiftSettings: swiftSettings),
        .testTarget(name: "ModelSourceTests", dependencies: ["ModelSource", "ServingCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PluginBuilderTests",
            dependencies: [
                "PluginBuilder", "ModelSource", "ServingCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PluginLoaderTests",
            dependencies: [
                "PluginLoader", "PluginBuilder", "PluginRuntime", "ServingCore", "AutoServeModel", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ModelManagerTests",
            dependencies: [
                "ModelManager", "AutoServeApp", "ModelSource", "PluginBuilder", "PluginLoader", "ServingCore", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HTTPFrontendTests",
            dependencies: [
                "HTTPFrontend", "ServingCore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"), .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AutoServeAppTests",
            dependencies: [
                "AutoServeApp", "ServingCore", "ModelManager", "ModelSource", "PluginBuilder", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
