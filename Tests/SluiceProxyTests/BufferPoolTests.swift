@preconcurrency import Glibc
@testable import SluiceProxy
import Testing

/// The worker's buffer pool gives the pages of blocks nobody took for a whole trim interval back
/// to the kernel, oldest first, and keeps the blocks themselves for reuse.
@Suite struct BufferPoolTests {
    /// Resident pages of a block, from mincore(2).
    static func residentPages(_ p: UnsafeMutableRawPointer, _ size: Int) -> Int {
        let pages = (size + BufferPool.pageSize - 1) / BufferPool.pageSize
        var vec = [UInt8](repeating: 0, count: pages)
        #expect(mincore(p, size, &vec) == 0)
        return vec.count { $0 & 1 != 0 }
    }

    @Test func blocksUnusedForAWholeIntervalGiveTheirPagesBack() {
        let size = 64 * 1024
        let pool = BufferPool(blockSize: size, maxFree: 16)
        var blocks = (0..<8).map { _ in pool.take() }
        for b in blocks {
            #expect(Int(bitPattern: b) % BufferPool.pageSize == 0)
            b.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size)
        }
        for b in blocks { pool.give(b) }  // stack, bottom to top: blocks[0] ... blocks[7]
        #expect(pool.trim() == 0, "every block was in use during the first interval")

        // Three blocks are taken and given back during the next interval: only the five below
        // them went unused the whole time.
        let busy = (0..<3).map { _ in pool.take() }
        for b in busy.reversed() { pool.give(b) }
        #expect(pool.trim() == 5)
        for b in blocks[0..<5] { #expect(BufferPoolTests.residentPages(b, size) == 0) }
        for b in blocks[5..<8] { #expect(BufferPoolTests.residentPages(b, size) == size / BufferPool.pageSize) }
        #expect(pool.warmFreeCount == 3)

        // A quiet interval: the rest go too, and nothing is given back twice.
        #expect(pool.trim() == 3)
        #expect(pool.trim() == 0)
        #expect(pool.warmFreeCount == 0)

        // Taken again, a block works as before (its pages come back zeroed, on first touch).
        blocks = (0..<8).map { _ in pool.take() }
        #expect(pool.freeCount == 0 && pool.coldCount == 0)
        for b in blocks {
            b.storeBytes(of: 0x5A, toByteOffset: size - 1, as: UInt8.self)
            #expect(b.load(fromByteOffset: size - 1, as: UInt8.self) == 0x5A)
            pool.give(b)
        }
    }
}

/// The exchange free list keeps the retry-body capacity of the exchanges it hands out first only,
/// so a burst of concurrent requests whose bodies were kept for a retry does not leave
/// `maxFree × retry_buffer_bytes` allocated after it.
@Suite struct ExchangePoolTests {
    @Test func aBurstOfKeptBodiesDoesNotStayAllocated() {
        let pool = ExchangePool(maxFree: 4096)
        let burst = (0..<1000).map { _ -> Exchange in
            let x = pool.take()
            x.retryBody.reserveCapacity(64 * 1024)
            return x
        }
        for x in burst { pool.give(x) }
        let retained = pool.retainedRetryBodyBytes
        #expect(retained >= ExchangePool.warmRetryBodies * 64 * 1024, "the top of the stack stays warm")
        #expect(retained < (ExchangePool.warmRetryBodies + 1) * 64 * 1024 + 64 * 1024, "\(retained) bytes kept")
        // The warm ones come back first.
        #expect(pool.take().retryBody.capacity >= 64 * 1024)
    }
}
