import Foundation
@testable import SluiceControl
import Testing

/// `workers: auto` and the cgroup v2 CPU limit, from file trees laid out like /proc and /sys/fs/cgroup.
struct CPUQuotaTests {
    /// Writes `files` (path relative to the temp dir → content) and returns the dir.
    func tree(_ files: [String: String]) throws -> TempDir {
        let dir = try TempDir()
        for (path, text) in files {
            let full = dir.file(path)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: false, encoding: .utf8)
        }
        return dir
    }

    func workers(_ dir: TempDir, online: Int) -> Int {
        CPUQuota.autoWorkers(onlineCPUs: online, procSelfCgroup: dir.file("proc/self/cgroup"), cgroupRoot: dir.file("cg"))
    }

    @Test func parsesCPUMax() {
        #expect(CPUQuota.parse(cpuMax: "max 100000\n") == nil)
        #expect(CPUQuota.parse(cpuMax: "200000 100000\n") == 2)
        #expect(CPUQuota.parse(cpuMax: "150000 100000\n") == 2)  // 1.5 CPUs round up
        #expect(CPUQuota.parse(cpuMax: "50000 100000\n") == 1)
        #expect(CPUQuota.parse(cpuMax: "100001 100000") == 2)
        #expect(CPUQuota.parse(cpuMax: "300000") == 3)  // period defaults to 100000
        for bad in ["", "\n", "abc 100000", "100000 0", "-5 100000", "0 100000", "100000 x"] {
            #expect(CPUQuota.parse(cpuMax: bad) == nil, "\(bad)")
        }
    }

    @Test func kubernetesPodLimitLowersAutoWorkers() throws {
        // A pod with a 1500m limit on an 8-CPU node: the container's cgroup has the quota, the
        // pod's parent has none.
        let dir = try tree([
            "proc/self/cgroup": "0::/kubepods/burstable/pod1/ctr\n",
            "cg/cpu.max": "max 100000\n",
            "cg/kubepods/cpu.max": "max 100000\n",
            "cg/kubepods/burstable/pod1/cpu.max": "max 100000\n",
            "cg/kubepods/burstable/pod1/ctr/cpu.max": "150000 100000\n",
        ])
        defer { dir.remove() }
        #expect(workers(dir, online: 8) == 2)
        // The limit never raises the count above the CPUs there are.
        #expect(workers(dir, online: 1) == 1)
    }

    @Test func lowestAncestorQuotaWins() throws {
        let dir = try tree([
            "proc/self/cgroup": "0::/a/b\n",
            "cg/a/cpu.max": "300000 100000\n",
            "cg/a/b/cpu.max": "max 100000\n",
        ])
        defer { dir.remove() }
        #expect(workers(dir, online: 16) == 3)
    }

    @Test func cgroupNamespaceRootAndNoLimit() throws {
        // In a container with its own cgroup namespace the path is `/` and the limit is at the mount's root.
        let ns = try tree(["proc/self/cgroup": "0::/\n", "cg/cpu.max": "400000 100000\n"])
        defer { ns.remove() }
        #expect(workers(ns, online: 64) == 4)
        // A path outside the namespace (`/../..`) also means the mount's root.
        let outside = try tree(["proc/self/cgroup": "0::/../../x\n", "cg/cpu.max": "200000 100000\n"])
        defer { outside.remove() }
        #expect(workers(outside, online: 64) == 2)
        // No limit anywhere: every online CPU.
        let unlimited = try tree(["proc/self/cgroup": "0::/user.slice\n", "cg/user.slice/cpu.max": "max 100000\n"])
        defer { unlimited.remove() }
        #expect(workers(unlimited, online: 6) == 6)
    }

    @Test func cgroupV1OrMissingFilesMeanOnlineCPUs() throws {
        let v1 = try tree(["proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n"])
        defer { v1.remove() }
        #expect(workers(v1, online: 4) == 4)
        let none = try TempDir()
        defer { none.remove() }
        #expect(workers(none, online: 4) == 4)
        #expect(CPUQuota.autoWorkers(onlineCPUs: 0, procSelfCgroup: none.file("x"), cgroupRoot: none.file("y")) == 1)
    }

    @Test func configAutoUsesTheQuotaOnThisMachine() throws {
        // `workers: auto` in a config gives what CPUQuota computes for this process.
        let config = try load(controllerYAML(top: "workers: auto"))
        #expect(config.workers == CPUQuota.autoWorkers(onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }
}
