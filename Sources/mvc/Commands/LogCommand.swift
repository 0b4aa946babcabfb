import ArgumentParser
import MVC

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "List an artifact's versions, newest first.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Artifact name.")
    var name: String

    struct Entry: Encodable {
        var version: Int, id: String, semver: [String], author: String, email: String, time: Int64, message: String
    }

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let log = try repo.log(name)
            let tags = try repo.semverTags(name)
            if global.json {
                printJSON(log.map { Entry(version: $0.commit.version, id: $0.id.hex, semver: tags[$0.id]?.sorted() ?? [],
                                          author: $0.commit.author.name, email: $0.commit.author.email,
                                          time: $0.commit.author.time, message: $0.commit.message) })
                return
            }
            let rows = log.map { e -> [String] in
                let tag = tags[e.id].map { " (" + $0.sorted().joined(separator: ", ") + ")" } ?? ""
                let subject = e.commit.message.split(separator: "\n").first.map(String.init) ?? ""
                return ["v\(e.commit.version)", e.id.short, formatDate(e.commit.author), e.commit.author.name, subject + tag]
            }
            print(columns(rows))
        }
    }
}
