import SluiceCore
import Yams

/// Where a running Sluice's admin API is, for CLI commands (`sluice reload`, `split`, ...).
public enum AdminTarget {
    /// The admin address (default 127.0.0.1:9901) and token (`admin.token`, or the contents of
    /// `admin.token_file`) in the config file at `path`.
    ///
    /// Reads only `admin:`, so a file with mistakes elsewhere still tells where to send
    /// `sluice reload` (which then reports those mistakes from the server). Throws when the
    /// file cannot be read, is not YAML, or its `admin.address` is invalid.
    public static func fromConfig(path: String) throws(AdminError) -> (address: SocketAddress, token: String?) {
        let text: String
        switch ConfigLoader.readFile(path) {
        case .success(let t): text = t
        case .failure(let f): throw AdminError("cannot read \(f.message)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text, .basic)
        } catch {
            throw AdminError("\(path) is not valid YAML, so its admin address cannot be read; give --admin HOST:PORT")
        }
        let defaultAddress = SocketAddress.v4(0x7f00_0001, port: 9901)
        guard let admin = root?["admin"] else { return (defaultAddress, nil) }
        var token = admin["token"]?.string
        if token == nil, let file = admin["token_file"]?.string {
            switch AdminTokenFile.read(ConfigLoader.resolve(file, relativeTo: path)) {
            case .success(let t): token = t
            case .failure(let e): throw AdminError("\(path): admin.token_file: \(e.message)")
            }
        }
        guard let written = admin["address"]?.string else { return (defaultAddress, token) }
        switch ConfigValues.parseHostPort(written, allowPortZero: true) {
        case .failure(let problem):
            throw AdminError("\(path): admin.address: \(problem.message)")
        case .success(let hp):
            var address: SocketAddress
            if let a = SocketAddress.parse(written.trimmingSpaces()) {
                address = a
            } else {
                switch HostResolver.system.preferred(hp.host) {
                case .success(let a): address = a.with(port: hp.port)
                case .failure(let f): throw AdminError("\(path): admin.address: cannot resolve `\(hp.host)`: \(f.message)")
                }
            }
            if address.port == 0 {
                throw AdminError("\(path) binds the admin API to port 0 (any free port); give the address with --admin")
            }
            address = AdminClient.reachableAddress(for: address)
            return (address, token)
        }
    }

    /// `HOST:PORT` with a numeric host or `localhost`, or a port alone (on 127.0.0.1).
    public static func parseAddress(_ text: String) -> SocketAddress? {
        if let a = SocketAddress.parse(text) { return AdminClient.reachableAddress(for: a) }
        if let port = UInt16(text) { return .v4(0x7f00_0001, port: port) }
        if let (host, port) = SocketAddress.splitHostPort(text), host == "localhost" { return .v4(0x7f00_0001, port: port) }
        return nil
    }
}

/// The `cohort=weight` arguments of `sluice split`.
public enum SplitArguments {
    /// Parses `["stable=90", "canary=10"]` (weights are percentages with up to two decimals, as
    /// in the config: `90.5`, `"4.5%"`) and checks that each cohort is named once and the
    /// weights sum to 100.
    public static func parse(_ arguments: [String]) throws(AdminError) -> [CohortWeight] {
        guard !arguments.isEmpty else {
            throw AdminError("give each cohort's weight as COHORT=PERCENT, e.g. `stable=90 canary=10`")
        }
        var out: [CohortWeight] = []
        for argument in arguments {
            guard let eq = argument.firstIndex(of: "=") else {
                throw AdminError("`\(argument)`: expected COHORT=PERCENT, e.g. `canary=10`")
            }
            let cohort = String(argument[..<eq]), raw = String(argument[argument.index(after: eq)...])
            guard ConfigCompiler.isValidName(cohort) else {
                throw AdminError("`\(argument)`: `\(cohort)` is not a cohort name (letters, digits, `-`, `_`, `.`)")
            }
            guard !out.contains(where: { $0.cohort == cohort }) else {
                throw AdminError("cohort `\(cohort)` is given twice")
            }
            switch ConfigValues.parseWeight(raw) {
            case .success(let units): out.append(CohortWeight(cohort: cohort, weight: units))
            case .failure(let problem):
                throw AdminError("`\(argument)`: \(problem.message)" + (problem.hint.map { " (\($0))" } ?? ""))
            }
        }
        let sum = out.reduce(0) { $0 + $1.weight }
        guard sum == 10_000 else {
            throw AdminError("weights sum to \(CohortWeight.percentText(sum)), must be 100")
        }
        return out
    }
}
