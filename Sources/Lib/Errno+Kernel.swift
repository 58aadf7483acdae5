// The kernel's names for the errnos whose swift-system names read otherwise: a sysfs store
// on a device that is gone answers ENODEV, which swift-system spells after BSD's text.
import SystemPackage

extension Errno {
    /// ENODEV.
    public static var noDevice: Errno { .operationNotSupportedByDevice }
}
