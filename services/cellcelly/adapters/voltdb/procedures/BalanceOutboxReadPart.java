package cellcelly.voltdb;

import org.voltdb.VoltTable;

/**
 * BalanceOutboxRead within one partition (the one partitionKey hashes to): single-partition, so
 * it stops no other site, unlike the multi-partition read. Every subscriber's events live in one
 * partition, where uid grows in commit order: this is each subscriber's order.
 */
public class BalanceOutboxReadPart extends OutboxReadBase {
    public VoltTable[] run(String partitionKey, long afterUid, long afterIdx, long limit) {
        return readAfter(afterUid, afterIdx, limit);
    }
}
