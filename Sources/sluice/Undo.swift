import ArgumentParser
import SluiceControl

/// `sluice undo [--force]`: the previous routing version again, guarded like `rollback`.
struct Undo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish the previous routing table version again (undo the last change).",
        discussion: """
            The version that served before the current one is published again as a new version, \
            with its runtime overrides. Like `sluice rollback`, it is refused (exit 1, nothing \
            changed, the change it would make printed) when it would send more traffic to a \
            cohort that is not the route's baseline, e.g. undoing `sluice abort`; --force does it \
            anyway.
            """
    )

    @OptionGroup var options: AdminOptions

    @Flag(help: "Publish it even if it sends more traffic to a non-baseline cohort.")
    var force = false

    func run() throws {
        try ControlCall.change("undo", "/admin/undo", body: ControlBody(cause: ControlCall.cause("undo"), force: force ? true : nil),
                               options: options)
    }
}
