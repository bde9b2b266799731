// swift-tools-version:6.1
import PackageDescription

/// The benchmark's baseline: what a Swift team would write by hand instead of AutoServe, one Hummingbird 2
/// route serving the Iris classifier of `models_serve/Iris` and a `GET /hello`.
let package = Package(
    name: "baseline",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: [])
    ],
    targets: [
        .executableTarget(
            name: "Baseline",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        )
    ]
)
