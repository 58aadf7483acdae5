import SWIOTLB
import Testing

@Suite struct ConfigTests {
    @Test func kernelParameter() throws {
        let full = try SWIOTLBConfig(kernelParameter: "4096,4,force")
        #expect(full.nslabs == 4096 && full.nareas == 4 && full.force && !full.disabled)
        // nslabs up to a multiple of 128; areas up to a power of two.
        #expect(try SWIOTLBConfig(kernelParameter: "1000").nslabs == 1024)
        let odd = try SWIOTLBConfig(kernelParameter: "100,3")
        #expect(odd.nslabs == 128 && odd.nareas == 4)
        #expect(try SWIOTLBConfig(kernelParameter: "noforce").disabled)
        let force = try SWIOTLBConfig(kernelParameter: "force")
        #expect(force.force && force.nslabs == 32768 && force.nareas == nil)
        #expect(try SWIOTLBConfig(kernelParameter: "65536,force").nslabs == 65536)
    }

    @Test(arguments: ["", "abc", "1,2,3", "force,1", "0", "-5", "64,x", "force,noforce", "64,2,force,1"])
    func malformed(_ text: String) {
        #expect(throws: SWIOTLBConfig.ParseError.malformed(text)) { try SWIOTLBConfig(kernelParameter: text) }
    }
}
