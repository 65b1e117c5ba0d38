import NIOCore

/// Runs a task's jobs on one event loop, so that a task which sends and receives on a channel of
/// that loop does so without a thread hop either way. The object server runs calls to types that
/// ask for it (`ObjectType.runsOnEventLoop`) on the loop of the connection they came on; a client
/// whose connections are all on one loop (`ObjectClient(..., eventLoop:)`) may run its callers
/// there. What the task awaits on an executor of its own (an actor's) runs there.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
