package cellcelly.voltdb;

/**
 * BalanceOutboxAck within one partition (the one partitionKey hashes to): deletes exactly the given
 * events that live there; events of other partitions are not seen. Single-partition: it stops no
 * other site, unlike the multi-partition acknowledgement.
 */
public class BalanceOutboxAckPart extends OutboxAckBase {
    public long run(String partitionKey, long[] uids, long[] idxs) {
        return deleteEach(uids, idxs);
    }
}
