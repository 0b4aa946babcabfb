@_exported import MVCCore
