import Foundation
import IoMTCore
import Testing

@Suite("GS1 pack codes: raw element strings, the bracketed form, Digital Link URIs")
struct GS1LabelTests {
    static let expected = GS1Label(gtin: "09506000134352", lot: "COVID-7", serial: "SN-3", expiry: "271231")

    @Test("the three forms of one pack's code read alike", arguments: [
        "]d2010950600013435217271231" + "10COVID-7\u{1D}21SN-3",
        "010950600013435217271231" + "21SN-3\u{1D}10COVID-7",
        "(01)09506000134352(17)271231(10)COVID-7(21)SN-3",
        "https://id.gs1.org/01/09506000134352/10/COVID-7/21/SN-3?17=271231",
        "https://example.com/pharma/01/09506000134352/10/COVID%2D7/21/SN-3?17=271231&linkType=gs1:pil",
        "  (01)09506000134352(21)SN-3(17)271231(10)COVID-7\n",
    ])
    func forms(_ code: String) throws {
        #expect(try GS1Label.parse(code) == Self.expected)
    }

    @Test("known AIs of other data are read past; a GTIN-13 in Digital Link; no lot is allowed here (the API asks for one)")
    func others() throws {
        // (11) production date and (30) a count, both of known length, between the ones read.
        let l = try GS1Label.parse("01095060001343521126010130" + "12\u{1D}10L1")
        #expect(l == GS1Label(gtin: "09506000134352", lot: "L1"))
        #expect(try GS1Label.parse("https://id.gs1.org/gtin/4006381333931").gtin == "04006381333931")
        #expect(try GS1Label.parse("(01)09506000134352").lot == nil)
    }

    @Test("what cannot be read is refused with the reason", arguments: [
        ("", GS1Label.ParseError.empty),
        ("(01)09506000134353(10)L1", .malformed("(01) 09506000134353 is not a GTIN with a correct check digit")),
        ("(01)0950600013435(10)L1", .malformed("(01) carries 14 characters, not 13")),
        ("(10)L1", .malformed("the code carries no GTIN (01)")),
        ("(01)09506000134352(99)XYZ", .unknownAI("99")),
        ("0109506000134352" + "9912", .unknownAI("9912")),
        ("01095060001343", .malformed("(01) is cut short")),
        ("(01)09506000134352(10)L 1", .malformed("(10) is 1…20 letters, digits or -./_")),
        ("(01)09506000134352(17)271340", .malformed("(17) is a date YYMMDD")),
        ("(01)09506000134352(10)A(10)B", .malformed("(10) appears twice")),
        ("https://id.gs1.org/10/L1", .malformed("a GS1 Digital Link has /01/{GTIN} in its path")),
        ("https://id.gs1.org/01/09506000134352/10", .malformed("the path after /01/ is AI/value pairs")),
    ])
    func refused(_ code: String, _ error: GS1Label.ParseError) {
        #expect(throws: error) { try GS1Label.parse(code) }
    }

    @Test("expiry (17): a day in UTC; DD 00 is the month's last day")
    func expiry() {
        #expect(GS1Label.expiryDay("271231") == 1_830_211_200_000)  // 2027-12-31T00:00:00Z
        #expect(GS1Label.expiryDay("280200") == GS1Label.expiryDay("280229"))  // 2028 is a leap year
        #expect(GS1Label.expiryDay("270200") == GS1Label.expiryDay("270228"))
        #expect(GS1Label.expiryDay("270230") == nil && GS1Label.expiryDay("271301") == nil && GS1Label.expiryDay("27123") == nil)
    }
}
