import NIOCore

/// Runs a task's jobs on one event loop: a call to a type that runs on the event loop
/// (``ObjectType/runsOnEventLoop``) runs on the loop of the connection it came on. What the task
/// awaits on an executor of its own (an actor's) runs there.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
