extension PhysicalMemory {
    /// /proc/buddyinfo: per populated zone, "Node 0, zone %8s " and one "%6lu " per order.
    public var buddyInfo: String {
        var text = ""
        for zone in zones {
            text += "Node 0, zone " + pad(zone.kind.description, 8) + " "
            for count in zone.nrFree { text += pad(String(count), 6) + " " }
            text += "\n"
        }
        return text
    }
}

/// Right-aligned in `width` columns, as printf's "%Ns".
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}
