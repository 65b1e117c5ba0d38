import Foundation
import Testing

@testable import FerryContainer

@Suite struct ContainerFlagsTests {
    @Test func sizesReadAsBytes() throws {
        #expect(try ContainerFlags.memory("64M") == 64 << 20)
        #expect(try ContainerFlags.memory("1g") == 1 << 30)
        #expect(try ContainerFlags.memory("2MiB") == 2 << 20)
        #expect(throws: ContainerError.self) { try ContainerFlags.memory("12") }
        #expect(throws: ContainerError.self) { try ContainerFlags.memory("lots") }
        #expect(ByteCount.format(64 << 20) == "64 MiB")
    }

    @Test func publishNeedsTwoPorts() throws {
        #expect(try ContainerFlags.publish("8080:80") == ContainerSpec.PortMapping(hostPort: 8080, containerPort: 80))
        #expect(try ContainerFlags.publish("0:80").hostPort == 0)
        for bad in ["99999:80", "80", "a:b", "80:0", "1:2:3"] {
            #expect(throws: ContainerError.self) { try ContainerFlags.publish(bad) }
        }
    }

    @Test func mountsMayNotClimbOutOfTheRoot() throws {
        let mount = try ContainerFlags.mount("/tmp:/data:ro")
        #expect(mount.source == "/tmp" && mount.destination == "/data" && mount.options == ["rbind", "ro"])
        #expect(throws: ContainerError.self) { try ContainerFlags.mount("/tmp:/data/../../etc") }
        #expect(throws: ContainerError.self) { try ContainerFlags.mount("/tmp:relative") }
        #expect(throws: ContainerError.self) { try ContainerFlags.mount("/does/not/exist:/x") }
        #expect(throws: ContainerError.self) { try ContainerFlags.mount("/tmp:/x:rx") }
    }

    @Test func usersAreNumeric() throws {
        #expect(try ContainerFlags.user("1000:100") == ContainerSpec.User(uid: 1000, gid: 100))
        #expect(try ContainerFlags.user("65534") == ContainerSpec.User(uid: 65534, gid: 65534))
        #expect(throws: ContainerError.self) { try ContainerFlags.user("root") }
    }

    @Test func exitsSayWhy() {
        let limits = ContainerSpec.Resources(memory: 64 << 20, pids: 32)
        let killed = ContainerExit(waitStatus: SIGKILL, oomKills: 1, pidsLimitHits: 0, resources: limits)
        #expect(killed.exitCode == 137 && killed.signal == SIGKILL)
        #expect(
            killed.reason
                == "killed by SIGKILL; out of memory (OOM): the kernel killed 1 process at its memory limit of 64 MiB"
        )
        let bomb = ContainerExit(waitStatus: 2 << 8, oomKills: 0, pidsLimitHits: 40, resources: limits)
        #expect(bomb.exitCode == 2 && bomb.signal == nil)
        #expect(bomb.reason == "exited with status 2; pids limit reached (32 tasks): 40 forks refused")
    }
}
