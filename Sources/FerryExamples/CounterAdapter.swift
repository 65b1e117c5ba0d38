import FerryGuest
import FerryObjects
import Logging

/// The `counters` adapter of `ferry up` and `ferry serve objects`: `counter` (Swift) and
/// `wasm-counter` (a wasm guest), persistent, one call at a time per object.
public enum CounterAdapter {
    public static func make(
        store: any ObjectStorage,
        persistence: ObjectPolicy.Persistence = .writeThrough,
        logger: Logger
    ) throws -> ObjectAdapter {
        try ObjectAdapter(
            name: "counters",
            policy: ObjectPolicy(
                activation: .persistent,
                threading: .perObject,
                idleTimeout: .seconds(60),
                persistence: persistence
            ),
            types: [
                Counter.type(),
                try GuestServant.type(
                    name: "wasm-counter",
                    module: try GuestModule(bytes: CounterGuest.wasm, name: "counter_object.wasm"),
                    interface: CounterInterface.definition
                ),
            ],
            store: store,
            logger: logger
        )
    }
}
