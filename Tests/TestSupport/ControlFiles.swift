// A control file read and written as cat and echo would, without a mount.
import ControlFS
import SystemPackage

extension ControlDirectory {
    /// The file's content, as one open and read give it.
    public func read(_ path: String) throws(Errno) -> String {
        guard let file = node(at: path) as? ControlAttribute else { throw .noSuchFileOrDirectory }
        return String(decoding: try file.snapshot(), as: UTF8.self)
    }

    /// One write of `text`, as `echo -n text > file`.
    public func write(_ path: String, _ text: String) throws(Errno) {
        guard let file = node(at: path) as? ControlAttribute else { throw .noSuchFileOrDirectory }
        try file.write(Array(text.utf8))
    }
}
