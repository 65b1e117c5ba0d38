/// `host:port` as users type it and logs show it, with an IPv6 literal in brackets as in a URL
/// (`[::1]:7000`): the one way Ferry writes an address.
public func hostAndPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}
