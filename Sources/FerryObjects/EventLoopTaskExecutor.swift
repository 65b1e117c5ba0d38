import NIOCore

/// Runs a task's jobs on one event loop. A call's task started with it runs on the loop of the
/// connection it came on, from the frame read to the answer written, as gRPC C++'s callback API
/// runs a handler on the thread that polled its call: no hand-over to the cooperative pool and
/// back, which at one caller was most of a call's time. What the task awaits on an executor of
/// its own (an actor, a servant that hops off for long work) runs there.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
