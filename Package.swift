// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "mvc",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mvc", targets: ["mvc"]),
        .library(name: "MVC", targets: ["MVC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // OpenSSL's libcrypto (Debian `libssl-dev`): SHA-256 with the CPU's SHA instructions.
        .systemLibrary(
            name: "CMVCCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // The loops every committed byte goes through: SHA-256 of a file and of its chunks in one
        // pass (streams interleaved with the x86 SHA extensions, OpenSSL's block function
        // elsewhere) and the gear cut-point search.
        .target(name: "CMVCKernels", dependencies: ["CMVCCrypto"]),
        // HTTP for S3 remotes: libcurl (Debian `libcurl4`; the headers from `libcurl4-openssl-dev`),
        // loaded with dlopen when a command first needs it, so that no other command pays for
        // loading its ~30 shared libraries at start.
        .target(name: "CMVCHTTP"),
        // libgit2 for the git mirror: its header from Debian `libgit2-dev`, the library (`libgit2-1.5`)
        // loaded with dlopen when a command first needs git, so no other command loads it and the
        // ~15 libraries it pulls in at start. Scripts/gen-libgit2-loader.py writes its trampolines.
        .target(name: "CLibGit2"),
        // zstd (Debian `libzstd-dev`), for compressing remote packs.
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // The object model, store, refs and operations. Knows nothing of git's libraries.
        .target(
            name: "MVCCore",
            dependencies: ["CMVCCrypto", "CMVCKernels", "CMVCHTTP", "CZstd", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        // The git mirror (libgit2) and git hooks.
        .target(
            name: "MVCGit",
            dependencies: ["MVCCore", "CLibGit2"],
            swiftSettings: strictSettings
        ),
        // What training code gets with `import MVC`.
        .target(
            name: "MVC",
            dependencies: ["MVCCore", "MVCGit"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mvc",
            dependencies: [
                "MVC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MVCCoreTests",
            dependencies: ["MVCCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "MVCEndToEndTests", dependencies: ["mvc"], swiftSettings: strictSettings),
    ],
    swiftLanguageModes: [.v6]
)
