import ArgumentParser
import Foundation
import MVC

struct CatObjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat-object", abstract: "Print an object's canonical bytes (trees and commits with their header).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Object id or unique prefix, or a revision.")
    var id: String

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let oid = try repo.resolve(id)
            try repo.objects.stream(oid) { (piece) throws(MVCError) in
                FileHandle.standardOutput.write(Data(piece))
            }
        }
    }
}
