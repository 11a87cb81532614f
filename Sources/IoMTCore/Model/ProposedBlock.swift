/// A block as consensus carries it: the header and the transactions, without the commit (the
/// commit certificate is what consensus produces). Its id is the header's hash.
public struct ProposedBlock: Hashable, Sendable, CanonicalCodable {
    public var header: BlockHeader
    public var transactions: [SignedTransaction]

    public init(header: BlockHeader, transactions: [SignedTransaction]) {
        self.header = header
        self.transactions = transactions
    }

    public var id: Hash { header.hash }

    public func encode(to w: inout CanonicalWriter) {
        w.write(header)
        w.write(transactions)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        header = try r.read()
        transactions = try r.readArray()
    }

    /// The same bytes as `canonicalBytes`, from transactions already encoded (`SealedTransaction.bytes`).
    public static func encode(header: BlockHeader, transactionBytes: [[UInt8]]) -> [UInt8] {
        var w = CanonicalWriter()
        w.write(header)
        w.write(UInt32(transactionBytes.count))
        for t in transactionBytes { w.writeFixed(t) }
        return w.bytes
    }

    /// The id of an encoded proposed block, from its header alone (the header comes first).
    public static func id(ofEncoded bytes: [UInt8]) -> Hash? {
        var r = CanonicalReader(bytes)
        guard let header = try? r.read(BlockHeader.self) else { return nil }
        return header.hash
    }
}
