import FerryGuest
import FerryTestSupport
import Foundation
import Testing

extension GuestRuns {
    /// The layered view, driven by a real guest (`Guests/files.wasm`) through WASI.
    @Suite struct LayeredFileSystemTests {
        /// A scratch folder with `lower`, `lower2` and `upper` layers.
        final class Layers {
            private let temporary: TemporaryDirectory
            let root: URL
            init() throws {
                self.temporary = try TemporaryDirectory()
                self.root = URL(fileURLWithPath: self.temporary.path)
                for name in ["lower", "lower2", "upper"] {
                    try FileManager.default.createDirectory(
                        at: self.root.appendingPathComponent(name),
                        withIntermediateDirectories: true
                    )
                }
            }
            func path(_ relative: String) -> String { self.root.appendingPathComponent(relative).path }

            func write(_ relative: String, _ text: String) throws {
                let url = self.root.appendingPathComponent(relative)
                try FileManager.default.createDirectory(
                    at: url.deletingLastPathComponent(),
                    withIntermediateDirectories: true
                )
                try text.write(to: url, atomically: false, encoding: .utf8)
            }

            func read(_ relative: String) -> String? {
                try? String(contentsOf: self.root.appendingPathComponent(relative), encoding: .utf8)
            }

            func exists(_ relative: String) -> Bool {
                (try? FileManager.default.attributesOfItem(atPath: self.path(relative))) != nil
            }

            /// The usual view: `upper` writable over `lower`, seen at /data.
            var view: GuestDirectory {
                GuestDirectory(guestPath: "/data", upper: self.path("upper"), lowers: [self.path("lower")])
            }
        }

        struct Run {
            var code: UInt32
            var output: String
            var errors: String
        }

        /// Runs the files guest with `commands` over `directory`.
        func files(on engine: GuestEngine, _ commands: [String], in directory: GuestDirectory) throws -> Run {
            let output = Pipe()
            let errors = Pipe()
            let instance = try GuestInstance(
                module: try Guests.load("files"),
                environment: GuestEnvironment(
                    arguments: commands,
                    standardOutput: output.fileHandleForWriting.fileDescriptor,
                    standardError: errors.fileHandleForWriting.fileDescriptor,
                    directories: [directory]
                ),
                engine: engine
            )
            let code = try instance.runCommand()
            try output.fileHandleForWriting.close()
            try errors.fileHandleForWriting.close()
            return Run(
                code: code,
                output: String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                errors: String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            )
        }

        @Test(arguments: TestEngines.available) func theFirstWriteCopiesAFileUpAndTheLowerLayerIsNeverWritten(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/notes.txt", "from the image\n")
            let run = try self.files(
                on: engine,
                ["cat", "notes.txt", "append", "notes.txt", "and the guest\n", "cat", "notes.txt"],
                in: layers.view
            )
            #expect(run.code == 0, "\(run.errors)")
            #expect(run.output == "from the image\nfrom the image\nand the guest\n")
            #expect(layers.read("upper/notes.txt") == "from the image\nand the guest\n")
            #expect(layers.read("lower/notes.txt") == "from the image\n")
        }

        @Test(arguments: TestEngines.available) func aDeleteLeavesAWhiteoutAndTheNameCanComeBack(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/sub/old.txt", "old")
            try layers.write("lower/sub/kept.txt", "kept")
            let deleted = try self.files(on: engine, ["rm", "sub/old.txt", "ls", "sub"], in: layers.view)
            #expect(deleted.code == 0, "\(deleted.errors)")
            #expect(deleted.output == "kept.txt\n", "the whiteout hides the lower file and is itself never listed")
            #expect(layers.exists("upper/sub/.wh.old.txt"))
            #expect(layers.read("lower/sub/old.txt") == "old")
            #expect(
                try self.files(on: engine, ["cat", "sub/old.txt"], in: layers.view).errors
                    == "files: cat sub/old.txt: ENOENT\n"
            )

            let recreated = try self.files(
                on: engine,
                ["write", "sub/old.txt", "new", "cat", "sub/old.txt"],
                in: layers.view
            )
            #expect(recreated.output == "new")
            #expect(!layers.exists("upper/sub/.wh.old.txt"))
        }

        @Test(arguments: TestEngines.available) func aDirectoryMadeWhereOneWasDeletedDoesNotShowTheOldEntries(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/cache/a", "a")
            let run = try self.files(
                on: engine,
                ["rm", "cache/a", "rmdir", "cache", "mkdir", "cache", "write", "cache/b", "b", "ls", "cache"],
                in: layers.view
            )
            #expect(run.code == 0, "\(run.errors)")
            #expect(run.output == "b\n")
            #expect(layers.exists("upper/cache/.wh..wh..opq"))
            #expect(
                try self.files(on: engine, ["rmdir", "cache"], in: layers.view).errors
                    == "files: rmdir cache: ENOTEMPTY\n"
            )
        }

        @Test(arguments: TestEngines.available) func layersMergeTopFirstAndTheListingIsTheirUnion(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/shared", "top lower\n")
            try layers.write("lower2/shared", "bottom lower\n")
            try layers.write("lower2/only-bottom", "")
            try layers.write("upper/only-upper", "")
            try layers.write("lower/dir/x", "")
            try layers.write("lower2/dir/y", "")
            var view = layers.view
            view.lowers.append(layers.path("lower2"))
            let run = try self.files(on: engine, ["cat", "shared", "ls", ".", "ls", "dir"], in: view)
            #expect(run.code == 0, "\(run.errors)")
            #expect(run.output == "top lower\ndir\nonly-bottom\nonly-upper\nshared\nx\ny\n")
        }

        @Test(arguments: TestEngines.available) func renamingALowerFileCopiesItUpAndHidesTheOldName(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/a.txt", "contents")
            let run = try self.files(on: engine, ["mv", "a.txt", "b.txt", "cat", "b.txt", "ls", "."], in: layers.view)
            #expect(run.code == 0, "\(run.errors)")
            #expect(run.output == "contentsb.txt\n")
            #expect(layers.read("lower/a.txt") == "contents")
            #expect(layers.exists("upper/.wh.a.txt"))
        }

        @Test(arguments: TestEngines.available) func nothingLeadsOutOfTheView(engine: GuestEngine) throws {
            let layers = try Layers()
            try layers.write("secret", "outside the view")
            try layers.write("lower/sub/inside", "inside")
            // Symlinks out, planted on the host in both kinds of layer.
            try FileManager.default.createSymbolicLink(
                atPath: layers.path("lower/absolute"),
                withDestinationPath: "/etc"
            )
            try FileManager.default.createSymbolicLink(
                atPath: layers.path("upper/relative"),
                withDestinationPath: "../secret"
            )
            try FileManager.default.createSymbolicLink(
                atPath: layers.path("lower/sub/up"),
                withDestinationPath: "../.."
            )
            try FileManager.default.createSymbolicLink(
                atPath: layers.path("lower/fine"),
                withDestinationPath: "sub/inside"
            )

            for path in [
                "/etc/passwd", "../secret", "sub/../../secret", "absolute/passwd", "relative", "sub/up/secret",
            ] {
                let run = try self.files(on: engine, ["cat", path], in: layers.view)
                #expect(run.code == 1 && run.errors == "files: cat \(path): ENOTCAPABLE\n", "\(path): \(run)")
                #expect(!run.output.contains("outside"))
            }
            #expect(
                try self.files(on: engine, ["cat", "fine"], in: layers.view).output == "inside",
                "a symlink within the view works"
            )
            // Nor can a guest-made symlink be used to get out, or a write to escape.
            let planted = try self.files(
                on: engine,
                ["ln", "../../secret", "sub/way-out", "cat", "sub/way-out"],
                in: layers.view
            )
            #expect(planted.errors == "files: cat sub/way-out: ENOTCAPABLE\n")
            #expect(try self.files(on: engine, ["write", "../escaped", "x"], in: layers.view).code == 1)
            #expect(!layers.exists("escaped"))
        }

        @Test(arguments: TestEngines.available) func aReadOnlyViewRefusesWritesAndMarkerNamesAreReserved(
            engine: GuestEngine
        ) throws {
            let layers = try Layers()
            try layers.write("lower/a", "a")
            let readOnly = try GuestDirectory(parsing: "\(layers.path("lower")):/data:ro")
            #expect(readOnly.upper == nil)
            #expect(try self.files(on: engine, ["cat", "a"], in: readOnly).output == "a")
            for command in [["write", "b", "x"], ["append", "a", "x"], ["rm", "a"], ["mkdir", "d"]] {
                #expect(try self.files(on: engine, command, in: readOnly).errors.hasSuffix(": EROFS\n"), "\(command)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: layers.path("lower")) == ["a"])
            #expect(
                try self.files(on: engine, ["write", ".wh.a", "x"], in: layers.view).errors
                    == "files: write .wh.a: EPERM\n"
            )
        }

        @Test func directorySpecificationsAreParsedOrRefusedClearly() throws {
            #expect(
                try GuestDirectory(parsing: "/srv/site") == GuestDirectory(guestPath: "/srv/site", upper: "/srv/site")
            )
            #expect(try GuestDirectory(parsing: "./data:/data") == GuestDirectory(guestPath: "/data", upper: "./data"))
            #expect(
                try GuestDirectory(parsing: "img:/img:ro")
                    == GuestDirectory(guestPath: "/img", upper: nil, lowers: ["img"])
            )
            #expect(throws: GuestError.self) { try GuestDirectory(parsing: "a:b:c:d") }
            #expect(throws: GuestError.self) { try GuestDirectory(parsing: ":/data") }
            do {
                _ = try GuestInstance(
                    module: try Guests.load("files"),
                    environment: GuestEnvironment(
                        directories: [GuestDirectory(guestPath: "/data", upper: "/no/such/folder")]
                    )
                )
                Issue.record("a missing directory was accepted")
            } catch let error as GuestError {
                #expect("\(error)".hasPrefix("cannot give the guest directory /no/such/folder: cannot open it"))
            }
        }
    }
}
