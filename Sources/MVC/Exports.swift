@_exported import MVCCore
@_exported import MVCGit
