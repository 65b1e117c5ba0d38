/// How far apart regions are (in milliseconds of round trip, or any unit as long as it is one), from
/// a table an operator writes by hand and so writes partly.
///
/// A pair given one way only counts both ways; a pair given both ways keeps each as given (routes
/// can be asymmetric). A region is 0 from itself. A pair not given at all is unreachable: such a
/// region is still better than the origin, so it is ordered after every known one rather than left
/// out.
public struct RegionDistances: Sendable {
    /// Every region named in the table, sorted.
    public let regions: [String]
    private let table: [String: [String: Int]]
    private let orders: [String: [String]]

    /// `table[a][b]` is the distance from `a` to `b`; a negative distance is refused.
    public init(_ table: [String: [String: Int]]) throws(RegionDistanceError) {
        var completed: [String: [String: Int]] = [:]
        var names: Set<String> = []
        for (from, row) in table {
            names.insert(from)
            for (to, distance) in row {
                guard distance >= 0 else { throw .negative(from: from, to: to, distance: distance) }
                names.insert(to)
                completed[from, default: [:]][to] = distance
                // The other way, unless the table gives it itself.
                if table[to]?[from] == nil { completed[to, default: [:]][from] = distance }
            }
        }
        self.table = completed
        self.regions = names.sorted()
        var orders: [String: [String]] = [:]
        for region in self.regions {
            orders[region] = Self.order(from: region, among: self.regions, completed)
        }
        self.orders = orders
    }

    /// No distances: each region is near only to itself.
    public static let empty = try! RegionDistances([:])

    /// The distance from one region to another: 0 to itself, nil when unreachable.
    public func distance(from: String, to: String) -> Int? {
        if from == to { return 0 }
        return self.table[from]?[to]
    }

    /// The table's regions nearest first from `region` (itself first), ties by name, unreachable
    /// ones last by name. Empty for a region the table does not name.
    public func nearest(from region: String) -> [String] {
        self.orders[region] ?? []
    }

    /// The given regions nearest first from `region`, in the same order as ``nearest(from:)``.
    public func order(from region: String, among regions: some Sequence<String>) -> [String] {
        Self.order(from: region, among: regions, self.table)
    }

    private static func order(
        from region: String,
        among regions: some Sequence<String>,
        _ table: [String: [String: Int]]
    ) -> [String] {
        func key(_ to: String) -> Int {
            to == region ? 0 : table[region]?[to] ?? Int.max
        }
        return Set(regions).sorted { (key($0), $0) < (key($1), $1) }
    }
}

/// Why a distance table was refused.
public enum RegionDistanceError: Error, Sendable, Hashable, CustomStringConvertible {
    case negative(from: String, to: String, distance: Int)

    public var description: String {
        switch self {
        case .negative(let from, let to, let distance):
            "the distance from region \"\(from)\" to \"\(to)\" is negative (\(distance))"
        }
    }
}
